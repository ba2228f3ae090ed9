//! Spikiness, monotonicity and fidelity of attention weights (method.md §5).
//!
//! Inputs are plain row-major `f32` slices of shape `[B, H, T, S]`; everything is accumulated in
//! `f64`. A query row `i` of batch row `b` is valid when `i < min(length_b, T)`; a key `j` is valid
//! for it when `j < min(length_b, S)` and, for causal attention, `j ≤ i`. Invalid entries are never
//! read, so padding may hold anything (−∞ scores included).
//!
//! Per (layer, head), averaged over the valid query rows of every batch added:
//! - entropy `H_i = −Σ_j w_ij ln w_ij` (nats, `0·ln 0 = 0`) of the teacher `a` and the student `â`,
//!   taken over the valid keys as given (no renormalisation);
//! - fidelity `KL(a‖â) = Σ_j a_ij (ln a_ij − ln max(â_ij, 10⁻¹²))`;
//! - monotonicity: Spearman's ρ within each row between the weights (teacher, student, raw kernel
//!   `φ(q_i)·φ(k_j)`) and the scores `q_i·k_j/√d`, with average ranks for ties; rows with fewer than
//!   three valid keys, or whose weights or scores are all equal, have no ρ and are left out.
//!
//! Softmax is exactly monotonic, so its ρ is 1 in every row (paper §3, "monotonicity").

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::AnalysisError;

/// `â` is floored here before its logarithm: a linear map can put exactly zero weight on a key
/// that softmax never does, and KL would be infinite.
pub const KL_FLOOR: f64 = 1e-12;

/// One layer's attention on one batch, as row-major slices of shape `[B, H, T, S]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerAttention<'a> {
    /// `[B, H, T, S]` (S = T for self-attention).
    pub shape: [usize; 4],
    /// Softmax weights `a_ij`.
    pub teacher: &'a [f32],
    /// The linear map's normalised weights `â_ij` (None for a softmax layer).
    pub student: Option<&'a [f32]>,
    /// Raw `φ(q_i)·φ(k_j)` (None for softmax).
    pub kernel: Option<&'a [f32]>,
    /// `q_i·k_j/√d`.
    pub scores: &'a [f32],
    /// Valid entries are `j ≤ i`.
    pub causal: bool,
    /// Real tokens per batch row; query rows and keys at or past it are padding.
    pub lengths: Option<&'a [usize]>,
}

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
    fn of(heads: &[&HeadStats]) -> Self {
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

/// Binned means of the weights against the score `q·k/√d` over all valid entries.
/// `edges` has `bins + 1` values; a mean is None for a bin with no entry of that series.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonotonicityCurve {
    pub edges: Vec<f64>,
    /// Valid entries per bin.
    pub count: Vec<u64>,
    pub teacher: Vec<Option<f64>>,
    pub student: Vec<Option<f64>>,
    pub kernel: Vec<Option<f64>>,
}

impl MonotonicityCurve {
    /// Bin centres, for plotting.
    pub fn centers(&self) -> Vec<f64> {
        self.edges.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }
}

/// One layer: its heads, their means, and its curve pooled over heads.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    pub layer: usize,
    pub heads: Vec<HeadStats>,
    pub summary: Summary,
    pub curve: MonotonicityCurve,
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
    /// The curve over every layer and head.
    pub pooled: MonotonicityCurve,
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

#[derive(Clone)]
struct CurveSums {
    count: Vec<u64>,
    teacher: Vec<f64>,
    student: Vec<(f64, u64)>,
    kernel: Vec<(f64, u64)>,
}

impl CurveSums {
    fn new(bins: usize) -> Self {
        Self {
            count: vec![0; bins],
            teacher: vec![0.0; bins],
            student: vec![(0.0, 0); bins],
            kernel: vec![(0.0, 0); bins],
        }
    }

