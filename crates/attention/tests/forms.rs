//! The four forms of linear attention agree: quadratic == parallel == chunked == recurrent, on
//! outputs, final states and gradients, for every feature map, causal and non-causal, on odd
//! sizes, in float64 for tight tolerances (`forms_f32.rs` checks accumulation at f32: burn-ndarray
//! fixes one float type per process, so the two cannot share a test binary).

mod common;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use common::*;
use hedgehog_attention::linear::{self, DEFAULT_EPS, LinearState};
use hedgehog_attention::{AttentionError, FeatureMapConfig};

const B: usize = 2;
const H: usize = 3;
const D: usize = 8;
const DV: usize = 5;

struct Inputs<Bk: Backend> {
    q: Tensor<Bk, 4>,
    k: Tensor<Bk, 4>,
    v: Tensor<Bk, 4>,
}

fn inputs<Bk: Backend>(t: usize, seed: u64) -> Inputs<Bk> {
    Inputs {
        q: randn([B, H, t, D], 0.7, seed),
        k: randn([B, H, t, D], 0.7, seed + 1),
        v: randn([B, H, t, DV], 1.0, seed + 2),
    }
}

fn features<Bk: Backend>(
    config: &FeatureMapConfig,
    x: &Inputs<Bk>,
) -> (Tensor<Bk, 4>, Tensor<Bk, 4>) {
    let attention = linear_attention::<Bk>(config, D, H, 11);
    attention.features(x.q.clone(), x.k.clone(), 0).unwrap()
}

#[test]
fn causal_forms_agree_for_every_map() {
    for t in [63, 100] {
        let x = inputs::<F64>(t, 1);
        for config in all_maps() {
            let (fq, fk) = features(&config, &x);
            let label = config.label();
            let (reference, _) =
                linear::quadratic(fq.clone(), fk.clone(), x.v.clone(), true, None, DEFAULT_EPS)
                    .unwrap();
            let direct = LinearState::from_features(fk.clone(), x.v.clone());
            for chunk in [1, 7, 16, 64, 128] {
                let (y, state) = linear::chunked(
                    fq.clone(),
                    fk.clone(),
                    x.v.clone(),
                    chunk,
                    None,
                    None,
                    DEFAULT_EPS,
                )
                .unwrap();
                let what = format!("{label}: chunked C={chunk} vs quadratic, T={t}");
                assert_tensors_close(&y, &reference, 1e-10, 1e-12, &what);
                assert_tensors_close(&state.s, &direct.s, 1e-10, 1e-12, &format!("{what}: S"));
                assert_tensors_close(&state.z, &direct.z, 1e-10, 1e-12, &format!("{what}: z"));
            }
            let (y, state) =
                linear::recurrent(fq.clone(), fk.clone(), x.v.clone(), None, None, DEFAULT_EPS)
                    .unwrap();
            let what = format!("{label}: recurrent vs quadratic, T={t}");
            assert_tensors_close(&y, &reference, 1e-10, 1e-12, &what);
            assert_tensors_close(&state.s, &direct.s, 1e-10, 1e-12, &format!("{what}: S"));
            assert_tensors_close(&state.z, &direct.z, 1e-10, 1e-12, &format!("{what}: z"));
        }
    }
}

#[test]
fn noncausal_forms_agree_for_every_map() {
    for t in [63, 100] {
        let x = inputs::<F64>(t, 2);
        for config in all_maps() {
            let (fq, fk) = features(&config, &x);
            let (reference, weights) = linear::quadratic(
                fq.clone(),
                fk.clone(),
                x.v.clone(),
                false,
                None,
                DEFAULT_EPS,
            )
            .unwrap();
            let fq_for_sums = fq.clone();
            let (y, state) =
                linear::parallel(fq, fk.clone(), x.v.clone(), None, DEFAULT_EPS).unwrap();
            let what = format!("{}: parallel vs quadratic, T={t}", config.label());
            assert_tensors_close(&y, &reference, 1e-10, 1e-12, &what);
            let direct = LinearState::from_features(fk, x.v.clone());
            assert_tensors_close(&state.s, &direct.s, 1e-12, 1e-12, &format!("{what}: S"));
            // Each weight row sums to r/(r + ε), r = φ(q_i)·Σ_j φ(k_j): a distribution up to ε.
            let [b, h, _, f] = fq_for_sums.dims();
            let kernel_sums =
                values(&(fq_for_sums.clone() * state.z.clone().reshape([b, h, 1, f])).sum_dim(3));
            let expected: Vec<f64> = kernel_sums.iter().map(|r| r / (r + DEFAULT_EPS)).collect();
            assert_close(
                &values(&weights.sum_dim(3)),
                &expected,
                1e-10,
                1e-12,
                &format!("{what}: row sums"),
            );
        }
    }
}

