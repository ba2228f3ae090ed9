//! Accumulation of the measures per (layer, head) over batches, into an [`AttentionReport`].

use serde::{Deserialize, Serialize};

use super::entropy::entropy;
use super::input::{LayerAttention, Valid, check_values};
use super::kl::kl;
use super::monotonicity::{CurveSums, add_rho, bin_of};
use super::report::{AttentionReport, HeadStats, LayerReport, SpearmanRows, Summary};
use crate::AnalysisError;

/// How monotonicity curves are binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisConfig {
    /// Number of equal-width score bins.
    pub bins: usize,
    /// Score range of the bins. None: the min and max of the valid scores of the first batch added
    /// (widened by ±0.5 if they are equal). Scores outside the range count in the end bins.
    pub score_range: Option<(f64, f64)>,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self {
            bins: 40,
            score_range: None,
        }
    }
}

#[derive(Clone, Default)]
struct HeadSums {
    rows: u64,
    teacher_entropy: f64,
    student_rows: u64,
    student_entropy: f64,
    kl: f64,
    teacher_rho: (f64, u64),
    student_rho: (f64, u64),
    kernel_rho: (f64, u64),
}

impl HeadSums {
    fn stats(&self, layer: usize, head: usize) -> HeadStats {
        let per = |sum: f64, n: u64| (n > 0).then(|| sum / n as f64);
        HeadStats {
            layer,
            head,
            rows: self.rows,
            teacher_entropy: per(self.teacher_entropy, self.rows),
            student_entropy: per(self.student_entropy, self.student_rows),
            kl: per(self.kl, self.student_rows),
            teacher_spearman: per(self.teacher_rho.0, self.teacher_rho.1),
            student_spearman: per(self.student_rho.0, self.student_rho.1),
            kernel_spearman: per(self.kernel_rho.0, self.kernel_rho.1),
            spearman_rows: SpearmanRows {
                teacher: self.teacher_rho.1,
                student: self.student_rho.1,
                kernel: self.kernel_rho.1,
            },
        }
    }
}

/// Accumulates [`LayerAttention`] batches per (layer, head) and turns them into a report.
#[derive(Clone)]
pub struct AttentionAnalyzer {
    heads: usize,
    config: AnalysisConfig,
    /// Fixed by the config or by the first batch with a valid entry.
    range: Option<(f64, f64)>,
    sums: Vec<HeadSums>,
    curves: Vec<CurveSums>,
}

impl AttentionAnalyzer {
    /// An empty analyzer for `layers × heads`. The config is checked by the first [`Self::add`].
    pub fn new(layers: usize, heads: usize, config: AnalysisConfig) -> Self {
        let bins = config.bins;
        Self {
            heads,
            range: config.score_range,
            config,
            sums: vec![HeadSums::default(); layers * heads],
            curves: vec![CurveSums::new(bins); layers],
        }
    }

    /// Adds one batch of layer `layer`. Nothing is accumulated when it returns an error.
    pub fn add(&mut self, layer: usize, batch: &LayerAttention) -> Result<(), AnalysisError> {
        self.check_config()?;
        let layers = self.curves.len();
        let fail = |message: String| AnalysisError::Input { layer, message };
        if layer >= layers {
            return Err(fail(format!(
                "no such layer: the analyzer was made for {layers} layers (0..{layers})"
            )));
        }
        let valid = Valid::check(batch, self.heads).map_err(fail)?;
        check_values(batch, &valid).map_err(fail)?;
        if self.range.is_none() {
            self.range = default_range(batch, &valid);
        }
        let Some(range) = self.range else {
            return Ok(()); // no valid entry, nothing to fix the bins with or to count
        };
        let bins = self.config.bins;
        let mut curve = CurveSums::new(bins);
        let [b_n, h_n, _, _] = batch.shape;
        let mut row = RowBuffers::default();
        for b in 0..b_n {
            for h in 0..h_n {
                let sums = &mut self.sums[layer * self.heads + h];
                for i in 0..valid.rows(b) {
                    let (start, keys) = valid.keys(b, h, i, batch);
                    row.fill(batch, start, keys);
                    sums.rows += 1;
                    sums.teacher_entropy += entropy(&row.teacher);
                    add_rho(&mut sums.teacher_rho, &row.teacher, &row.scores);
                    if let Some(student) = row.student.as_deref() {
                        sums.student_rows += 1;
                        sums.student_entropy += entropy(student);
                        sums.kl += kl(&row.teacher, student);
                        add_rho(&mut sums.student_rho, student, &row.scores);
                    }
                    if let Some(kernel) = row.kernel.as_deref() {
                        add_rho(&mut sums.kernel_rho, kernel, &row.scores);
                    }
                    for (j, &s) in row.scores.iter().enumerate() {
                        curve.add(
                            bin_of(s, range, bins),
                            row.teacher[j],
                            row.student.as_ref().map(|v| v[j]),
                            row.kernel.as_ref().map(|v| v[j]),
                        );
                    }
                }
            }
        }
        self.curves[layer].merge(&curve);
        Ok(())
    }

