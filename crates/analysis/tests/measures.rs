//! Hand-checkable cases of the measures (method.md §5).

use hedgehog_analysis::{
    AnalysisConfig, AnalysisError, AttentionAnalyzer, AttentionMap, AttentionReport, LayerAttention,
};

/// A one-layer, one-head, one-row-batch layer with `n` keys per row.
fn single(
    rows: usize,
    n: usize,
    teacher: &[f32],
    student: Option<&[f32]>,
    scores: &[f32],
) -> AttentionReport {
    let mut analyzer = AttentionAnalyzer::new(1, 1, AnalysisConfig::default());
    let batch = LayerAttention {
        shape: [1, 1, rows, n],
        teacher,
        student,
        kernel: student,
        scores,
        causal: false,
        lengths: None,
    };
    analyzer.add(0, &batch).expect("valid batch");
    analyzer.finish("test".into())
}

fn softmax(scores: &[f32]) -> Vec<f32> {
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = scores.iter().map(|&s| f64::from(s - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

#[test]
fn uniform_weights_have_entropy_ln_n() {
    for n in [1usize, 2, 5, 16] {
        let w = vec![1.0 / n as f32; n];
        let scores: Vec<f32> = (0..n).map(|j| j as f32).collect();
        let r = single(1, n, &w, Some(&w), &scores);
        let h = r.layers[0].heads[0].teacher_entropy.unwrap();
        assert!((h - (n as f64).ln()).abs() < 1e-6, "n = {n}: {h}");
        // KL of a map against itself is zero
        assert!(r.layers[0].heads[0].kl.unwrap().abs() < 1e-12);
    }
}

#[test]
fn one_hot_row_has_zero_entropy_and_floored_kl() {
    let teacher = [0.0, 1.0, 0.0, 0.0];
    let student = [0.5, 0.0, 0.25, 0.25];
    let r = single(1, 4, &teacher, Some(&student), &[0.0, 3.0, 1.0, 2.0]);
    let head = &r.layers[0].heads[0];
    assert_eq!(head.teacher_entropy, Some(0.0));
    // the student puts no mass on the teacher's key: KL = ln(1 / 1e-12)
    assert!((head.kl.unwrap() - 1e12f64.ln()).abs() < 1e-9);
    let expected = -(0.5f64 * 0.5f64.ln() + 2.0 * 0.25 * 0.25f64.ln());
    assert!((head.student_entropy.unwrap() - expected).abs() < 1e-9);
}

#[test]
fn softmax_against_its_own_scores_is_perfectly_monotonic() {
    let scores = [0.3f32, -1.2, 2.5, 0.9, -0.1, 1.7, -2.2];
    let a = softmax(&scores);
    let r = single(1, scores.len(), &a, None, &scores);
    assert_eq!(r.summary().teacher_spearman, Some(1.0));
    assert_eq!(r.summary().student_spearman, None);
    assert_eq!(r.summary().kl, None);
}

#[test]
fn a_reversed_map_has_rho_minus_one() {
    let scores = [0.3f32, -1.2, 2.5, 0.9, -0.1, 1.7, -2.2];
    let a = softmax(&scores);
    let negated: Vec<f32> = scores.iter().map(|s| -s).collect();
    let reversed = softmax(&negated);
    let r = single(1, scores.len(), &a, Some(&reversed), &scores);
    let head = &r.layers[0].heads[0];
    assert_eq!(head.student_spearman, Some(-1.0));
    assert_eq!(head.kernel_spearman, Some(-1.0));
    assert_eq!(head.teacher_spearman, Some(1.0));
}

#[test]
fn causal_rows_with_fewer_than_three_keys_have_no_rho() {
    let t = 4;
    let scores: Vec<f32> = (0..t * t).map(|k| (k % 7) as f32 * 0.5).collect();
    let mut teacher = vec![0.0f32; t * t];
    for i in 0..t {
        let row = softmax(&scores[i * t..i * t + i + 1]);
        teacher[i * t..i * t + i + 1].copy_from_slice(&row);
    }
    let mut analyzer = AttentionAnalyzer::new(1, 1, AnalysisConfig::default());
    let batch = LayerAttention {
        shape: [1, 1, t, t],
        teacher: &teacher,
        student: None,
        kernel: None,
        scores: &scores,
        causal: true,
        lengths: None,
    };
    analyzer.add(0, &batch).unwrap();
    let head = analyzer.finish("softmax".into()).layers[0].heads[0].clone();
    assert_eq!(head.rows, 4);
    assert_eq!(head.spearman_rows.teacher, 2); // rows 2 and 3
}

#[test]
fn padding_is_ignored_and_curves_count_valid_entries() {
    // Row 1 of the batch has length 2: only its 2×2 corner counts; the rest is garbage.
    let t = 3;
    let mut teacher = vec![f32::NAN; 2 * t * t];
    let mut scores = vec![f32::NEG_INFINITY; 2 * t * t];
    for (i, s) in [[0.0f32, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
        .iter()
        .enumerate()
    {
        scores[i * t..i * t + t].copy_from_slice(s);
        teacher[i * t..i * t + t].copy_from_slice(&softmax(s));
    }
    let base = t * t;
    for i in 0..2 {
        let s = [i as f32, 1.0 - i as f32];
        scores[base + i * t..base + i * t + 2].copy_from_slice(&s);
        teacher[base + i * t..base + i * t + 2].copy_from_slice(&softmax(&s));
    }
    let mut analyzer = AttentionAnalyzer::new(
        1,
        1,
        AnalysisConfig {
            bins: 2,
            score_range: None,
        },
    );
    let batch = LayerAttention {
        shape: [2, 1, t, t],
        teacher: &teacher,
        student: None,
        kernel: None,
        scores: &scores,
        causal: false,
        lengths: Some(&[3, 2]),
    };
    analyzer.add(0, &batch).unwrap();
    let report = analyzer.finish("softmax".into());
    assert_eq!(report.layers[0].heads[0].rows, 5);
    let curve = report.row_curve.as_ref().unwrap();
    assert_eq!(curve.count.iter().sum::<u64>(), 9 + 4);
    // x = score − row max: the rows' lowest is −2, and the range ends at the top key, 0
    assert_eq!(curve.edges, vec![-2.0, -1.0, 0.0]);
    // the uniform row is constant in score: no rho; the two length-2 rows have too few keys
    assert_eq!(report.layers[0].heads[0].spearman_rows.teacher, 2);
}

fn expect_input_error(result: Result<(), AnalysisError>, needle: &str) {
    match result {
        Err(AnalysisError::Input { message, .. }) => {
            assert!(
                message.contains(needle),
                "`{message}` should mention `{needle}`"
            )
        }
        other => panic!("expected an input error about {needle}, got {other:?}"),
    }
}

#[test]
fn bad_inputs_are_errors_that_name_the_problem() {
    let good = vec![0.25f32; 2 * 2 * 2 * 2];
    let short = vec![0.25f32; 15];
    let mut analyzer = AttentionAnalyzer::new(2, 2, AnalysisConfig::default());
    let batch = |teacher: &'static [f32]| LayerAttention {
        shape: [2, 2, 2, 2],
        teacher,
        student: None,
        kernel: None,
        scores: teacher,
        causal: false,
        lengths: None,
    };
    let good: &'static [f32] = good.leak();
    let short: &'static [f32] = short.leak();
    expect_input_error(analyzer.add(0, &batch(short)), "teacher has 15 values");
    let mut b = batch(good);
    b.student = Some(short);
    expect_input_error(analyzer.add(0, &b), "student has 15 values");
    let mut b = batch(good);
    b.kernel = Some(short);
    expect_input_error(analyzer.add(0, &b), "kernel has 15 values");
    let mut b = batch(good);
    b.scores = short;
    expect_input_error(analyzer.add(0, &b), "scores has 15 values");
    expect_input_error(analyzer.add(2, &batch(good)), "no such layer");
    let mut b = batch(good);
    b.lengths = Some(&[2]);
    expect_input_error(analyzer.add(0, &b), "lengths has 1 entries");
    b.lengths = Some(&[2, 3]);
    expect_input_error(analyzer.add(0, &b), "lengths[1] = 3");
    let mut b = batch(good);
    b.shape = [2, 1, 2, 4];
    expect_input_error(analyzer.add(0, &b), "1 heads");
    let mut nan = good.to_vec();
    nan[5] = f32::NAN;
    let mut b = batch(good);
    b.teacher = nan.leak();
    expect_input_error(analyzer.add(0, &b), "teacher[0, 1, 0, 1] = NaN");
    let mut negative = good.to_vec();
    negative[0] = -0.5;
    let mut b = batch(good);
    b.student = Some(negative.leak());
    expect_input_error(analyzer.add(0, &b), "non-negative");
    // nothing above was accumulated: one good batch gives B × T = 4 rows per head
    analyzer.add(0, &batch(good)).unwrap();
    assert_eq!(analyzer.finish("x".into()).layers[0].heads[0].rows, 4);
}

#[test]
fn bad_configs_are_errors() {
    let w = [0.5f32, 0.5];
    let batch = LayerAttention {
        shape: [1, 1, 1, 2],
        teacher: &w,
        student: None,
        kernel: None,
        scores: &w,
        causal: false,
        lengths: None,
    };
    let bins = AnalysisConfig {
        bins: 0,
        score_range: None,
    };
    let range = AnalysisConfig {
        bins: 4,
        score_range: Some((1.0, 1.0)),
    };
    // the centred score is never above 0, so a range starting at 0 holds nothing to bin
    let above_the_top_key = AnalysisConfig {
        bins: 4,
        score_range: Some((0.0, 5.0)),
    };
    for config in [bins, range, above_the_top_key] {
        let result = AttentionAnalyzer::new(1, 1, config).add(0, &batch);
        assert!(
            matches!(result, Err(AnalysisError::Config(_))),
            "{result:?}"
        );
    }
}

#[test]
fn reports_round_trip_through_json() {
    let scores = [0.3f32, -1.2, 2.5, 0.9];
    let a = softmax(&scores);
    let mut report = single(1, 4, &a, Some(&[0.25; 4]), &scores);
    report.example = Some(AttentionMap {
        layer: 0,
        head: 0,
        tokens: vec!["a".into(), "b".into()],
        size: 2,
        teacher: vec![1.0, 0.0, 0.5, 0.5],
        student: Some(vec![0.5; 4]),
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    report.save(&path).unwrap();
    assert_eq!(AttentionReport::load(&path).unwrap(), report);
    std::fs::write(&path, "{").unwrap();
    assert!(matches!(
        AttentionReport::load(&path),
        Err(AnalysisError::Json { .. })
    ));
}
