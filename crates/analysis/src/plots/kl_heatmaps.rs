//! The fidelity figure: KL(softmax ‖ map) per layer and head.

use std::path::Path;

use super::draw::{PlotFiles, data_error, save};
use super::heatmap::{Heatmaps, Matrix};
use crate::{AnalysisError, AttentionReport};

fn kl_matrix(report: &AttentionReport) -> Option<Matrix> {
    let rows = report.layers.len();
    let cols = report.layers.iter().map(|l| l.heads.len()).max()?;
    let mut values = vec![None; rows * cols];
    for (r, layer) in report.layers.iter().enumerate() {
        for (c, head) in layer.heads.iter().enumerate() {
            values[r * cols + c] = head.kl.filter(|v| v.is_finite());
        }
    }
    values.iter().any(Option::is_some).then(|| Matrix {
        title: report.attention.clone(),
        rows,
        cols,
        values,
        row_labels: (0..rows).map(|l| l.to_string()).collect(),
        col_labels: (0..cols).map(|h| h.to_string()).collect(),
        x_desc: "head".into(),
        y_desc: "layer".into(),
        annotate: rows * cols <= 64,
    })
}

/// KL(a‖â) per layer × head (method.md §5, "fidelity") of one report.
pub fn kl_heatmap(report: &AttentionReport, stem: &Path) -> Result<PlotFiles, AnalysisError> {
    kl_heatmaps(std::slice::from_ref(report), stem)
}

/// KL(a‖â) per layer × head, one panel per map on one colour scale (0 to the largest KL).
/// Reports without a student (softmax) are left out; it is an error if none has a KL.
pub fn kl_heatmaps(reports: &[AttentionReport], stem: &Path) -> Result<PlotFiles, AnalysisError> {
    let panels: Vec<Matrix> = reports.iter().filter_map(kl_matrix).collect();
    if panels.is_empty() {
        return Err(data_error(
            "KL heatmap",
            "no report has a KL value (softmax-only reports have none; analyse a linear map)",
        ));
    }
    let max = panels
        .iter()
        .flat_map(|m| m.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    let side = panels.iter().map(|m| m.rows.max(m.cols)).max().unwrap_or(1) as u32;
    let panel = (40 * side).clamp(300, 520);
    save(
        &Heatmaps {
            title: "Fidelity: KL(softmax ‖ map) per layer and head, nats".into(),
            panels,
            scale: (0.0, if max > 0.0 { max } else { 1.0 }),
            scale_label: "KL (nats)".into(),
            panel_size: (panel + 120, panel + 110),
        },
        stem,
    )
}
