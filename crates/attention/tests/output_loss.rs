//! The output loss of distillation (`distill::output_mse`, LoLCATs' stage 1): zero when the
//! student is the teacher, a hand-computed value on a small example, padded rows ignored, and a
//! gradient that reaches the feature maps and the window factors through the layer's fast
//! forward. Float32 only (burn-ndarray fixes one float type per process).

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Bool, Tensor, TensorData};
use common::*;
use hedgehog_attention::distill::{self, Reduction};
use hedgehog_attention::{FeatureMapConfig, HedgehogActivation, LinearAttention, softmax};

fn tensor4(values: Vec<f32>, shape: [usize; 4]) -> Tensor<F32, 4> {
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

/// `[B, T]` padding, true = padding, from the real lengths.
fn padding(lengths: &[usize], t: usize) -> Tensor<F32, 2, Bool> {
    let mask: Vec<bool> = lengths
        .iter()
        .flat_map(|&len| (0..t).map(move |i| i >= len))
        .collect();
    Tensor::from_data(
        TensorData::new(mask, [lengths.len(), t]),
        &Default::default(),
    )
}

#[test]
fn output_mse_is_zero_when_the_student_is_the_teacher() {
    let y = randn::<F32, 4>([2, 3, 5, 4], 1.0, 1);
    for query_padding in [None, Some(padding(&[5, 3], 5))] {
        let loss = distill::output_mse(y.clone(), y.clone(), query_padding.as_ref()).unwrap();
        assert_eq!(loss.dims(), [2, 3]);
        assert!(
            values(&loss).iter().all(|&v| v == 0.0),
            "{:?}",
            values(&loss)
        );
    }
}

#[test]
fn output_mse_equals_a_hand_computation() {
    // One head, two query rows of dv = 2:
    // row 0: ((1 − 1)² + (2 − 0)²) / 2 = 2;  row 1: ((3 − 0)² + (4 − 4)²) / 2 = 4.5.
    let teacher = tensor4(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]);
    let student = tensor4(vec![1.0, 0.0, 0.0, 4.0], [1, 1, 2, 2]);
    let loss = distill::output_mse(teacher.clone(), student.clone(), None).unwrap();
    assert_eq!(values(&loss), vec![(2.0 + 4.5) / 2.0]);
    // A second layer of loss 1 (every entry off by 1): the mean over layers is (3.25 + 1) / 2,
    // the sum 4.25, and the table holds each layer's value.
    let off_by_one = teacher.clone() + 1.0;
    let pairs = vec![(teacher.clone(), student), (teacher, off_by_one)];
    let (mean, table) =
        distill::layerwise_output_loss(pairs.clone(), Reduction::Mean, None).unwrap();
    assert_eq!(values(&mean), vec![2.125]);
    assert_eq!(table.dims(), [2, 1]);
    assert_eq!(values(&table), vec![3.25, 1.0]);
    let (sum, _) = distill::layerwise_output_loss(pairs, Reduction::Sum, None).unwrap();
    assert_eq!(values(&sum), vec![4.25]);
}

#[test]
fn output_mse_ignores_padded_rows() {
    let (t, dv) = (6, 4);
    let teacher = randn::<F32, 4>([2, 3, t, dv], 1.0, 2);
    let student = randn::<F32, 4>([2, 3, t, dv], 1.0, 3);
    let query_padding = padding(&[t, 4], t);
    let loss = distill::output_mse(teacher.clone(), student.clone(), Some(&query_padding)).unwrap();
    // The padded rows of the second example may hold anything.
    let noise = randn::<F32, 4>([1, 3, 2, dv], 100.0, 4);
    let changed = student
        .clone()
        .slice_assign([1..2, 0..3, 4..t, 0..dv], noise);
    let again = distill::output_mse(teacher.clone(), changed, Some(&query_padding)).unwrap();
    assert_eq!(values(&loss), values(&again), "padded rows change nothing");
    // The second example's loss is that of its four real rows alone.
    let real = |x: &Tensor<F32, 4>| x.clone().slice([1..2, 0..3, 0..4, 0..dv]);
    let alone = distill::output_mse(real(&teacher), real(&student), None).unwrap();
    assert_close(&values(&loss)[3..], &values(&alone), 1e-6, 0.0, "real rows");
    let unpadded = distill::output_mse(teacher, student, None).unwrap();
    assert_ne!(
        values(&loss)[3..],
        values(&unpadded)[3..],
        "padding matters"
    );
}

#[test]
fn a_student_of_the_wrong_shape_is_an_error() {
    let teacher = randn::<F32, 4>([1, 2, 3, 4], 1.0, 5);
    let student = randn::<F32, 4>([1, 2, 3, 5], 1.0, 6);
    let err = distill::output_mse(teacher, student, None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("student attention output"), "{err}");
}

/// Gradient entries of every float parameter of a module (`None` when it has none).
struct ParameterGrads<'a> {
    grads: &'a <AdF32 as burn::tensor::backend::AutodiffBackend>::Gradients,
    found: Vec<Option<Vec<f64>>>,
}

impl burn::module::ModuleVisitor<AdF32> for ParameterGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AdF32, D>>) {
        self.found
            .push(param.val().grad(self.grads).map(|g| values(&g)));
    }
}

/// The output loss of a Hedgehog layer (with `window` > 0: the window form) against softmax on
/// detached q, k, v; every parameter's gradient.
fn output_loss_gradients(window: usize) -> Vec<Option<Vec<f64>>> {
    let (heads, d, t) = (2, 8, 12);
    let config = FeatureMapConfig::Hedgehog {
        activation: HedgehogActivation::SoftmaxSplit,
        feature_dim: d,
        per_head: true,
    };
    let attention: LinearAttention<AdF32> = linear_attention(&config, d, heads, 7)
        .with_window(window, 0.3, heads, &Default::default())
        .unwrap();
    let q = randn::<AdF32, 4>([2, heads, t, d], 0.7, 8);
    let k = randn::<AdF32, 4>([2, heads, t, d], 0.7, 9);
    let v = randn::<AdF32, 4>([2, heads, t, 3], 1.0, 10);
    let (teacher, _) = softmax::attention(q.clone(), k.clone(), v.clone(), true, None).unwrap();
    let student = attention.forward(q, k, v, true, None).unwrap();
    let (loss, _) =
        distill::layerwise_output_loss(vec![(teacher, student)], Reduction::Mean, None).unwrap();
    let grads = loss.backward();
    let mut visitor = ParameterGrads {
        grads: &grads,
        found: Vec::new(),
    };
    attention.visit(&mut visitor);
    visitor.found
}

#[test]
fn the_output_loss_gradient_reaches_the_feature_maps_and_window_factors() {
    for window in [0, 4] {
        let found = output_loss_gradients(window);
        // Query and key maps (weight and bias each), plus the window logits when windowed.
        assert_eq!(
            found.len(),
            if window > 0 { 5 } else { 4 },
            "window {window}"
        );
        for (i, grad) in found.iter().enumerate() {
            let grad = grad
                .as_ref()
                .unwrap_or_else(|| panic!("window {window}: parameter #{i} has no gradient"));
            assert!(
                grad.iter().all(|g| g.is_finite()) && grad.iter().any(|&g| g != 0.0),
                "window {window}: parameter #{i}'s gradient is zero or not finite"
            );
        }
    }
}
