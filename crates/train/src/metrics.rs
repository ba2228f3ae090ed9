//! `metrics.csv` of a run, written through polars: one row per optimiser step and per
//! evaluation, with each distillation loss a run's distill stages weigh as a `loss_<name>`
//! column and the task's validation metrics as `val_<metric>` columns; beside it, for a run
//! with distill stages, the per-layer `distill_layers.csv` ([`crate::layer_metrics`]).
//!
//! The rows live in memory and the whole file is rewritten atomically (temporary file, then
//! rename) at each flush, so a kill never leaves half a row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::csv_table::{CsvTable, write_atomically};
use crate::error::RunError;
use crate::layer_metrics::LayerLog;
use crate::spec::DistillComponent;
use crate::summary::LayerLosses;

/// One line of `metrics.csv`.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsRow {
    pub stage: usize,
    pub label: String,
    /// Optimiser steps done in the stage (0 for evaluation-only stages).
    pub step: usize,
    pub global_step: usize,
    pub loss: Option<f64>,
    pub lr: Option<f64>,
    pub tokens_per_second: Option<f64>,
    /// A distill step's components by name (`weight_ce`, ...; written as `loss_<name>`).
    pub components: BTreeMap<String, f64>,
    /// Validation metrics by name (written as `val_<name>`).
    pub validation: BTreeMap<String, f64>,
}

const FIXED: [&str; 7] = [
    "stage",
    "label",
    "step",
    "global_step",
    "loss",
    "lr",
    "tokens_per_second",
];

pub struct MetricsLog {
    path: PathBuf,
    /// The component columns, fixed when the run starts (from its spec) so that the header
    /// does not change when the first distill stage begins or a run resumes.
    components: Vec<String>,
    rows: Vec<MetricsRow>,
    /// `distill_layers.csv`, for a run with distill stages.
    layers: Option<LayerLog>,
}

impl MetricsLog {
    /// Opens `dir/metrics.csv` with a column for each of `components` (and, when some are
    /// per layer, `dir/distill_layers.csv`); with `keep_until`, the rows a resumed run keeps (those
    /// up to its checkpoint's global step; the rest are repeated by the resumed run).
    pub fn open(
        dir: &Path,
        keep_until: Option<usize>,
        components: &[DistillComponent],
    ) -> Result<Self, RunError> {
        let path = dir.join("metrics.csv");
        let rows = match keep_until {
            Some(limit) if path.exists() => Self::read(&path)?
                .into_iter()
                .filter(|row| row.global_step <= limit)
                .collect(),
            _ => Vec::new(),
        };
        let per_layer: Vec<DistillComponent> = components
            .iter()
            .copied()
            .filter(|c| c.per_layer())
            .collect();
        let layers = match per_layer.as_slice() {
            [] => None,
            some => Some(LayerLog::open(dir, keep_until, some)?),
        };
        let log = Self {
            path,
            components: components.iter().map(|c| c.name().to_string()).collect(),
            rows,
            layers,
        };
        log.flush()?;
        Ok(log)
    }

    /// Reads a `metrics.csv` this module wrote.
    pub fn read(path: &Path) -> Result<Vec<MetricsRow>, RunError> {
        let table = CsvTable::read(path)?;
        let labels = table.strings("label")?;
        let (stage, step, global) = (
            table.counts("stage")?,
            table.counts("step")?,
            table.counts("global_step")?,
        );
        let (loss, lr, tps) = (
            table.floats("loss")?,
            table.floats("lr")?,
            table.floats("tokens_per_second")?,
        );
        let (components, validation) = (table.prefixed("loss_")?, table.prefixed("val_")?);
        Ok((0..table.height())
            .map(|i| MetricsRow {
                stage: stage[i],
                label: labels[i].clone(),
                step: step[i],
                global_step: global[i],
                loss: loss[i],
                lr: lr[i],
                tokens_per_second: tps[i],
                components: CsvTable::row_of(&components, i),
                validation: CsvTable::row_of(&validation, i),
            })
            .collect())
    }

    pub fn push(&mut self, row: MetricsRow) {
        self.rows.push(row);
    }

    /// A logged distill step's per-layer losses, for `distill_layers.csv`.
    pub fn push_layers(&mut self, row: &MetricsRow, layers: &LayerLosses) {
        if let Some(log) = &mut self.layers {
            log.push(row.stage, &row.label, row.step, row.global_step, layers);
        }
    }

    /// Rewrites the files atomically with every row so far.
    pub fn flush(&self) -> Result<(), RunError> {
        if let Some(layers) = &self.layers {
            layers.flush()?;
        }
        let mut components: Vec<&String> = self.components.iter().collect();
        let extra: BTreeSet<&String> = self
            .rows
            .iter()
            .flat_map(|r| r.components.keys())
            .filter(|name| !self.components.contains(name))
            .collect();
        components.extend(extra);
        let metrics: BTreeSet<&String> =
            self.rows.iter().flat_map(|r| r.validation.keys()).collect();
        let rows = &self.rows;
        let mut columns = vec![
            Column::new(
                FIXED[0].into(),
                rows.iter().map(|r| r.stage as u64).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[1].into(),
                rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[2].into(),
                rows.iter().map(|r| r.step as u64).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[3].into(),
                rows.iter()
                    .map(|r| r.global_step as u64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[4].into(),
                rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[5].into(),
                rows.iter().map(|r| r.lr).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[6].into(),
                rows.iter().map(|r| r.tokens_per_second).collect::<Vec<_>>(),
            ),
        ];
        let optional =
            |prefix: &str, name: &String, pick: fn(&MetricsRow) -> &BTreeMap<String, f64>| {
                Column::new(
                    format!("{prefix}{name}").into(),
                    rows.iter()
                        .map(|r| pick(r).get(name).copied())
                        .collect::<Vec<_>>(),
                )
            };
        for name in components {
            columns.push(optional("loss_", name, |r| &r.components));
        }
        for metric in metrics {
            columns.push(optional("val_", metric, |r| &r.validation));
        }
        write_atomically(&self.path, rows.len(), columns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_csv() {
        let dir = std::env::temp_dir().join(format!("hedgehog-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::open(&dir, None, &[DistillComponent::OutputMse]).unwrap();
        let rows = vec![
            MetricsRow {
                stage: 0,
                label: "softmax, from scratch".into(),
                step: 1,
                global_step: 1,
                loss: Some(4.25),
                lr: Some(3e-3),
                tokens_per_second: Some(1234.5),
                components: [("output_mse".to_string(), 0.125)].into(),
                validation: BTreeMap::new(),
            },
            MetricsRow {
                stage: 1,
                label: "eval".into(),
                step: 0,
                global_step: 1,
                loss: None,
                lr: None,
                tokens_per_second: None,
                components: BTreeMap::new(),
                validation: [("perplexity".to_string(), 812.25)].into(),
            },
        ];
        for row in &rows {
            log.push(row.clone());
        }
        log.flush().unwrap();
        assert_eq!(MetricsLog::read(&dir.join("metrics.csv")).unwrap(), rows);
        let header = std::fs::read_to_string(dir.join("metrics.csv")).unwrap();
        assert!(
            header.starts_with(
                "stage,label,step,global_step,loss,lr,tokens_per_second,loss_output_mse,val_perplexity\n"
            ),
            "{header}"
        );
        let kept = MetricsLog::open(&dir, Some(0), &[DistillComponent::OutputMse]).unwrap();
        assert!(
            kept.rows.is_empty(),
            "rows after the checkpoint are dropped"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