/// `Σ y ⊙ w` for a fixed random `w`, so every output element gets a distinct gradient.
fn probe_loss(y: Tensor<AdF64, 4>, seed: u64) -> Tensor<AdF64, 1> {
    let w = randn::<AdF64, 4>(y.dims(), 1.0, seed);
    (y * w).sum()
}

#[derive(Clone, Copy, Debug)]
enum Form {
    Quadratic,
    Parallel,
    Chunked,
    Recurrent,
}

/// Gradients of a trainable map's parameters (none for fixed maps).
fn map_parameter_grads(
    map: &hedgehog_attention::FeatureMap<AdF64>,
    grads: &<AdF64 as burn::tensor::backend::AutodiffBackend>::Gradients,
) -> Vec<Vec<f64>> {
    use hedgehog_attention::FeatureMap;
    let affine = match map {
        FeatureMap::Hedgehog(m) => &m.affine,
        FeatureMap::T2r(m) => &m.affine,
        _ => return Vec::new(),
    };
    vec![
        values(
            &affine
                .weight
                .val()
                .grad(grads)
                .expect("weight has a gradient"),
        ),
        values(&affine.bias.val().grad(grads).expect("bias has a gradient")),
    ]
}

/// Gradients of the probe loss with respect to q, k, v and every map parameter.
fn gradients(config: &FeatureMapConfig, causal: bool, form: Form, t: usize) -> Vec<Vec<f64>> {
    let attention = linear_attention::<AdF64>(config, D, H, 11);
    let x = inputs::<AdF64>(t, 4);
    let (q, k, v) = (x.q.require_grad(), x.k.require_grad(), x.v.require_grad());
    let (fq, fk) = attention.features(q.clone(), k.clone(), 0).unwrap();
    let y = match form {
        Form::Quadratic => {
            linear::quadratic(fq, fk, v.clone(), causal, None, DEFAULT_EPS)
                .unwrap()
                .0
        }
        Form::Parallel => {
            linear::parallel(fq, fk, v.clone(), None, DEFAULT_EPS)
                .unwrap()
                .0
        }
        Form::Chunked => {
            linear::chunked(fq, fk, v.clone(), 16, None, None, DEFAULT_EPS)
                .unwrap()
                .0
        }
        Form::Recurrent => {
            linear::recurrent(fq, fk, v.clone(), None, None, DEFAULT_EPS)
                .unwrap()
                .0
        }
    };
    let grads = probe_loss(y, 99).backward();
    let mut out: Vec<Vec<f64>> = [q, k, v]
        .iter()
        .map(|t| values(&t.grad(&grads).expect("input has a gradient")))
        .collect();
    out.extend(map_parameter_grads(&attention.query_map, &grads));
    if let Some(key_map) = &attention.key_map {
        out.extend(map_parameter_grads(key_map, &grads));
    }
    out
}

#[test]
fn gradients_agree_across_forms_for_every_map() {
    let t = 63;
    for config in all_maps() {
        let label = config.label();
        let reference = gradients(&config, true, Form::Quadratic, t);
        for form in [Form::Chunked, Form::Recurrent] {
            let got = gradients(&config, true, form, t);
            assert_eq!(got.len(), reference.len());
            for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
                assert_close(
                    g,
                    r,
                    1e-8,
                    1e-10,
                    &format!("{label}: causal {form:?} gradient #{i}"),
                );
            }
        }
        let reference = gradients(&config, false, Form::Quadratic, t);
        let got = gradients(&config, false, Form::Parallel, t);
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            assert_close(
                g,
                r,
                1e-8,
                1e-10,
                &format!("{label}: non-causal parallel gradient #{i}"),
            );
        }
    }
}

