//! Training curves: a run's `metrics.csv` columns against the step.

use std::io::Cursor;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::{CsvReadOptions, DataType, SerReader};

pub use super::draw::Series;
use super::draw::{DrawResult, Figure, LinePanel, PlotFiles, data_error, line_color, save};
use crate::AnalysisError;

struct Curves(LinePanel);

/// One line per series (x: step, y: `y_label`). With `log_y` the y axis is logarithmic when
/// the values span at least a decade (see [`LinePanel::new`]); `log_y` needs every y > 0.
pub fn training_curves(
    series: &[Series],
    y_label: &str,
    log_y: bool,
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "training curves";
    if series.is_empty() {
        return Err(data_error(what, "no series to draw"));
    }
    for (name, points) in series {
        if points.is_empty() {
            return Err(data_error(what, format!("series `{name}` has no points")));
        }
        if let Some((x, y)) = points
            .iter()
            .find(|(x, y)| !x.is_finite() || !y.is_finite() || (log_y && *y <= 0.0))
        {
            return Err(data_error(
                what,
                format!(
                    "series `{name}` has the point ({x}, {y}); points must be finite{}",
                    if log_y {
                        " with y > 0 on a log axis"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let lines = series
        .iter()
        .enumerate()
        .map(|(i, s)| (s.clone(), line_color(i)))
        .collect();
    save(
        &Curves(LinePanel::new(y_label, ("step", y_label), lines, log_y)),
        stem,
    )
}

impl Figure for Curves {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        self.0.draw(root)
    }
}

/// Reads a run's `metrics.csv` (`stage,label,step,global_step,loss,lr,tokens_per_second`, then
/// `val_<metric>` columns, empty where not measured) into one series per stage label:
/// `(global_step, column)` for every row where `column` has a value, in file order.
pub fn metrics_series(csv: &Path, column: &str) -> Result<Vec<Series>, AnalysisError> {
    let fail = |message: String| AnalysisError::Csv {
        path: csv.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(csv).map_err(AnalysisError::io(csv))?;
    let frame = CsvReadOptions::default()
        .with_has_header(true)
        .with_infer_schema_length(None)
        .into_reader_with_file_handle(Cursor::new(bytes))
        .finish()
        .map_err(|e| fail(format!("not a readable CSV: {e}")))?;
    let names: Vec<String> = frame
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let get = |name: &str, dtype: DataType| {
        frame
            .column(name)
            .map_err(|_| {
                fail(format!(
                    "no column `{name}`; it has {} (metrics.csv from `hedgehog run` has \
                     label, global_step, loss and val_<metric> columns)",
                    names.join(", ")
                ))
            })?
            .strict_cast(&dtype)
            .map_err(|e| fail(format!("column `{name}` is not {dtype}: {e}")))
    };
    let labels = get("label", DataType::String)?;
    let steps = get("global_step", DataType::Float64)?;
    let values = get(column, DataType::Float64)?;
    let (labels, steps, values) = (
        labels.str().map_err(|e| fail(e.to_string()))?,
        steps.f64().map_err(|e| fail(e.to_string()))?,
        values.f64().map_err(|e| fail(e.to_string()))?,
    );
    let mut series: Vec<Series> = Vec::new();
    for ((label, step), value) in labels.iter().zip(steps.iter()).zip(values.iter()) {
        let (Some(step), Some(value)) = (step, value) else {
            continue;
        };
        let label = label.unwrap_or("").to_string();
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push((step, value)),
            None => series.push((label, vec![(step, value)])),
        }
    }
    Ok(series)
}
