//! `metrics.csv` of a run, written through polars: one row per optimiser step and per
//! evaluation, with the task's validation metrics as `val_<metric>` columns.
//!
//! The rows live in memory and the whole file is rewritten atomically (temporary file, then
//! rename) at each flush, so a kill never leaves half a row.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{RunError, file_error};

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
    rows: Vec<MetricsRow>,
}

fn polars_error(path: &Path) -> impl Fn(PolarsError) -> RunError + '_ {
    move |e| RunError::File {
        path: path.to_path_buf(),
        message: format!("metrics table: {e}"),
    }
}

impl MetricsLog {
    /// Opens `dir/metrics.csv`; with `keep_until`, the rows a resumed run keeps (those up to
    /// its checkpoint's global step; the rest are repeated by the resumed run).
    pub fn open(dir: &Path, keep_until: Option<usize>) -> Result<Self, RunError> {
        let path = dir.join("metrics.csv");
        let rows = match keep_until {
            Some(limit) if path.exists() => Self::read(&path)?
                .into_iter()
                .filter(|row| row.global_step <= limit)
                .collect(),
            _ => Vec::new(),
        };
        let log = Self { path, rows };
        log.flush()?;
        Ok(log)
    }

    /// Reads a `metrics.csv` this module wrote.
    pub fn read(path: &Path) -> Result<Vec<MetricsRow>, RunError> {
        let error = polars_error(path);
        let frame = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .map_err(&error)?;
        let floats = |name: &str| -> Result<Vec<Option<f64>>, RunError> {
            let column = frame.column(name).map_err(&error)?;
            let column = column.cast(&DataType::Float64).map_err(&error)?;
            let values = column.f64().map_err(&error)?;
            Ok((0..values.len()).map(|i| values.get(i)).collect())
        };
        let count = |name: &str| -> Result<Vec<usize>, RunError> {
            Ok(floats(name)?
                .into_iter()
                .map(|v| v.unwrap_or(0.0) as usize)
                .collect())
        };
        let labels = frame
            .column("label")
            .map_err(&error)?
            .cast(&DataType::String)
            .map_err(&error)?;
        let labels = labels.str().map_err(&error)?;
        let labels: Vec<String> = (0..labels.len())
            .map(|i| labels.get(i).unwrap_or_default().to_string())
            .collect();
        let (stage, step, global) = (count("stage")?, count("step")?, count("global_step")?);
        let (loss, lr, tps) = (floats("loss")?, floats("lr")?, floats("tokens_per_second")?);
        let mut validation: Vec<(String, Vec<Option<f64>>)> = Vec::new();
        for name in frame.get_column_names() {
            if let Some(metric) = name.strip_prefix("val_") {
                validation.push((metric.to_string(), floats(name)?));
            }
        }
        Ok((0..frame.height())
            .map(|i| MetricsRow {
                stage: stage[i],
                label: labels[i].clone(),
                step: step[i],
                global_step: global[i],
                loss: loss[i],
                lr: lr[i],
                tokens_per_second: tps[i],
                validation: validation
                    .iter()
                    .filter_map(|(name, values)| values[i].map(|v| (name.clone(), v)))
                    .collect(),
            })
            .collect())
    }

    pub fn push(&mut self, row: MetricsRow) {
        self.rows.push(row);
    }

    /// Rewrites the file atomically with every row so far.
    pub fn flush(&self) -> Result<(), RunError> {
        let metrics: BTreeSet<&String> =
            self.rows.iter().flat_map(|r| r.validation.keys()).collect();
        let n = self.rows.len();
        let mut columns = vec![
            Column::new(
                FIXED[0].into(),
                self.rows.iter().map(|r| r.stage as u64).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[1].into(),
                self.rows
                    .iter()
                    .map(|r| r.label.clone())
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[2].into(),
                self.rows.iter().map(|r| r.step as u64).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[3].into(),
                self.rows
                    .iter()
                    .map(|r| r.global_step as u64)
                    .collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[4].into(),
                self.rows.iter().map(|r| r.loss).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[5].into(),
                self.rows.iter().map(|r| r.lr).collect::<Vec<_>>(),
            ),
            Column::new(
                FIXED[6].into(),
                self.rows
                    .iter()
                    .map(|r| r.tokens_per_second)
                    .collect::<Vec<_>>(),
            ),
        ];
        for metric in metrics {
            columns.push(Column::new(
                format!("val_{metric}").into(),
                self.rows
                    .iter()
                    .map(|r| r.validation.get(metric).copied())
                    .collect::<Vec<_>>(),
            ));
        }
        let error = polars_error(&self.path);
        let mut frame = DataFrame::new(n, columns).map_err(&error)?;
        let partial = self.path.with_extension("csv.partial");
        let mut file = std::fs::File::create(&partial).map_err(file_error(&partial))?;
        CsvWriter::new(&mut file)
            .include_header(true)
            .finish(&mut frame)
            .map_err(&error)?;
        file.sync_all().map_err(file_error(&partial))?;
        std::fs::rename(&partial, &self.path).map_err(file_error(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip_through_the_csv() {
        let dir = std::env::temp_dir().join(format!("hedgehog-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut log = MetricsLog::open(&dir, None).unwrap();
        let rows = vec![
            MetricsRow {
                stage: 0,
                label: "softmax, from scratch".into(),
                step: 1,
                global_step: 1,
                loss: Some(4.25),
                lr: Some(3e-3),
                tokens_per_second: Some(1234.5),
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
                validation: [("perplexity".to_string(), 812.25)].into(),
            },
        ];
        for row in &rows {
            log.push(row.clone());
        }
        log.flush().unwrap();
        assert_eq!(MetricsLog::read(&dir.join("metrics.csv")).unwrap(), rows);
        let kept = MetricsLog::open(&dir, Some(0)).unwrap();
        assert!(
            kept.rows.is_empty(),
            "rows after the checkpoint are dropped"
        );
        std::fs::remove_dir_all(&dir).ok();
    }
}