#[test]
fn hedgehog_parameter_gradients_match_finite_differences() {
    use hedgehog_attention::feature_map::Hedgehog;
    use hedgehog_attention::{FeatureMap, HedgehogActivation, LinearAttention};
    let t = 21;
    let x = inputs::<AdF64>(t, 5);
    for activation in [
        HedgehogActivation::Exp,
        HedgehogActivation::SoftmaxSplit,
        HedgehogActivation::SoftmaxJoint,
    ] {
        let weight = randn::<AdF64, 3>([H, D, 4], 0.5, 21);
        let bias = randn::<AdF64, 2>([H, 4], 0.2, 22);
        let loss_at = |w: Tensor<AdF64, 3>| -> (Tensor<AdF64, 1>, LinearAttention<AdF64>) {
            let map =
                FeatureMap::Hedgehog(Hedgehog::from_tensors(w, bias.clone(), activation).unwrap());
            let attention = LinearAttention::new(map, None, 8, DEFAULT_EPS);
            let y = attention
                .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
                .unwrap();
            (probe_loss(y, 7), attention)
        };
        let (loss, attention) = loss_at(weight.clone());
        let grads = loss.backward();
        let analytic = map_parameter_grads(&attention.query_map, &grads).remove(0);
        let base = values(&weight);
        let step = 1e-6;
        for index in [0, 5, 17, 40, 63, 90] {
            let shifted = |delta: f64| {
                let mut v = base.clone();
                v[index] += delta;
                let w = Tensor::<AdF64, 3>::from_data(
                    TensorData::new(v, [H, D, 4]),
                    &Default::default(),
                );
                values(&loss_at(w).0)[0]
            };
            let numeric = (shifted(step) - shifted(-step)) / (2.0 * step);
            assert_close(
                &[analytic[index]],
                &[numeric],
                1e-5,
                1e-7,
                &format!("{activation:?}: dL/dW[{index}]"),
            );
        }
    }
}

fn right_padding<Bk: Backend>(t: usize, real_len_second: usize) -> Tensor<Bk, 2, Bool> {
    let mut mask = vec![false; B * t];
    for i in real_len_second..t {
        mask[t + i] = true;
    }
    Tensor::from_data(TensorData::new(mask, [B, t]), &Default::default())
}

#[test]
fn padded_batch_equals_unpadded_sequences() {
    let (t, real) = (63, 50);
    let x = inputs::<F64>(t, 6);
    let padding = right_padding::<F64>(t, real);
    for config in all_maps() {
        let label = config.label();
        let attention = linear_attention::<F64>(&config, D, H, 11);
        for causal in [true, false] {
            let padded = attention
                .forward(
                    x.q.clone(),
                    x.k.clone(),
                    x.v.clone(),
                    causal,
                    Some(&padding),
                )
                .unwrap();
            let second = |t4: &Tensor<F64, 4>, len: usize| t4.clone().slice([1..2, 0..H, 0..len]);
            let alone = attention
                .forward(
                    second(&x.q, real),
                    second(&x.k, real),
                    second(&x.v, real),
                    causal,
                    None,
                )
                .unwrap();
            let what = format!("{label}: causal={causal} padded vs alone");
            assert_tensors_close(&second(&padded, real), &alone, 1e-10, 1e-12, &what);
            let tail = values(&padded.clone().slice([1..2, 0..H, real..t]));
            assert!(
                tail.iter().all(|v| *v == 0.0),
                "{what}: padded outputs not zeroed"
            );
            let first = attention
                .forward(
                    x.q.clone().slice(0..1),
                    x.k.clone().slice(0..1),
                    x.v.clone().slice(0..1),
                    causal,
                    None,
                )
                .unwrap();
            assert_tensors_close(
                &padded.slice(0..1),
                &first,
                1e-10,
                1e-12,
                &format!("{what}: first row"),
            );
            // The quadratic form with the same mask agrees with the fast path.
            let (fq, fk) = attention.features(x.q.clone(), x.k.clone(), 0).unwrap();
            let (quadratic, _) =
                linear::quadratic(fq, fk, x.v.clone(), causal, Some(&padding), DEFAULT_EPS)
                    .unwrap();
            let fast = attention
                .forward(
                    x.q.clone(),
                    x.k.clone(),
                    x.v.clone(),
                    causal,
                    Some(&padding),
                )
                .unwrap();
            assert_tensors_close(
                &fast,
                &quadratic,
                1e-10,
                1e-12,
                &format!("{what}: quadratic"),
            );
        }
    }
}

