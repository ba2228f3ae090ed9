//! One head's attention on one example, softmax beside each map.

use std::path::Path;

use super::draw::{PlotFiles, data_error, save};
use super::heatmap::{Heatmaps, Matrix};
use crate::{AnalysisError, AttentionMap};

/// One head's attention on one example: softmax (the first map's teacher) and then each map's
/// student, side by side on one colour scale. Maps without a student add no panel.
pub fn attention_maps(
    maps: &[(String, AttentionMap)],
    stem: &Path,
) -> Result<PlotFiles, AnalysisError> {
    let what = "attention maps";
    let Some((_, first)) = maps.first() else {
        return Err(data_error(what, "no attention maps to draw"));
    };
    for (label, m) in maps {
        m.validate()
            .map_err(|e| data_error(what, format!("{label}: {e}")))?;
        if m.size != first.size {
            return Err(data_error(
                what,
                format!("{label} has size {}, the first map {}", m.size, first.size),
            ));
        }
        let values = m.teacher.iter().chain(m.student.iter().flatten());
        if let Some(v) = values.into_iter().find(|v| !v.is_finite()) {
            return Err(data_error(what, format!("{label} holds the weight {v}")));
        }
    }
    let size = first.size;
    let tokens: Vec<String> = if first.tokens.is_empty() {
        (0..size).map(|i| i.to_string()).collect()
    } else {
        first.tokens.iter().map(|t| shorten(t, 12)).collect()
    };
    let matrix = |title: &str, weights: &[f32]| Matrix {
        title: title.to_string(),
        rows: size,
        cols: size,
        values: weights.iter().map(|&w| Some(f64::from(w))).collect(),
        row_labels: tokens.clone(),
        col_labels: tokens.clone(),
        x_desc: "key".into(),
        y_desc: "query".into(),
        annotate: false,
    };
    let mut panels = vec![matrix("softmax", &first.teacher)];
    for (label, m) in maps {
        if let Some(student) = &m.student {
            panels.push(matrix(label, student));
        }
    }
    let max = panels
        .iter()
        .flat_map(|m| m.values.iter().flatten())
        .fold(0.0, |a: f64, &b| a.max(b));
    let panel = (22 * size as u32).clamp(320, 560);
    save(
        &Heatmaps {
            title: format!(
                "Attention weights, layer {} head {}",
                first.layer, first.head
            ),
            panels,
            scale: (0.0, if max > 0.0 { max } else { 1.0 }),
            scale_label: "weight".into(),
            panel_size: (panel + 150, panel + 200),
        },
        stem,
    )
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).chain(['…']).collect()
    }
}
