//! The monotonicity curve, measured per query row (method.md §5): within each row, every weight
//! relative to the weight of the row's top-scoring key, against the score relative to the row's
//! maximum score; then binned and averaged over rows.
//!
//! Pooling raw `(score, weight)` pairs of many rows would mix the rows' normalisers: a row with a
//! few large scores gives small weights to scores that are large in another row, and even softmax
//! then looks non-monotone. Relative to its own top key a row's normaliser cancels, and softmax
//! is exactly `y = exp(x)` in every row.

use serde::{Deserialize, Serialize};

/// Per-row binned means: entry `j` of a row with scores `s` and weights `w` (top key
/// `r = argmax_j s_j`, the first on ties) is at `x = s_j − s_r ≤ 0` with `y = w_j / w_r`, for the
/// teacher `a`, the student `â` and the raw kernel `φ(q)·φ(k)` each. `edges` has `bins + 1`
/// values; a mean is None for a bin with no entry of that series.
///
/// A monotone map has `y ≤ 1` at every `x < 0`; softmax has `y = exp(x)` exactly, so each bin's
/// teacher mean lies in `[exp(lo), exp(hi)]` of that bin.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonotonicityCurve {
    pub edges: Vec<f64>,
    /// Valid entries per bin.
    pub count: Vec<u64>,
    pub teacher: Vec<Option<f64>>,
    pub student: Vec<Option<f64>>,
    pub kernel: Vec<Option<f64>>,
    /// Valid entries whose `x` fell outside the edges, and so in no bin.
    pub outside: u64,
    /// Rows left out of a series because the weight of their top key was not positive, so
    /// nothing could be taken relative to it.
    pub skipped_rows: SkippedRows,
}

impl MonotonicityCurve {
    /// Bin centres, for plotting.
    pub fn centers(&self) -> Vec<f64> {
        self.edges.windows(2).map(|w| 0.5 * (w[0] + w[1])).collect()
    }
}

/// Rows per series whose top key had a zero (or, for the raw kernel, negative) value.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRows {
    pub teacher: u64,
    pub student: u64,
    pub kernel: u64,
}

/// Equal-width bins over the closed range `[lo, hi]` of the centred score `x`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct CurveRange {
    pub(super) lo: f64,
    pub(super) hi: f64,
    pub(super) bins: usize,
}

impl CurveRange {
    /// `⌊(x − lo)/(hi − lo) · bins⌋`, with `x = hi` in the last bin; None outside `[lo, hi]`.
    /// Entries below the range are left out rather than clamped into the first bin: clamped,
    /// a long tail of tiny weights would pull that bin far below its neighbours.
    pub(super) fn bin(&self, x: f64) -> Option<usize> {
        if !(self.lo..=self.hi).contains(&x) {
            return None;
        }
        let bin = ((x - self.lo) / (self.hi - self.lo) * self.bins as f64).floor();
        Some((bin as usize).min(self.bins - 1))
    }

    pub(super) fn edges(&self) -> Vec<f64> {
        (0..=self.bins)
            .map(|e| self.lo + (self.hi - self.lo) * e as f64 / self.bins as f64)
            .collect()
    }
}

/// The row's top-scoring key: the first maximum of `scores`, None for an empty row.
pub(super) fn top_key(scores: &[f64]) -> Option<usize> {
    let mut top: Option<usize> = None;
    for (j, &s) in scores.iter().enumerate() {
        if top.is_none_or(|t| s > scores[t]) {
            top = Some(j);
        }
    }
    top
}

/// Sums and counts per bin of one series, and the rows it had to skip.
#[derive(Clone)]
struct SeriesSums {
    bins: Vec<(f64, u64)>,
    skipped_rows: u64,
}

impl SeriesSums {
    fn new(bins: usize) -> Self {
        Self {
            bins: vec![(0.0, 0); bins],
            skipped_rows: 0,
        }
    }

    /// Adds `weights[j] / weights[top]` to the bin of entry `j`. The reference must be positive:
    /// a zero one would divide by zero, and a negative kernel value would flip every sign.
    fn add_row(&mut self, weights: &[f64], top: usize, bins: &[Option<usize>]) {
        let reference = weights[top];
        if !(reference > 0.0 && reference.is_finite()) {
            self.skipped_rows += 1;
            return;
        }
        for (&w, bin) in weights.iter().zip(bins) {
            if let Some(b) = *bin {
                self.bins[b].0 += w / reference;
                self.bins[b].1 += 1;
            }
        }
    }

    fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.bins.iter_mut().zip(&other.bins) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        self.skipped_rows += other.skipped_rows;
    }

    fn means(&self) -> Vec<Option<f64>> {
        (self.bins.iter())
            .map(|&(sum, n)| (n > 0).then(|| sum / n as f64))
            .collect()
    }
}

/// One query row's valid entries, each series as `f64`.
pub(super) struct Row<'a> {
    pub(super) scores: &'a [f64],
    pub(super) teacher: &'a [f64],
    pub(super) student: Option<&'a [f64]>,
    pub(super) kernel: Option<&'a [f64]>,
}

/// The sums behind a [`MonotonicityCurve`], added to row by row and merged over heads and layers.
#[derive(Clone)]
pub(super) struct CurveSums {
    count: Vec<u64>,
    outside: u64,
    teacher: SeriesSums,
    student: SeriesSums,
    kernel: SeriesSums,
    /// The bin of each entry of the row being added, kept to reuse its allocation.
    row_bins: Vec<Option<usize>>,
}

impl CurveSums {
    pub(super) fn new(bins: usize) -> Self {
        Self {
            count: vec![0; bins],
            outside: 0,
            teacher: SeriesSums::new(bins),
            student: SeriesSums::new(bins),
            kernel: SeriesSums::new(bins),
            row_bins: Vec::new(),
        }
    }

    pub(super) fn add_row(&mut self, row: &Row, range: &CurveRange) {
        let Some(top) = top_key(row.scores) else {
            return;
        };
        let max = row.scores[top];
        self.row_bins.clear();
        self.row_bins
            .extend(row.scores.iter().map(|&s| range.bin(s - max)));
        for bin in &self.row_bins {
            match *bin {
                Some(b) => self.count[b] += 1,
                None => self.outside += 1,
            }
        }
        self.teacher.add_row(row.teacher, top, &self.row_bins);
        if let Some(student) = row.student {
            self.student.add_row(student, top, &self.row_bins);
        }
        if let Some(kernel) = row.kernel {
            self.kernel.add_row(kernel, top, &self.row_bins);
        }
    }

    pub(super) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.count.iter_mut().zip(&other.count) {
            *mine += theirs;
        }
        self.outside += other.outside;
        self.teacher.merge(&other.teacher);
        self.student.merge(&other.student);
        self.kernel.merge(&other.kernel);
    }

    pub(super) fn curve(&self, range: &CurveRange) -> MonotonicityCurve {
        MonotonicityCurve {
            edges: range.edges(),
            count: self.count.clone(),
            teacher: self.teacher.means(),
            student: self.student.means(),
            kernel: self.kernel.means(),
            outside: self.outside,
            skipped_rows: SkippedRows {
                teacher: self.teacher.skipped_rows,
                student: self.student.skipped_rows,
                kernel: self.kernel.skipped_rows,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_cover_the_closed_range_and_nothing_outside() {
        let range = CurveRange {
            lo: -4.0,
            hi: 0.0,
            bins: 4,
        };
        assert_eq!(range.bin(-4.0), Some(0));
        assert_eq!(range.bin(0.0), Some(3));
        assert_eq!(range.bin(-2.01), Some(1));
        assert_eq!(range.bin(-4.5), None);
        assert_eq!(range.bin(0.5), None);
        assert_eq!(range.edges(), vec![-4.0, -3.0, -2.0, -1.0, 0.0]);
    }

    #[test]
    fn the_top_key_is_the_first_maximum() {
        assert_eq!(top_key(&[1.0, 3.0, 2.0, 3.0]), Some(1));
        assert_eq!(top_key(&[]), None);
    }

    #[test]
    fn a_row_whose_top_weight_is_zero_is_skipped_for_that_series_only() {
        let range = CurveRange {
            lo: -2.0,
            hi: 0.0,
            bins: 2,
        };
        let mut sums = CurveSums::new(2);
        sums.add_row(
            &Row {
                scores: &[0.0, -1.5, 0.5],
                teacher: &[0.25, 0.125, 0.5],
                student: Some(&[0.6, 0.4, 0.0]),
                kernel: Some(&[1.0, 2.0, -1.0]),
            },
            &range,
        );
        let curve = sums.curve(&range);
        assert_eq!(curve.count, vec![1, 2]);
        assert_eq!(curve.outside, 0);
        assert_eq!(
            curve.skipped_rows,
            SkippedRows {
                teacher: 0,
                student: 1,
                kernel: 1
            }
        );
        // x = −2 (y = 0.125/0.5) in bin 0; x = −0.5 (0.25/0.5) and x = 0 (1) in bin 1
        assert_eq!(curve.teacher, vec![Some(0.25), Some(0.75)]);
        assert_eq!(curve.student, vec![None, None]);
    }
}
