//! `AttentionMode::DistillOutputs`: conversion mode whose captures also hold the teacher's and
//! the student's attention outputs. Everything else it returns is bit-identical to `Distill`,
//! and `DistillOutputsOnly` returns the same without the students' weights;
//! the other modes carry no outputs; a window covering the sequence makes the student's output
//! the teacher's; padded queries leave the real rows' outputs alone; gradients of an output
//! loss reach the maps and window factors and nothing of the frozen base.

mod common;

use burn::module::Param;
use burn::tensor::Tensor;
use common::*;
use hedgehog_attention::AttentionConfig;
use hedgehog_attention::distill::{self, Reduction};
use hedgehog_models::bert::Bert;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::{AttentionCapture, AttentionMode};

/// Hedgehog with a window of `window` keys, chunks of 4 and the given `ε`.
fn windowed(window_size: usize, epsilon: f64) -> AttentionConfig {
    let mut attention = hedgehog(6);
    if let AttentionConfig::Linear {
        window,
        chunk_size,
        eps,
        ..
    } = &mut attention
    {
        *window = window_size;
        *chunk_size = 4;
        *eps = epsilon;
    }
    attention
}

fn gpt2_captures(attention: Vec<AttentionConfig>, mode: AttentionMode) -> Vec<AttentionCapture<B>> {
    let model =
        Gpt2::<B>::from_pretrained(fixture_dir("gpt2"), Some(attention), &Default::default())
            .unwrap();
    let ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    model.forward(ids, None, mode, false).unwrap().attention
}

/// The Llama fixture with a 3-key window + Hedgehog in every layer, on backend `Bk`.
fn windowed_llama<Bk: burn::tensor::backend::Backend>() -> Llama<Bk> {
    Llama::<Bk>::from_pretrained(
        fixture_dir("llama"),
        Some(vec![windowed(3, 1e-6)]),
        &Default::default(),
    )
    .unwrap()
}

fn same(a: &Tensor<B, 4>, b: &Tensor<B, 4>) -> bool {
    values(a) == values(b)
}

fn same_opt(a: &Option<Tensor<B, 4>>, b: &Option<Tensor<B, 4>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn distill_outputs_adds_both_outputs_and_changes_nothing_else() {
    let mixed = vec![AttentionConfig::Softmax, hedgehog(8)];
    let outputs = gpt2_captures(mixed.clone(), AttentionMode::DistillOutputs);
    let weights_only = gpt2_captures(mixed, AttentionMode::Distill);
    let [b, t] = int_tensor::<B>(&golden("gpt2"), "input_ids").dims();
    for (layer, (with, without)) in outputs.iter().zip(&weights_only).enumerate() {
        assert!(
            same(&with.teacher, &without.teacher),
            "layer {layer}: teacher"
        );
        assert!(same(&with.scores, &without.scores), "layer {layer}: scores");
        assert!(
            same_opt(&with.student, &without.student),
            "layer {layer}: student"
        );
        assert!(
            same_opt(&with.kernel, &without.kernel),
            "layer {layer}: kernel"
        );
        assert!(
            without.teacher_output.is_none() && without.student_output.is_none(),
            "layer {layer}: Distill captures no outputs"
        );
        let teacher_output = with.teacher_output.as_ref().expect("a teacher output");
        // The fixture: 4 heads of width 8.
        assert_eq!(teacher_output.dims(), [b, 4, t, 8], "[B, H, T, dv]");
        assert_eq!(
            with.student_output.as_ref().map(|s| s.dims()),
            (layer == 1).then_some([b, 4, t, 8]),
            "layer {layer}: a student output exactly for the linear layer"
        );
    }
    // The analysis path (a configured forward with capture) carries no outputs either.
    let model = Gpt2::<B>::from_pretrained(
        fixture_dir("gpt2"),
        Some(vec![hedgehog(8)]),
        &Default::default(),
    )
    .unwrap();
    let ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    let analysed = model
        .forward(ids, None, AttentionMode::Configured, true)
        .unwrap();
    assert!(
        analysed
            .attention
            .iter()
            .all(|c| c.teacher_output.is_none() && c.student_output.is_none())
    );
}

/// `DistillOutputsOnly` is `DistillOutputs` without the students' weights and kernel: every
/// tensor it keeps is bit-identical, and `captures` (no head) returns what `forward` captures.
#[test]
fn distill_outputs_only_keeps_the_outputs_and_drops_the_students_weights() {
    let mixed = vec![AttentionConfig::Softmax, windowed(3, 1e-6)];
    let only = gpt2_captures(mixed.clone(), AttentionMode::DistillOutputsOnly);
    let full = gpt2_captures(mixed, AttentionMode::DistillOutputs);
    assert_eq!(only.len(), full.len());
    for (layer, (only, full)) in only.iter().zip(&full).enumerate() {
        assert!(same(&only.teacher, &full.teacher), "layer {layer}: teacher");
        assert!(same(&only.scores, &full.scores), "layer {layer}: scores");
        assert!(
            same_opt(&only.teacher_output, &full.teacher_output)
                && same_opt(&only.student_output, &full.student_output),
            "layer {layer}: outputs"
        );
        assert!(
            only.student.is_none() && only.kernel.is_none(),
            "layer {layer}: no student weights or kernel"
        );
        assert_eq!(
            full.student.is_some(),
            layer == 1,
            "layer {layer}: DistillOutputs keeps the linear layer's weights"
        );
    }
    let model = windowed_llama::<B>();
    let ids = int_tensor::<B>(&golden("llama"), "input_ids");
    for mode in [
        AttentionMode::Distill,
        AttentionMode::DistillOutputsOnly,
        AttentionMode::Configured,
    ] {
        let captures = model.captures(ids.clone(), None, mode).unwrap();
        let forward = model
            .forward(ids.clone(), None, mode, true)
            .unwrap()
            .attention;
        assert_eq!(captures.len(), 2, "{mode:?}: one capture per layer");
        for (layer, (a, b)) in captures.iter().zip(&forward).enumerate() {
            let what = format!("{mode:?}, layer {layer}");
            assert!(same(&a.teacher, &b.teacher), "{what}: teacher");
            assert!(same_opt(&a.student, &b.student), "{what}: student");
            assert!(
                same_opt(&a.student_output, &b.student_output),
                "{what}: student output"
            );
        }
    }
}

/// With `ε = 0` a window of `W ≥ T` keys is softmax attention, so the student's output is the
/// teacher's (the two outputs are computed by different code: `a v` and the chunked window
/// form); one key short of the sequence, they differ.
#[test]
fn a_window_covering_the_sequence_outputs_the_teachers_result() {
    let t = int_tensor::<B>(&golden("gpt2"), "input_ids").dims()[1];
    for window in [t - 1, t] {
        let captures = gpt2_captures(vec![windowed(window, 0.0)], AttentionMode::DistillOutputs);
        for (layer, capture) in captures.iter().enumerate() {
            let teacher = values(capture.teacher_output.as_ref().unwrap());
            let student = values(capture.student_output.as_ref().unwrap());
            let what = format!("window {window} (T = {t}), layer {layer}");
            if window < t {
                let diff = teacher
                    .iter()
                    .zip(&student)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f64::max);
                assert!(diff > 1e-4, "{what}: differs from softmax ({diff})");
            } else {
                assert_max_diff(&student, &teacher, 1e-5, &what);
            }
        }
    }
}

