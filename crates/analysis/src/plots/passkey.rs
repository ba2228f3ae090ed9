//! The passkey figures: retrieval accuracy per (context length, depth), and what generation
//! costs per context length (the decoding cache and the time per generated token).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::draw::{DrawResult, Figure, LinePanel, PlotFiles, Series, data_error, line_color, save};
use super::heatmap::{Heatmaps, Matrix};
use crate::AnalysisError;
use crate::tables::{PasskeyReport, PasskeySpeed};

/// Depths are fractions written by the stage; two within this are the same depth.
const SAME_DEPTH: f64 = 1e-9;

fn accuracy_matrix(report: &PasskeyReport) -> Matrix {
    let (rows, cols) = (report.depths.len(), report.lengths.len());
    let mut values = vec![None; rows * cols];
    for cell in report.cells.iter().filter(|c| c.accuracy.is_finite()) {
        let row = report
            .depths
            .iter()
            .position(|d| (d - cell.depth).abs() < SAME_DEPTH);
        let col = report.lengths.iter().position(|&l| l == cell.length);
        if let (Some(r), Some(c)) = (row, col) {
            values[r * cols + c] = Some(cell.accuracy);
        }
    }
    Matrix {
        title: report.attention.clone(),
        rows,
        cols,
        values,
        // Depth 0 (the key at the start of the prompt) is the top row.
        row_labels: report.depths.iter().map(|d| format!("{d:.2}")).collect(),
        col_labels: report.lengths.iter().map(usize::to_string).collect(),
        x_desc: "context length (tokens)".into(),
        y_desc: "depth of the key".into(),
        annotate: true,
    }
}

/// Passkey accuracy per context length × depth, one panel per report (titled with its
/// `attention`), on one 0..1 scale with each cell's value written in it. An error if there is
/// no report or a report has no lengths or depths.
pub fn passkey_heatmaps(
    reports: &[PasskeyReport],
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "passkey heatmaps";
    if reports.is_empty() {
        return Err(data_error(what, "no passkey report to draw"));
    }
    if let Some(r) = reports
        .iter()
        .find(|r| r.lengths.is_empty() || r.depths.is_empty())
    {
        return Err(data_error(
            what,
            format!(
                "the report of `{}` has no lengths or no depths",
                r.attention
            ),
        ));
    }
    let panels: Vec<Matrix> = reports.iter().map(accuracy_matrix).collect();
    let (rows, cols) = panels
        .iter()
        .fold((1, 1), |(r, c), m| (m.rows.max(r), m.cols.max(c)));
    // Cells wide enough (heatmap.rs writes values into cells of 34 px and up) for "0.75".
    let size = |cells: usize, labels: u32| (64 * cells as u32).clamp(260, 640) + labels;
    save(
        &Heatmaps {
            title: "Passkey retrieval accuracy by context length and depth".into(),
            panels,
            scale: (0.0, 1.0),
            scale_label: "accuracy".into(),
            panel_size: (size(cols, 150), size(rows, 150)),
        },
        stem,
    )
}

struct GenerationMemory {
    cache: LinePanel,
    speed: LinePanel,
}

impl Figure for GenerationMemory {
    fn size(&self) -> (u32, u32) {
        (1700, 640)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let (w, _) = root.dim_in_pixel();
        let (left, right) = root.split_horizontally(w / 2);
        self.cache.draw(&left)?;
        self.speed.draw(&right)
    }
}

/// One line per report of `value` against the context length, its points sorted by length;
/// values that are absent, not finite, or (`positive`) not above 0 are left out.
fn speed_lines(
    reports: &[PasskeyReport],
    value: impl Fn(&PasskeySpeed) -> Option<f64>,
    positive: bool,
) -> Vec<(Series, RGBColor)> {
    let mut lines = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        let mut points: Vec<(f64, f64)> = report
            .speed
            .iter()
            .filter_map(|s| value(s).map(|v| (s.length as f64, v)))
            .filter(|&(_, v)| v.is_finite() && (!positive || v > 0.0))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        // The colour goes by the report, so a map keeps it in both panels.
        if !points.is_empty() {
            lines.push(((report.attention.clone(), points), line_color(i)));
        }
    }
    lines
}

/// Two panels against the context length, one line per report (its `attention`): the decoding
/// cache after the prompt in bytes (log y from a decade up) and the milliseconds per generated
/// token. An error if no report has a value for either panel.
pub fn generation_memory(
    reports: &[PasskeyReport],
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let cache = speed_lines(
        reports,
        |s| s.cache_bytes_after_prefill.map(|b| b as f64),
        true,
    );
    let speed = speed_lines(reports, |s| s.ms_per_token, false);
    for (lines, what) in [
        (&cache, "cache_bytes_after_prefill"),
        (&speed, "ms_per_token"),
    ] {
        if lines.is_empty() {
            return Err(data_error(
                "generation memory",
                format!(
                    "no passkey report has a `speed` row with `{what}` (re-run the passkey stage)"
                ),
            ));
        }
    }
    let x_desc = "context length (tokens)";
    save(
        &GenerationMemory {
            cache: LinePanel::new(
                "Decoding cache after the prompt",
                (x_desc, "bytes"),
                cache,
                true,
            ),
            speed: LinePanel::new("Time per generated token", (x_desc, "ms"), speed, false),
        },
        stem,
    )
}
