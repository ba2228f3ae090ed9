//! `distill_layers.csv` of a run with distill stages: at every logged distill step (each
//! `log_every` steps and the stage's last), one row per distilled layer with the step's
//! objective on that layer and each weighed component, head-averaged:
//! `stage, label, step, global_step, layer, loss, loss_<component>...`. Long rather than wide,
//! so that any number of layers reads the same way (filter by `layer`, or pivot).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::Column;

use crate::csv_table::{CsvTable, write_atomically};
use crate::error::RunError;
use crate::spec::DistillComponent;
use crate::summary::LayerLosses;

/// One line of `distill_layers.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct LayerRow {
    pub stage: usize,
    pub label: String,
    pub step: usize,
    pub global_step: usize,
    /// The model's index of the layer.
    pub layer: usize,
    /// The stage's objective `Σ weight × component` on this layer.
    pub loss: f64,
    /// Each weighed component by name (written as `loss_<name>`), unweighted.
    pub components: BTreeMap<String, f64>,
}

pub struct LayerLog {
    path: PathBuf,
    /// Every component some distill stage of the run weighs, fixed when the run starts.
    components: Vec<DistillComponent>,
    rows: Vec<LayerRow>,
}

impl LayerLog {
    /// Opens `dir/distill_layers.csv`; `keep_until` as for [`crate::metrics::MetricsLog::open`].
    pub fn open(
        dir: &Path,
        keep_until: Option<usize>,
        components: &[DistillComponent],
    ) -> Result<Self, RunError> {
        let path = dir.join("distill_layers.csv");
        let rows = match keep_until {
            Some(limit) if path.exists() => Self::read(&path)?
                .into_iter()
                .filter(|row| row.global_step <= limit)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Self {
            path,
            components: components.to_vec(),
            rows,
        })
    }

    /// Reads a `distill_layers.csv` this module wrote.
    pub fn read(path: &Path) -> Result<Vec<LayerRow>, RunError> {
        let table = CsvTable::read(path)?;
        let labels = table.strings("label")?;
        let counts = ["stage", "step", "global_step", "layer"]
            .map(|name| table.counts(name))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let loss = table.floats("loss")?;
        let components = table.prefixed("loss_")?;
        Ok((0..table.height())
            .map(|i| LayerRow {
                stage: counts[0][i],
                label: labels[i].clone(),
                step: counts[1][i],
                global_step: counts[2][i],
                layer: counts[3][i],
                loss: loss[i].unwrap_or(f64::NAN),
                components: CsvTable::row_of(&components, i),
            })
            .collect())
    }

    /// One row per layer of `losses`, at the given step.
    pub fn push(
        &mut self,
        stage: usize,
        label: &str,
        step: usize,
        global_step: usize,
        losses: &LayerLosses,
    ) {
        for (i, &layer) in losses.layers.iter().enumerate() {
            self.rows.push(LayerRow {
                stage,
                label: label.to_string(),
                step,
                global_step,
                layer,
                loss: losses.loss[i],
                components: losses
                    .components
                    .iter()
                    .filter_map(|(name, values)| values.get(i).map(|&v| (name.clone(), v)))
                    .collect(),
            });
        }
    }

    /// Rewrites the file atomically with every row so far.
    pub fn flush(&self) -> Result<(), RunError> {
        let rows = &self.rows;
        let count =
            |pick: fn(&LayerRow) -> usize| rows.iter().map(|r| pick(r) as u64).collect::<Vec<_>>();
        let mut columns = vec![
            Column::new("stage".into(), count(|r| r.stage)),
            Column::new(
                "label".into(),
                rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            ),
            Column::new("step".into(), count(|r| r.step)),
            Column::new("global_step".into(), count(|r| r.global_step)),
            Column::new("layer".into(), count(|r| r.layer)),
            Column::new(
                "loss".into(),
                rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
            ),
        ];
        for component in &self.components {
            columns.push(Column::new(
                component.column().into(),
                rows.iter()
                    .map(|r| r.components.get(component.name()).copied())
                    .collect::<Vec<_>>(),
            ));
        }
        write_atomically(&self.path, rows.len(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_and_a_resumed_log_keeps_those_up_to_its_checkpoint() {
        let dir = std::env::temp_dir().join(format!("hedgehog-layers-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let components = [DistillComponent::WeightCe, DistillComponent::OutputMse];
        let mut log = LayerLog::open(&dir, None, &components).unwrap();
        let losses = |x: f64| LayerLosses {
            layers: vec![0, 3],
            loss: vec![1000.0 * x + 0.5, 2000.0 * x + 0.25],
            components: [
                ("output_mse".to_string(), vec![x, 2.0 * x]),
                ("weight_ce".to_string(), vec![0.5, 0.25]),
            ]
            .into(),
        };
        log.push(1, "distill, outputs", 5, 11, &losses(0.125));
        log.push(1, "distill, outputs", 10, 16, &losses(0.0625));
        log.flush().unwrap();
        let path = dir.join("distill_layers.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with(
                "stage,label,step,global_step,layer,loss,loss_weight_ce,loss_output_mse\n"
            ),
            "{text}"
        );
        let rows = LayerLog::read(&path).unwrap();
        assert_eq!(rows, log.rows);
        assert_eq!(rows.len(), 4);
        assert_eq!((rows[1].layer, rows[1].components["output_mse"]), (3, 0.25));
        let kept = LayerLog::open(&dir, Some(15), &components).unwrap();
        assert_eq!(
            kept.rows,
            rows[..2],
            "rows after the checkpoint are dropped"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