    fn add(&mut self, bin: usize, teacher: f64, student: Option<f64>, kernel: Option<f64>) {
        self.count[bin] += 1;
        self.teacher[bin] += teacher;
        if let Some(s) = student {
            self.student[bin].0 += s;
            self.student[bin].1 += 1;
        }
        if let Some(k) = kernel {
            self.kernel[bin].0 += k;
            self.kernel[bin].1 += 1;
        }
    }

    fn merge(&mut self, other: &Self) {
        for b in 0..self.count.len() {
            self.count[b] += other.count[b];
            self.teacher[b] += other.teacher[b];
            self.student[b].0 += other.student[b].0;
            self.student[b].1 += other.student[b].1;
            self.kernel[b].0 += other.kernel[b].0;
            self.kernel[b].1 += other.kernel[b].1;
        }
    }

    fn curve(&self, edges: &[f64]) -> MonotonicityCurve {
        let mean = |(sum, n): (f64, u64)| (n > 0).then(|| sum / n as f64);
        MonotonicityCurve {
            edges: edges.to_vec(),
            count: self.count.clone(),
            teacher: (self.count.iter().zip(&self.teacher))
                .map(|(&n, &s)| mean((s, n)))
                .collect(),
            student: self.student.iter().copied().map(mean).collect(),
            kernel: self.kernel.iter().copied().map(mean).collect(),
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

/// The valid region of one batch, after its slices and lengths were checked against its shape.
struct Valid<'a> {
    shape: [usize; 4],
    causal: bool,
    lengths: Option<&'a [usize]>,
}

impl<'a> Valid<'a> {
    fn check(batch: &LayerAttention<'a>, heads: usize) -> Result<Self, String> {
        let [b, h, t, s] = batch.shape;
        if h != heads {
            return Err(format!(
                "shape {:?} has {h} heads, the analyzer was made for {heads}",
                batch.shape
            ));
        }
        let n = b * h * t * s;
        let slices = [
            ("teacher", Some(batch.teacher)),
            ("student", batch.student),
            ("kernel", batch.kernel),
            ("scores", Some(batch.scores)),
        ];
        for (name, slice) in slices {
            if let Some(len) = slice.map(<[f32]>::len).filter(|&len| len != n) {
                return Err(format!(
                    "{name} has {len} values, shape [B, H, T, S] = {:?} needs {n}",
                    batch.shape
                ));
            }
        }
        if let Some(lengths) = batch.lengths {
            if lengths.len() != b {
                return Err(format!(
                    "lengths has {} entries, one per batch row (B = {b}) is needed",
                    lengths.len()
                ));
            }
            if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, l)| **l > t.max(s)) {
                return Err(format!(
                    "lengths[{row}] = {len} is longer than the sequence ({})",
                    t.max(s)
                ));
            }
        }
        Ok(Self {
            shape: batch.shape,
            causal: batch.causal,
            lengths: batch.lengths,
        })
    }

    fn length(&self, b: usize) -> usize {
        self.lengths.map_or(usize::MAX, |l| l[b])
    }

    /// Valid query rows of batch row `b`: `0..rows(b)`.
    fn rows(&self, b: usize) -> usize {
        self.length(b).min(self.shape[2])
    }

    /// The flat index of `(b, h, i, 0)` and the number of valid keys of that row (keys `0..n`).
    fn keys(&self, b: usize, h: usize, i: usize, batch: &LayerAttention) -> (usize, usize) {
        let [_, h_n, t, s] = batch.shape;
        let mut n = self.length(b).min(s);
        if self.causal {
            n = n.min(i + 1);
        }
        (((b * h_n + h) * t + i) * s, n)
    }
}