#[test]
fn kernel_normalised_by_its_row_sums_is_the_weights_and_masked_entries_are_zero() {
    let (t, real) = (23, 15);
    let x = inputs::<F64>(t, 12);
    let padding = right_padding::<F64>(t, real);
    for config in all_maps() {
        let attention = linear_attention::<F64>(&config, D, H, 13);
        for causal in [true, false] {
            for key_padding in [None, Some(&padding)] {
                let what = format!(
                    "{}: causal={causal}, padded={}",
                    config.label(),
                    key_padding.is_some()
                );
                let kernel = attention
                    .kernel(x.q.clone(), x.k.clone(), causal, key_padding)
                    .unwrap();
                assert_eq!(kernel.dims(), [B, H, t, t], "{what}: [B, H, T, T]");
                let weights = attention
                    .weights(x.q.clone(), x.k.clone(), causal, key_padding)
                    .unwrap();
                let normalised = kernel
                    .clone()
                    .div(kernel.clone().sum_dim(3).add_scalar(attention.eps));
                assert_tensors_close(&normalised, &weights, 1e-5, 1e-12, &what);
                let kernel = values(&kernel);
                // Row-major [B, H, T, T]: query i, key j of batch row n.
                for (index, value) in kernel.iter().enumerate() {
                    let (n, i, j) = (index / (H * t * t), index / t % t, index % t);
                    let padded = key_padding.is_some() && n == 1 && (i >= real || j >= real);
                    if (causal && j > i) || padded {
                        assert_eq!(*value, 0.0, "{what}: masked entry n={n} i={i} j={j}");
                    }
                }
            }
        }
    }
}

#[test]
fn prefill_then_decode_equals_full_causal_pass() {
    let (t, prefix) = (63, 40);
    let x = inputs::<F64>(t, 7);
    for config in all_maps() {
        let label = config.label();
        let attention = linear_attention::<F64>(&config, D, H, 11);
        let full = attention
            .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
            .unwrap();
        let head =
            |t4: &Tensor<F64, 4>, r: std::ops::Range<usize>| t4.clone().slice([0..B, 0..H, r]);
        let (prefilled, mut state) = attention
            .prefill(
                head(&x.q, 0..prefix),
                head(&x.k, 0..prefix),
                head(&x.v, 0..prefix),
                None,
            )
            .unwrap();
        let mut outputs = vec![prefilled];
        for i in prefix..t {
            let (y, next) = attention
                .decode_step(
                    state,
                    head(&x.q, i..i + 1),
                    head(&x.k, i..i + 1),
                    head(&x.v, i..i + 1),
                    i,
                )
                .unwrap();
            outputs.push(y);
            state = next;
        }
        let decoded = Tensor::cat(outputs, 2);
        assert_tensors_close(
            &decoded,
            &full,
            1e-10,
            1e-12,
            &format!("{label}: prefill+decode vs full"),
        );
    }
}