/// BERT's second fixture sequence is right-padded: its real rows' outputs equal those of the
/// same tokens run alone, teacher's and student's.
#[test]
fn padding_leaves_the_real_rows_outputs_alone() {
    let golden = golden("bert");
    let device = Default::default();
    let bert =
        Bert::<B>::from_pretrained(fixture_dir("bert"), Some(vec![hedgehog(8)]), &device).unwrap();
    let mask = mask_tensor::<B>(&golden, "attention_mask");
    let real = values(&mask.clone().float().sum_dim(1))[1] as usize;
    let ids = int_tensor::<B>(&golden, "input_ids");
    let [_, t] = ids.dims();
    assert!(real < t, "the fixture pads its second sequence");
    let mode = AttentionMode::DistillOutputs;
    let padded = bert
        .encode(ids.clone(), None, Some(mask), mode, false)
        .unwrap();
    let alone = bert
        .encode(ids.slice([1..2, 0..real]), None, None, mode, false)
        .unwrap();
    for (layer, (padded, alone)) in padded.attention.iter().zip(&alone.attention).enumerate() {
        for (what, padded, alone) in [
            ("teacher", &padded.teacher_output, &alone.teacher_output),
            ("student", &padded.student_output, &alone.student_output),
        ] {
            let (padded, alone) = (padded.clone().unwrap(), alone.clone().unwrap());
            let [_, h, _, dv] = padded.dims();
            let rows = padded.slice([1..2, 0..h, 0..real, 0..dv]);
            let what = format!("layer {layer}: {what} output");
            assert_max_diff(&values(&rows), &values(&alone), 1e-5, &what);
        }
    }
}

#[test]
fn an_output_loss_trains_the_maps_and_window_factors_only() {
    let model = windowed_llama::<AdB>();
    let ids = int_tensor::<AdB>(&golden("llama"), "input_ids");
    let out = model
        .forward(ids, None, AttentionMode::DistillOutputs, false)
        .unwrap();
    let pairs = out
        .attention
        .into_iter()
        .map(|c| (c.teacher_output.unwrap(), c.student_output.unwrap()))
        .collect();
    let (loss, table) = distill::layerwise_output_loss(pairs, Reduction::Mean, None).unwrap();
    assert_eq!(table.dims(), [2, 6], "[layers, query heads]");
    let grads = loss.backward();
    for (index, layer) in model.layers.iter().enumerate() {
        let attention = &layer.attention;
        let linear = attention.linear.as_ref().unwrap();
        let hedgehog_attention::FeatureMap::Hedgehog(map) = &linear.query_map else {
            panic!("hedgehog")
        };
        let nonzero = |param: &Param<Tensor<AdB, 1>>| {
            param
                .val()
                .grad(&grads)
                .is_some_and(|g| values(&g).iter().any(|v| *v != 0.0))
        };
        let map_grad = map.affine.weight.val().grad(&grads);
        assert!(
            map_grad.is_some_and(|g| values(&g).iter().any(|v| *v != 0.0)),
            "layer {index}: the feature map gets a gradient"
        );
        assert!(
            nonzero(linear.window_factors.as_ref().unwrap()),
            "layer {index}: the window factors get a gradient"
        );
        for (name, weight) in [
            ("query", &attention.query.weight),
            ("value", &attention.value.weight),
        ] {
            assert!(
                weight.val().grad(&grads).is_none(),
                "layer {index}: the frozen {name} projection gets none"
            );
        }
    }
}
