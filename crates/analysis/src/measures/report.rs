//! What the analyzer reports: measures per head, their means, and one example map.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::curve::MonotonicityCurve;
use crate::AnalysisError;

/// Spearman row counts: how many rows had a defined ρ for each series.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SpearmanRows {
    pub teacher: u64,
    pub student: u64,
    pub kernel: u64,
}

/// Measures of one head of one layer, averaged over valid query rows. A value is None where no
/// row defined it (a softmax layer has no student; a row needs three keys for ρ).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HeadStats {
    pub layer: usize,
    pub head: usize,
    /// Valid query rows seen.
    pub rows: u64,
    pub teacher_entropy: Option<f64>,
    pub student_entropy: Option<f64>,
    pub kl: Option<f64>,
    pub teacher_spearman: Option<f64>,
    pub student_spearman: Option<f64>,
    pub kernel_spearman: Option<f64>,
    pub spearman_rows: SpearmanRows,
}

/// Means of [`HeadStats`] over heads (a layer's) or over every layer and head (a report's); each
/// head counts once, and heads where a value is None are left out of that value's mean.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub teacher_entropy: Option<f64>,
    pub student_entropy: Option<f64>,
    pub kl: Option<f64>,
    pub teacher_spearman: Option<f64>,
    pub student_spearman: Option<f64>,
    pub kernel_spearman: Option<f64>,
}

impl Summary {
    pub(super) fn of(heads: &[&HeadStats]) -> Self {
        let mean = |f: fn(&HeadStats) -> Option<f64>| {
            let values: Vec<f64> = heads.iter().filter_map(|h| f(h)).collect();
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        Self {
            teacher_entropy: mean(|h| h.teacher_entropy),
            student_entropy: mean(|h| h.student_entropy),
            kl: mean(|h| h.kl),
            teacher_spearman: mean(|h| h.teacher_spearman),
            student_spearman: mean(|h| h.student_spearman),
            kernel_spearman: mean(|h| h.kernel_spearman),
        }
    }
}

/// One layer: its heads, their means, and its per-row curve over every head.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub layer: usize,
    pub heads: Vec<HeadStats>,
    pub summary: Summary,
    /// None in a report written before the curve was measured per query row (see
    /// [`AttentionReport::row_curve`]).
    #[serde(default)]
    pub row_curve: Option<MonotonicityCurve>,
}

/// One head's attention on one example, for side-by-side pictures; `teacher` and `student` are
/// `[size, size]` row-major, `tokens` has `size` labels or is empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionMap {
    pub layer: usize,
    pub head: usize,
    pub tokens: Vec<String>,
    pub size: usize,
    pub teacher: Vec<f32>,
    pub student: Option<Vec<f32>>,
}

impl AttentionMap {
    /// Checks that the matrices are `size × size` and the tokens fit.
    pub fn validate(&self) -> Result<(), AnalysisError> {
        let cells = self.size * self.size;
        let problem = if self.size == 0 {
            Some("size is 0".to_string())
        } else if self.teacher.len() != cells {
            Some(format!(
                "teacher has {} values, size² = {cells}",
                self.teacher.len()
            ))
        } else if let Some(s) = self.student.as_ref().filter(|s| s.len() != cells) {
            Some(format!("student has {} values, size² = {cells}", s.len()))
        } else if !self.tokens.is_empty() && self.tokens.len() != self.size {
            Some(format!(
                "{} tokens for size {}",
                self.tokens.len(),
                self.size
            ))
        } else {
            None
        };
        match problem {
            Some(p) => Err(AnalysisError::Data(format!(
                "attention map (layer {}, head {}): {p}",
                self.layer, self.head
            ))),
            None => Ok(()),
        }
    }
}

/// Everything measured for one attention kind, written as JSON into a run's `analysis/` folder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttentionReport {
    /// Label such as "softmax", "1+ELU", "Hedgehog (softmax_split)".
    pub attention: String,
    pub layers: Vec<LayerReport>,
    /// The per-row curve over every layer and head. None in a report written before the curve
    /// was measured per query row: those files have a `pooled` curve of raw (score, weight)
    /// pairs instead, which is a different measure, so it is not read into this one; the rest
    /// of such a report still loads.
    #[serde(default)]
    pub row_curve: Option<MonotonicityCurve>,
    /// Means over every layer and head.
    pub summary: Summary,
    pub example: Option<AttentionMap>,
}

impl AttentionReport {
    /// Means over every layer and head (each head counts once).
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Reads a report written by [`AttentionReport::save`] (or the train crate).
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let text = std::fs::read_to_string(path).map_err(AnalysisError::io(path))?;
        serde_json::from_str(&text).map_err(|source| AnalysisError::Json {
            path: path.to_path_buf(),
            what: "attention report",
            source,
        })
    }

    /// Writes the report as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), AnalysisError> {
        let text = serde_json::to_string_pretty(self).map_err(|source| AnalysisError::Json {
            path: path.to_path_buf(),
            what: "attention report",
            source,
        })?;
        std::fs::write(path, text).map_err(AnalysisError::io(path))
    }
}
