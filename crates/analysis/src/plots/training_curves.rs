//! Training curves: a run's `metrics.csv` columns against the step.

use std::io::Cursor;
use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use polars::prelude::{CsvReadOptions, DataType, SerReader};

use super::draw::{
    DrawResult, Figure, PALETTE, PlotFiles, data_error, decades, font, save, short, span,
};
use crate::AnalysisError;

/// A named line of `(x, y)` points, e.g. `("softmax", [(step, loss), …])`.
pub type Series = (String, Vec<(f64, f64)>);

struct Curves {
    series: Vec<Series>,
    y_label: String,
    x: (f64, f64),
    y: (f64, f64),
    log_y: bool,
}

/// One line per series (x: step, y: `y_label`). With `log_y` the y axis is logarithmic when
/// the values span at least a decade; a narrower span looks the same on a linear axis, which is
/// used then so that it keeps its tick labels. `log_y` needs every y > 0.
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
    let all = || series.iter().flat_map(|(_, p)| p.iter());
    let x = span(all().map(|p| p.0)).unwrap_or((0.0, 1.0));
    let (lo, hi) = span(all().map(|p| p.1)).unwrap_or((0.0, 1.0));
    // A log axis is labelled at powers of ten only, so it is used from a decade of data up.
    let log_y = log_y && lo > 0.0 && hi / lo >= 10.0;
    let y = if log_y {
        decades((lo, hi))
    } else {
        let pad = (hi - lo) * 0.05;
        (lo - pad, hi + pad)
    };
    save(
        &Curves {
            series: series.to_vec(),
            y_label: y_label.to_string(),
            x,
            y,
            log_y,
        },
        stem,
    )
}

impl Figure for Curves {
    fn size(&self) -> (u32, u32) {
        (1000, 620)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (lo, hi) = self.y;
        if self.log_y {
            let y: LogCoord<f64> = (lo..hi).log_scale().into();
            draw_curves(root, self, y)
        } else {
            let y: RangedCoordf64 = (lo..hi).into();
            draw_curves(root, self, y)
        }
    }
}

fn draw_curves<DB: DrawingBackend, Y>(
    root: &DrawingArea<DB, Shift>,
    fig: &Curves,
    y: Y,
) -> DrawResult<DB>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.y_label, font(26.0))
        .margin(16)
        .x_label_area_size(56)
        .y_label_area_size(80)
        .build_cartesian_2d(fig.x.0..fig.x.1, y)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(fig.y_label.as_str())
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| short(*v))
        .label_style(font(16.0))
        .axis_desc_style(font(18.0))
        .draw()?;
    for (i, (name, points)) in fig.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(
                LineSeries::new(points.clone(), color.stroke_width(2))
                    .point_size(if points.len() <= 30 { 3 } else { 0 }),
            )?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .label_font(font(16.0))
        .draw()
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
