//! The measures against the independent numpy/scipy reference in `tools/reference_analysis.py`
//! (fixture `tests/fixtures/measures.json`; regenerate with `python3 tools/reference_analysis.py`).

use hedgehog_analysis::{
    AnalysisConfig, AttentionAnalyzer, AttentionReport, HeadStats, LayerAttention,
    MonotonicityCurve, Summary,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    layers: usize,
    heads: usize,
    config: AnalysisConfig,
    batches: Vec<Batch>,
    expected: AttentionReport,
}

#[derive(Deserialize)]
struct Batch {
    layer: usize,
    shape: [usize; 4],
    causal: bool,
    lengths: Option<Vec<usize>>,
    teacher: Vec<f32>,
    student: Option<Vec<f32>>,
    kernel: Option<Vec<f32>>,
    scores: Vec<f32>,
}

/// 1e-9 relative; the absolute floor only matters for values that are zero up to rounding.
fn close(what: &str, ours: Option<f64>, reference: Option<f64>) {
    match (ours, reference) {
        (Some(a), Some(b)) => assert!(
            (a - b).abs() <= 1e-9 * b.abs() + 1e-12,
            "{what}: ours {a}, reference {b}"
        ),
        (a, b) => assert_eq!(a, b, "{what}: defined on one side only"),
    }
}

fn close_all(what: &str, ours: &[Option<f64>], reference: &[Option<f64>]) {
    assert_eq!(ours.len(), reference.len(), "{what}: lengths");
    for (i, (a, b)) in ours.iter().zip(reference).enumerate() {
        close(&format!("{what}[{i}]"), *a, *b);
    }
}

fn compare_curve(
    what: &str,
    ours: Option<&MonotonicityCurve>,
    reference: Option<&MonotonicityCurve>,
) {
    let (Some(ours), Some(reference)) = (ours, reference) else {
        panic!("{what}: no per-row curve on one side or both");
    };
    let edges = |c: &MonotonicityCurve| c.edges.iter().map(|&e| Some(e)).collect::<Vec<_>>();
    close_all(&format!("{what}.edges"), &edges(ours), &edges(reference));
    assert_eq!(ours.count, reference.count, "{what}.count");
    assert_eq!(ours.outside, reference.outside, "{what}.outside");
    assert_eq!(
        ours.skipped_rows, reference.skipped_rows,
        "{what}.skipped_rows"
    );
    close_all(
        &format!("{what}.teacher"),
        &ours.teacher,
        &reference.teacher,
    );
    close_all(
        &format!("{what}.student"),
        &ours.student,
        &reference.student,
    );
    close_all(&format!("{what}.kernel"), &ours.kernel, &reference.kernel);
}

fn compare_summary(what: &str, ours: &Summary, reference: &Summary) {
    close(
        &format!("{what}.teacher_entropy"),
        ours.teacher_entropy,
        reference.teacher_entropy,
    );
    close(
        &format!("{what}.student_entropy"),
        ours.student_entropy,
        reference.student_entropy,
    );
    close(&format!("{what}.kl"), ours.kl, reference.kl);
    close(
        &format!("{what}.teacher_spearman"),
        ours.teacher_spearman,
        reference.teacher_spearman,
    );
    close(
        &format!("{what}.student_spearman"),
        ours.student_spearman,
        reference.student_spearman,
    );
    close(
        &format!("{what}.kernel_spearman"),
        ours.kernel_spearman,
        reference.kernel_spearman,
    );
}

fn compare_head(what: &str, ours: &HeadStats, reference: &HeadStats) {
    assert_eq!(
        (ours.layer, ours.head),
        (reference.layer, reference.head),
        "{what}"
    );
    assert_eq!(ours.rows, reference.rows, "{what}.rows");
    assert_eq!(
        ours.spearman_rows, reference.spearman_rows,
        "{what}.spearman_rows"
    );
    let summary = |h: &HeadStats| Summary {
        teacher_entropy: h.teacher_entropy,
        student_entropy: h.student_entropy,
        kl: h.kl,
        teacher_spearman: h.teacher_spearman,
        student_spearman: h.student_spearman,
        kernel_spearman: h.kernel_spearman,
    };
    compare_summary(what, &summary(ours), &summary(reference));
}

#[test]
fn measures_match_the_numpy_reference() {
    let text = include_str!("fixtures/measures.json");
    let fixture: Fixture = serde_json::from_str(text).expect("fixture parses");
    assert_eq!(fixture.cases.len(), 4);
    for case in &fixture.cases {
        let mut analyzer = AttentionAnalyzer::new(case.layers, case.heads, case.config.clone());
        for b in &case.batches {
            let batch = LayerAttention {
                shape: b.shape,
                teacher: &b.teacher,
                student: b.student.as_deref(),
                kernel: b.kernel.as_deref(),
                scores: &b.scores,
                causal: b.causal,
                lengths: b.lengths.as_deref(),
            };
            analyzer
                .add(b.layer, &batch)
                .expect("fixture batch is valid");
        }
        let ours = analyzer.finish(case.expected.attention.clone());
        let reference = &case.expected;
        let name = &case.name;
        assert_eq!(ours.layers.len(), reference.layers.len(), "{name}: layers");
        for (l, (a, b)) in ours.layers.iter().zip(&reference.layers).enumerate() {
            assert_eq!(a.heads.len(), b.heads.len(), "{name}: heads of layer {l}");
            for (h, (x, y)) in a.heads.iter().zip(&b.heads).enumerate() {
                compare_head(&format!("{name} layer {l} head {h}"), x, y);
            }
            compare_summary(&format!("{name} layer {l} summary"), &a.summary, &b.summary);
            compare_curve(
                &format!("{name} layer {l} curve"),
                a.row_curve.as_ref(),
                b.row_curve.as_ref(),
            );
        }
        compare_curve(
            &format!("{name} curve"),
            ours.row_curve.as_ref(),
            reference.row_curve.as_ref(),
        );
        compare_summary(
            &format!("{name} summary"),
            ours.summary(),
            reference.summary(),
        );
        assert_eq!(ours.attention, reference.attention);
    }
}