#[test]
fn cosformer_decoding_token_by_token_equals_full_pass() {
    // Decoding from an empty state, one token at a time, with M fixed.
    let t = 63;
    let x = inputs::<F64>(t, 8);
    let config = FeatureMapConfig::Cosformer { max_len: 63 };
    let attention = linear_attention::<F64>(&config, D, H, 0);
    let full = attention
        .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
        .unwrap();
    let mut state = LinearState::zeros(B, H, attention.feature_dim(), DV, &Default::default());
    let mut outputs = Vec::new();
    for i in 0..t {
        let token = |t4: &Tensor<F64, 4>| t4.clone().slice([0..B, 0..H, i..i + 1]);
        let (y, next) = attention
            .decode_step(state, token(&x.q), token(&x.k), token(&x.v), i)
            .unwrap();
        outputs.push(y);
        state = next;
    }
    assert_tensors_close(
        &Tensor::cat(outputs, 2),
        &full,
        1e-10,
        1e-12,
        "cosFormer decode",
    );
    // One more token would pass M: a clear error, not a silently wrong weight.
    let token = |t4: &Tensor<F64, 4>| t4.clone().slice([0..B, 0..H, 0..1]);
    let err = attention
        .decode_step(state, token(&x.q), token(&x.k), token(&x.v), t)
        .unwrap_err();
    assert_eq!(
        err,
        AttentionError::PositionOutOfRange {
            position: 64,
            max_len: 63
        }
    );
}

#[test]
fn chunked_continues_from_a_given_state() {
    let t = 100;
    let x = inputs::<F64>(t, 9);
    let config = FeatureMapConfig::Elu;
    let (fq, fk) = features(&config, &x);
    let (full, full_state) = linear::chunked(
        fq.clone(),
        fk.clone(),
        x.v.clone(),
        16,
        None,
        None,
        DEFAULT_EPS,
    )
    .unwrap();
    let part = |t4: &Tensor<F64, 4>, r: std::ops::Range<usize>| t4.clone().slice([0..B, 0..H, r]);
    let (first, state) = linear::chunked(
        part(&fq, 0..37),
        part(&fk, 0..37),
        part(&x.v, 0..37),
        16,
        None,
        None,
        DEFAULT_EPS,
    )
    .unwrap();
    let (second, state) = linear::chunked(
        part(&fq, 37..t),
        part(&fk, 37..t),
        part(&x.v, 37..t),
        16,
        None,
        Some(state),
        DEFAULT_EPS,
    )
    .unwrap();
    assert_tensors_close(
        &Tensor::cat(vec![first, second], 2),
        &full,
        1e-10,
        1e-12,
        "two prefills",
    );
    assert_tensors_close(&state.s, &full_state.s, 1e-12, 1e-12, "two prefills: S");
}

#[test]
fn mismatched_shapes_are_errors_not_panics() {
    let x = inputs::<F64>(10, 10);
    let (fq, fk) = features(&FeatureMapConfig::Elu, &x);
    let short_v = x.v.clone().slice([0..B, 0..H, 0..9]);
    let err = linear::parallel(fq.clone(), fk.clone(), short_v, None, DEFAULT_EPS).unwrap_err();
    assert!(
        matches!(err, AttentionError::Shape { what: "values", .. }),
        "{err}"
    );
    let bad_mask = Tensor::<F64, 2, Bool>::from_data(
        TensorData::new(vec![false; 9], [1, 9]),
        &Default::default(),
    );
    let err = linear::chunked(
        fq.clone(),
        fk.clone(),
        x.v.clone(),
        4,
        Some(&bad_mask),
        None,
        DEFAULT_EPS,
    )
    .unwrap_err();
    assert!(err.to_string().contains("key padding mask"), "{err}");
    let err = linear::chunked(fq, fk, x.v.clone(), 0, None, None, DEFAULT_EPS).unwrap_err();
    assert!(err.to_string().contains("chunk_size"), "{err}");
    let attention = linear_attention::<F64>(&FeatureMapConfig::Elu, D, H, 0);
    let wide_q = randn::<F64, 4>([B, H, 10, D + 1], 1.0, 0);
    let err = attention
        .forward(wide_q, x.k.clone(), x.v.clone(), true, None)
        .unwrap_err();
    assert!(err.to_string().contains("feature map input"), "{err}");
}
