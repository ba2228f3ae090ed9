//! Monotonicity: Spearman's ρ between weights and scores within a row, and the weights binned by
//! score.

use serde::{Deserialize, Serialize};

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

#[derive(Clone)]
pub(super) struct CurveSums {
    count: Vec<u64>,
    teacher: Vec<f64>,
    student: Vec<(f64, u64)>,
    kernel: Vec<(f64, u64)>,
}

impl CurveSums {
    pub(super) fn new(bins: usize) -> Self {
        Self {
            count: vec![0; bins],
            teacher: vec![0.0; bins],
            student: vec![(0.0, 0); bins],
            kernel: vec![(0.0, 0); bins],
        }
    }

    pub(super) fn add(
        &mut self,
        bin: usize,
        teacher: f64,
        student: Option<f64>,
        kernel: Option<f64>,
    ) {
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

    pub(super) fn merge(&mut self, other: &Self) {
        for b in 0..self.count.len() {
            self.count[b] += other.count[b];
            self.teacher[b] += other.teacher[b];
            self.student[b].0 += other.student[b].0;
            self.student[b].1 += other.student[b].1;
            self.kernel[b].0 += other.kernel[b].0;
            self.kernel[b].1 += other.kernel[b].1;
        }
    }

    pub(super) fn curve(&self, edges: &[f64]) -> MonotonicityCurve {
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

/// `⌊(s − lo)/(hi − lo) · bins⌋`, clamped to the end bins.
pub(super) fn bin_of(score: f64, (lo, hi): (f64, f64), bins: usize) -> usize {
    let x = ((score - lo) / (hi - lo) * bins as f64).floor();
    if x < 0.0 {
        0
    } else {
        (x as usize).min(bins - 1)
    }
}

pub(super) fn add_rho(acc: &mut (f64, u64), x: &[f64], y: &[f64]) {
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
