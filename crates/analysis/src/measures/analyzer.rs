//! Accumulation of the measures per (layer, head) over batches, into an [`AttentionReport`].

use serde::{Deserialize, Serialize};

use super::curve::{CurveRange, CurveSums, Row};
use super::entropy::entropy;
use super::input::{LayerAttention, Valid, check_values};
use super::kl::kl;
use super::monotonicity::add_rho;
use super::report::{AttentionReport, HeadStats, LayerReport, SpearmanRows, Summary};
use crate::AnalysisError;

/// How monotonicity curves are binned.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AnalysisConfig {
    /// Number of equal-width bins of the centred score.
    pub bins: usize,
    /// The x range of the curve. Its x is the centred score `s − (the row's maximum score)`,
    /// never above 0, so the bins cover `[lo, min(hi, 0)]` and `lo` must be below 0. Entries
    /// outside the bins are counted in `MonotonicityCurve::outside`, not binned. None:
    /// `[lowest centred score of the first batch added, 0]` (`[-1, 0]` if every one is 0).
    // Cutting at 0 rather than converting a raw-score range `[lo, hi]` into the widest gap it
    // allows, `[lo − hi, 0]`: the specs' `[-12, 12]` then still reads as the axis the figure
    // shows (from −12 up to the top key at 0), and no number appears that no spec wrote.
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
    range: Option<CurveRange>,
    sums: Vec<HeadSums>,
    curves: Vec<CurveSums>,
}

impl AttentionAnalyzer {
    /// An empty analyzer for `layers × heads`. The config is checked by the first [`Self::add`].
    pub fn new(layers: usize, heads: usize, config: AnalysisConfig) -> Self {
        let bins = config.bins;
        Self {
            heads,
            range: config.score_range.map(|(lo, hi)| CurveRange {
                lo,
                hi: hi.min(0.0),
                bins,
            }),
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
            self.range = default_range(batch, &valid, self.config.bins);
        }
        let Some(range) = self.range else {
            return Ok(()); // no valid entry, nothing to fix the bins with or to count
        };
        let mut curve = CurveSums::new(self.config.bins);
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
                    let entries = Row {
                        scores: &row.scores,
                        teacher: &row.teacher,
                        student: row.student.as_deref(),
                        kernel: row.kernel.as_deref(),
                    };
                    curve.add_row(&entries, &range);
                }
            }
        }
        self.curves[layer].merge(&curve);
        Ok(())
    }

    /// The report for everything added, labelled `attention`.
    pub fn finish(self, attention: String) -> AttentionReport {
        let bins = self.config.bins;
        let range = self.range.unwrap_or(CurveRange {
            lo: -1.0,
            hi: 0.0,
            bins,
        });
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
                    row_curve: Some(curve.curve(&range)),
                }
            })
            .collect();
        let all: Vec<&HeadStats> = layers.iter().flat_map(|l| &l.heads).collect();
        AttentionReport {
            attention,
            summary: Summary::of(&all),
            layers,
            row_curve: Some(pooled.curve(&range)),
            example: None,
        }
    }

    fn check_config(&self) -> Result<(), AnalysisError> {
        if self.config.bins == 0 {
            return Err(AnalysisError::Config("bins is 0; use at least 1".into()));
        }
        if let Some((lo, hi)) = self.config.score_range
            && !(lo.is_finite() && hi.is_finite() && lo < hi && lo < 0.0)
        {
            return Err(AnalysisError::Config(format!(
                "score_range ({lo}, {hi}) must be finite with min < max and min < 0: it is the \
                 range of the score minus its row's maximum, which is never above 0"
            )));
        }
        Ok(())
    }
}

/// `[lowest centred score, 0]` over the batch's valid entries (`[-1, 0]` when every valid score
/// is its row's maximum), or None when it has no valid entry.
fn default_range(batch: &LayerAttention, valid: &Valid, bins: usize) -> Option<CurveRange> {
    let [b_n, h_n, _, _] = batch.shape;
    let mut lowest: Option<f64> = None;
    for b in 0..b_n {
        for h in 0..h_n {
            for i in 0..valid.rows(b) {
                let (start, n) = valid.keys(b, h, i, batch);
                let row = &batch.scores[start..start + n];
                let (Some(&min), Some(&max)) = (
                    row.iter().min_by(|a, b| a.total_cmp(b)),
                    row.iter().max_by(|a, b| a.total_cmp(b)),
                ) else {
                    continue;
                };
                let x = f64::from(min) - f64::from(max);
                lowest = Some(lowest.map_or(x, |l| l.min(x)));
            }
        }
    }
    lowest.map(|lo| CurveRange {
        lo: if lo < 0.0 { lo } else { -1.0 },
        hi: 0.0,
        bins,
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