    /// The report for everything added, labelled `attention`.
    pub fn finish(self, attention: String) -> AttentionReport {
        let bins = self.config.bins;
        let (lo, hi) = self.range.unwrap_or((0.0, 1.0));
        let edges: Vec<f64> = (0..=bins)
            .map(|e| lo + (hi - lo) * e as f64 / bins as f64)
            .collect();
        let mut pooled = CurveSums::new(bins);
        let layers: Vec<LayerReport> = self
            .curves
            .iter()
            .enumerate()
            .map(|(layer, curve)| {
                pooled.merge(curve);
                let heads: Vec<HeadStats> = (0..self.heads)
                    .map(|h| self.sums[layer * self.heads + h].stats(layer, h))
                    .collect();
                LayerReport {
                    layer,
                    summary: Summary::of(&heads.iter().collect::<Vec<_>>()),
                    heads,
                    curve: curve.curve(&edges),
                }
            })
            .collect();
        let all: Vec<&HeadStats> = layers.iter().flat_map(|l| &l.heads).collect();
        AttentionReport {
            attention,
            summary: Summary::of(&all),
            layers,
            pooled: pooled.curve(&edges),
            example: None,
        }
    }

    fn check_config(&self) -> Result<(), AnalysisError> {
        if self.config.bins == 0 {
            return Err(AnalysisError::Config("bins is 0; use at least 1".into()));
        }
        if let Some((lo, hi)) = self.config.score_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi)
        {
            return Err(AnalysisError::Config(format!(
                "score_range ({lo}, {hi}) must be finite with min < max"
            )));
        }
        Ok(())
    }
}

/// Min and max of the batch's valid scores, or None when it has no valid entry.
fn default_range(batch: &LayerAttention, valid: &Valid) -> Option<(f64, f64)> {
    let [b_n, h_n, _, _] = batch.shape;
    let mut range: Option<(f64, f64)> = None;
    for b in 0..b_n {
        for h in 0..h_n {
            for i in 0..valid.rows(b) {
                let (start, n) = valid.keys(b, h, i, batch);
                for &s in &batch.scores[start..start + n] {
                    let s = f64::from(s);
                    range = Some(range.map_or((s, s), |(lo, hi)| (lo.min(s), hi.max(s))));
                }
            }
        }
    }
    range.map(|(lo, hi)| {
        if lo < hi {
            (lo, hi)
        } else {
            (lo - 0.5, hi + 0.5)
        }
    })
}

/// One row's valid entries in `f64`, reused across rows.
#[derive(Default)]
struct RowBuffers {
    teacher: Vec<f64>,
    student: Option<Vec<f64>>,
    kernel: Option<Vec<f64>>,
    scores: Vec<f64>,
}

impl RowBuffers {
    fn fill(&mut self, batch: &LayerAttention, start: usize, n: usize) {
        let take = |dst: &mut Vec<f64>, src: &[f32]| {
            dst.clear();
            dst.extend(src[start..start + n].iter().map(|&v| f64::from(v)));
        };
        take(&mut self.teacher, batch.teacher);
        take(&mut self.scores, batch.scores);
        for (dst, src) in [
            (&mut self.student, batch.student),
            (&mut self.kernel, batch.kernel),
        ] {
            match src {
                Some(src) => take(dst.get_or_insert_with(Vec::new), src),
                None => *dst = None,
            }
        }
    }
}