/// Every valid entry must be finite and the weights non-negative: a NaN would silently poison
/// every mean, and a negative weight has no entropy.
fn check_values(batch: &LayerAttention, valid: &Valid) -> Result<(), String> {
    let [b_n, h_n, _, _] = batch.shape;
    let named = [
        ("teacher", Some(batch.teacher), true),
        ("student", batch.student, true),
        ("kernel", batch.kernel, false),
        ("scores", Some(batch.scores), false),
    ];
    for (name, slice, weight) in named {
        let Some(slice) = slice else { continue };
        for b in 0..b_n {
            for h in 0..h_n {
                for i in 0..valid.rows(b) {
                    let (start, n) = valid.keys(b, h, i, batch);
                    if let Some(j) = slice[start..start + n]
                        .iter()
                        .position(|&v| !v.is_finite() || (weight && v < 0.0))
                    {
                        let v = slice[start + j];
                        return Err(format!(
                            "{name}[{b}, {h}, {i}, {j}] = {v} (valid entries must be finite{})",
                            if weight { " and non-negative" } else { "" }
                        ));
                    }
                }
            }
        }
    }
    Ok(())
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

/// `⌊(s − lo)/(hi − lo) · bins⌋`, clamped to the end bins.
fn bin_of(score: f64, (lo, hi): (f64, f64), bins: usize) -> usize {
    let x = ((score - lo) / (hi - lo) * bins as f64).floor();
    if x < 0.0 {
        0
    } else {
        (x as usize).min(bins - 1)
    }
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

/// `H = −Σ w ln w` in nats, with `0·ln 0 = 0`.
pub fn entropy(weights: &[f64]) -> f64 {
    -weights
        .iter()
        .filter(|&&w| w > 0.0)
        .map(|&w| w * w.ln())
        .sum::<f64>()
}

/// `KL(a‖â) = Σ a (ln a − ln max(â, 10⁻¹²))`, with `0·ln 0 = 0`.
pub fn kl(teacher: &[f64], student: &[f64]) -> f64 {
    teacher
        .iter()
        .zip(student)
        .filter(|&(&a, _)| a > 0.0)
        .map(|(&a, &s)| a * (a.ln() - s.max(KL_FLOOR).ln()))
        .sum()
}

fn add_rho(acc: &mut (f64, u64), x: &[f64], y: &[f64]) {
    if let Some(rho) = spearman(x, y) {
        acc.0 += rho;
        acc.1 += 1;
    }
}

/// Spearman's ρ: the Pearson correlation of average ranks. None for fewer than three pairs or
/// when either side is constant (ρ is undefined there).
pub fn spearman(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 3 {
        return None;
    }
    let (rx, ry) = (ranks(x), ranks(y));
    // Average ranks keep the rank sum, so both means are exactly (n + 1)/2.
    let mean = (x.len() as f64 + 1.0) / 2.0;
    let (mut cov, mut vx, mut vy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        let (da, db) = (a - mean, b - mean);
        cov += da * db;
        vx += da * da;
        vy += db * db;
    }
    (vx > 0.0 && vy > 0.0).then(|| cov / (vx * vy).sqrt())
}

/// 1-based ranks; tied values share the mean of the ranks they span.
fn ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // positions start..end hold ranks start+1..=end
        let rank = (start + 1 + end) as f64 / 2.0;
        for &k in &order[start..end] {
            ranks[k] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_average_ties() {
        assert_eq!(ranks(&[3.0, 1.0, 3.0, 2.0]), vec![3.5, 1.0, 3.5, 2.0]);
    }

    #[test]
    fn spearman_needs_three_distinct() {
        assert_eq!(spearman(&[1.0, 2.0], &[1.0, 2.0]), None);
        assert_eq!(spearman(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 30.0]), Some(1.0));
    }

    #[test]
    fn bins_clamp_to_the_ends() {
        assert_eq!(bin_of(-5.0, (0.0, 1.0), 4), 0);
        assert_eq!(bin_of(1.0, (0.0, 1.0), 4), 3);
        assert_eq!(bin_of(7.0, (0.0, 1.0), 4), 3);
        assert_eq!(bin_of(0.49, (0.0, 1.0), 4), 1);
    }
}
