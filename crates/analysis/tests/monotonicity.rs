//! The monotonicity curve is measured within each query row (method.md §5): softmax comes out
//! exactly `exp(x)`, where pooling raw (score, weight) pairs over rows would not be monotone,
//! and a map that does not favour the top-scoring key rises above 1.

use hedgehog_analysis::{AnalysisConfig, AttentionAnalyzer, LayerAttention, MonotonicityCurve};

/// A fixed xorshift stream, enough for test inputs.
struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f64 {
        let mut uniform = || {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

const KEYS: usize = 16;

/// `rows × KEYS` scores: every third row has one key at 12 and three near 7, the others are
/// standard normal. The rows' normalisers then differ by orders of magnitude.
fn scores_with_mixed_normalisers(rng: &mut Rng, rows: usize) -> Vec<f64> {
    let mut scores = Vec::with_capacity(rows * KEYS);
    for i in 0..rows {
        for j in 0..KEYS {
            let s = match (i % 3, j) {
                (0, 0) => 12.0,
                (0, 1..=3) => 7.0 + 0.3 * rng.normal(),
                _ => rng.normal(),
            };
            scores.push(s);
        }
    }
    scores
}

/// Each row of `values` divided by its sum.
fn normalise_rows(values: &[f64]) -> Vec<f32> {
    values
        .chunks(KEYS)
        .flat_map(|row| {
            let sum: f64 = row.iter().sum();
            row.iter().map(move |v| (v / sum) as f32)
        })
        .collect()
}

fn softmax_rows(scores: &[f64]) -> Vec<f32> {
    let exp: Vec<f64> = scores
        .chunks(KEYS)
        .flat_map(|row| {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            row.iter().map(move |s| (s - max).exp())
        })
        .collect();
    normalise_rows(&exp)
}

fn to_f32(values: &[f64]) -> Vec<f32> {
    values.iter().map(|&v| v as f32).collect()
}

/// The report's curve for one non-causal `[1, 1, rows, KEYS]` batch.
fn curve_of(
    config: AnalysisConfig,
    scores: &[f32],
    teacher: &[f32],
    student: Option<&[f32]>,
    kernel: Option<&[f32]>,
) -> MonotonicityCurve {
    let mut analyzer = AttentionAnalyzer::new(1, 1, config);
    let batch = LayerAttention {
        shape: [1, 1, scores.len() / KEYS, KEYS],
        teacher,
        student,
        kernel,
        scores,
        causal: false,
        lengths: None,
    };
    analyzer.add(0, &batch).expect("valid batch");
    let report = analyzer.finish("test".into());
    report.row_curve.expect("a new report has a per-row curve")
}

/// The old measure, for contrast: mean weight per bin of the raw score, pairs of all rows mixed.
fn pooled_over_rows(scores: &[f32], weights: &[f32], bins: usize) -> Vec<Option<f64>> {
    let (lo, hi) = scores
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    let (lo, hi) = (f64::from(lo), f64::from(hi));
    let mut sums = vec![(0.0, 0u64); bins];
    for (&s, &w) in scores.iter().zip(weights) {
        let bin = ((f64::from(s) - lo) / (hi - lo) * bins as f64).floor() as usize;
        let bin = bin.min(bins - 1);
        sums[bin].0 += f64::from(w);
        sums[bin].1 += 1;
    }
    sums.iter()
        .map(|&(sum, n)| (n > 0).then(|| sum / n as f64))
        .collect()
}

fn is_non_decreasing(means: &[Option<f64>]) -> bool {
    let defined: Vec<f64> = means.iter().flatten().copied().collect();
    defined.windows(2).all(|w| w[0] <= w[1])
}

#[test]
fn softmax_is_exactly_exp_of_the_centred_score_where_pooling_rows_is_not_monotone() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let scores = scores_with_mixed_normalisers(&mut rng, 60);
    let teacher = softmax_rows(&scores);
    let scores = to_f32(&scores);
    let config = AnalysisConfig {
        bins: 12,
        score_range: None,
    };
    let curve = curve_of(config, &scores, &teacher, None, None);

    assert_eq!(curve.outside, 0, "the default range holds every entry");
    assert_eq!(curve.skipped_rows.teacher, 0);
    assert_eq!(*curve.edges.last().unwrap(), 0.0, "the top key is at x = 0");
    assert!(curve.edges[0] < -12.0, "{:?}", curve.edges);
    assert!(
        is_non_decreasing(&curve.teacher),
        "per row, softmax is monotone: {:?}",
        curve.teacher
    );
    // y = exp(x) entry by entry, so each bin's mean lies between exp of its edges (up to the
    // f32 rounding of the weights).
    for (bin, mean) in curve.teacher.iter().enumerate() {
        let Some(mean) = *mean else { continue };
        let (lo, hi) = (curve.edges[bin].exp(), curve.edges[bin + 1].exp());
        assert!(
            mean >= lo * (1.0 - 1e-6) && mean <= hi * (1.0 + 1e-6),
            "bin {bin}: mean {mean} outside [{lo}, {hi}]"
        );
    }
    assert!(curve.teacher.iter().filter(|m| m.is_some()).count() >= 8);

    let pooled = pooled_over_rows(&scores, &teacher, 12);
    assert!(
        !is_non_decreasing(&pooled),
        "pooled over rows the same softmax should look non-monotone: {pooled:?}"
    );
}

#[test]
fn a_map_that_does_not_favour_the_top_key_rises_above_one() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let scores: Vec<f64> = (0..40 * KEYS).map(|_| 2.0 * rng.normal()).collect();
    let teacher = softmax_rows(&scores);
    // Weights ∝ exp(−|s|): largest at s = 0, not at the top-scoring key.
    let kernel: Vec<f64> = scores.iter().map(|s| (-s.abs()).exp()).collect();
    let student = normalise_rows(&kernel);
    let (scores, kernel) = (to_f32(&scores), to_f32(&kernel));
    let config = AnalysisConfig {
        bins: 10,
        score_range: None,
    };
    let curve = curve_of(config, &scores, &teacher, Some(&student), Some(&kernel));

    // bins that end below 0 hold no top key, so y > 1 there is a lower score with more weight
    let above_one_below_the_top = |series: &[Option<f64>]| {
        (0..series.len()).any(|b| curve.edges[b + 1] < 0.0 && series[b].is_some_and(|y| y > 1.0))
    };
    assert!(
        above_one_below_the_top(&curve.student),
        "{:?}",
        curve.student
    );
    assert!(above_one_below_the_top(&curve.kernel), "{:?}", curve.kernel);
    assert!(
        curve.teacher.iter().flatten().all(|&y| y <= 1.0),
        "softmax never exceeds its top key: {:?}",
        curve.teacher
    );
}

#[test]
fn a_raw_score_range_is_cut_at_the_top_key_and_entries_below_it_are_counted() {
    // The committed specs write raw-score ranges like [-12, 12]; x never exceeds 0.
    let scores = [0.0f32, -5.0, 1.0, -2.5];
    let teacher = [0.25f32, 0.0, 0.5, 0.25];
    let config = AnalysisConfig {
        bins: 4,
        score_range: Some((-4.0, 4.0)),
    };
    let mut analyzer = AttentionAnalyzer::new(1, 1, config);
    let batch = LayerAttention {
        shape: [1, 1, 1, 4],
        teacher: &teacher,
        student: None,
        kernel: None,
        scores: &scores,
        causal: false,
        lengths: None,
    };
    analyzer.add(0, &batch).unwrap();
    let curve = analyzer.finish("test".into()).row_curve.unwrap();
    assert_eq!(curve.edges, vec![-4.0, -3.0, -2.0, -1.0, 0.0]);
    // x = −1, −6, 0, −3.5: −6 is below the range
    assert_eq!(curve.outside, 1);
    assert_eq!(curve.count, vec![1, 0, 0, 2]);
    assert_eq!(curve.teacher, vec![Some(0.5), None, None, Some(0.75)]);
}
