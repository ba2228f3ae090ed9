//! Sliding-window + linear attention (`window/`): the formula written out by hand == the
//! quadratic reference == the chunked form == prefill and token-by-token decoding, on outputs,
//! states and gradients, for every feature map at odd sizes and windows; the window covering
//! the sequence is softmax attention, window 0 is today's linear attention, padding, and bad
//! inputs are errors. Float64, so tolerances are tight.

mod common;

use burn::module::{Module, Param};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor, TensorData};
use common::*;
use hedgehog_attention::window::{self, WindowInputs, WindowState, WindowToken};
use hedgehog_attention::{AttentionConfig, AttentionError, FeatureMapConfig, LinearAttention};
use hedgehog_attention::{linear, softmax};

const B: usize = 2;
const H: usize = 3;
const D: usize = 8;
const DV: usize = 5;
const SIZES: [usize; 4] = [1, 63, 100, 257];
const WINDOWS: [usize; 3] = [1, 7, 64];

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

/// The shared tests' layer (trainable maps off their identity init) with a window of `window`
/// keys and a different `γ` per head, so that a head mix-up shows.
fn windowed<Bk: Backend>(config: &FeatureMapConfig, window: usize) -> LinearAttention<Bk> {
    let device = Default::default();
    let mut attention = linear_attention::<Bk>(config, D, H, 11)
        .with_window(window, 0.1, H, &device)
        .unwrap();
    attention.window_factors = Some(Param::from_tensor(randn::<Bk, 1>([H], 1.0, 5)));
    attention
}

fn window_inputs<Bk: Backend>(
    attention: &LinearAttention<Bk>,
    x: &Inputs<Bk>,
    key_padding: Option<&Tensor<Bk, 2, Bool>>,
) -> WindowInputs<Bk> {
    let (fq, fk) = attention.features(x.q.clone(), x.k.clone(), 0).unwrap();
    WindowInputs {
        q: x.q.clone(),
        k: x.k.clone(),
        fq,
        fk,
        v: x.v.clone(),
        factors: attention.window_gammas().unwrap(),
        key_padding: key_padding.cloned(),
        eps: attention.eps,
    }
}

fn tokens<Bk: Backend>(x: &Tensor<Bk, 4>, range: std::ops::Range<usize>) -> Tensor<Bk, 4> {
    x.clone().slice([0..B, 0..H, range])
}

/// The state after `t` tokens, straight from its definition: the last `min(W, t)` keys and
/// values, and `(S, z)` over the keys before them.
fn expected_state(
    attention: &LinearAttention<F64>,
    x: &Inputs<F64>,
    t: usize,
) -> (Tensor<F64, 4>, Tensor<F64, 4>, linear::LinearState<F64>) {
    let w = attention.window;
    let (_, fk) = attention.features(x.q.clone(), x.k.clone(), 0).unwrap();
    let old = t.saturating_sub(w);
    let linear = if old == 0 {
        linear::LinearState::zeros(B, H, fk.dims()[3], DV, &Default::default())
    } else {
        linear::LinearState::from_features(tokens(&fk, 0..old), tokens(&x.v, 0..old))
    };
    (tokens(&x.k, old..t), tokens(&x.v, old..t), linear)
}

#[track_caller]
fn assert_state_close(
    got: &WindowState<F64>,
    x: &Inputs<F64>,
    attention: &LinearAttention<F64>,
    t: usize,
    what: &str,
) {
    let (keys, values, linear) = expected_state(attention, x, t);
    assert_eq!(got.position, t, "{what}: position");
    assert_tensors_close(&got.keys, &keys, 0.0, 0.0, &format!("{what}: cached keys"));
    assert_tensors_close(
        &got.values,
        &values,
        0.0,
        0.0,
        &format!("{what}: cached values"),
    );
    assert_tensors_close(
        &got.linear.s,
        &linear.s,
        1e-10,
        1e-12,
        &format!("{what}: S"),
    );
    assert_tensors_close(
        &got.linear.z,
        &linear.z,
        1e-10,
        1e-12,
        &format!("{what}: z"),
    );
}

/// The formula of `window.rs` element by element on the host, for one small case: the
/// reference the quadratic form is checked against, sharing none of its code.
fn by_hand(inputs: &WindowInputs<F64>, window: usize) -> Vec<f64> {
    let [_, _, t, d] = inputs.q.dims();
    let f = inputs.fq.dims()[3];
    let (q, k, fq, fk, v) = (
        values(&inputs.q),
        values(&inputs.k),
        values(&inputs.fq),
        values(&inputs.fk),
        values(&inputs.v),
    );
    let gamma = values(&inputs.factors);
    let dot = |a: &[f64], i: usize, b: &[f64], j: usize, w: usize| -> f64 {
        (0..w).map(|n| a[i * w + n] * b[j * w + n]).sum()
    };
    let mut y = Vec::new();
    for bh in 0..B * H {
        let (base, head) = (bh * t, bh % H);
        for i in 0..t {
            let in_window = |j: usize| j <= i && j + window > i;
            let score = |j| dot(&q, base + i, &k, base + j, d) / (d as f64).sqrt();
            let max = (0..t)
                .filter(|&j| in_window(j))
                .map(score)
                .fold(f64::MIN, f64::max);
            let term = |j: usize| match () {
                _ if in_window(j) => gamma[head] * (score(j) - max).exp(),
                _ if j + window <= i => dot(&fq, base + i, &fk, base + j, f),
                _ => 0.0,
            };
            let normaliser: f64 = (0..t).map(term).sum::<f64>() + inputs.eps;
            for c in 0..DV {
                let numerator: f64 = (0..t).map(|j| term(j) * v[(base + j) * DV + c]).sum();
                y.push(numerator / normaliser);
            }
        }
    }
    y
}

#[test]
fn quadratic_form_is_the_formula_written_out() {
    let t = 13;
    let x = inputs::<F64>(t, 1);
    for config in maps_for(t) {
        for w in [1, 4, 13] {
            let attention = windowed::<F64>(&config, w);
            let inputs = window_inputs(&attention, &x, None);
            let expected = by_hand(&inputs, w);
            let (y, weights) = window::quadratic(inputs, w).unwrap();
            let what = format!("{}: W={w}, quadratic vs by hand", config.label());
            assert_close(&values(&y), &expected, 1e-10, 1e-12, &what);
            let y_from_weights = weights.clone().matmul(x.v.clone());
            assert_tensors_close(&y_from_weights, &y, 1e-12, 1e-12, &what);
            // The layer's weights are these, and its kernel their rows before normalising.
            let layer_weights = attention
                .weights(x.q.clone(), x.k.clone(), true, None)
                .unwrap();
            assert_tensors_close(&layer_weights, &weights, 1e-12, 1e-12, &what);
            let kernel = attention
                .kernel(x.q.clone(), x.k.clone(), true, None)
                .unwrap();
            let normalised = kernel.clone() / kernel.sum_dim(3).add_scalar(attention.eps);
            assert_tensors_close(
                &normalised,
                &weights,
                1e-12,
                1e-12,
                &format!("{what}: kernel"),
            );
        }
    }
}

#[test]
fn chunked_equals_quadratic_on_outputs_and_final_state_for_every_map() {
    for t in SIZES {
        let x = inputs::<F64>(t, 2);
        for config in maps_for(t) {
            for w in WINDOWS {
                let attention = windowed::<F64>(&config, w);
                let (reference, _) =
                    window::quadratic(window_inputs(&attention, &x, None), w).unwrap();
                for chunk in [7, 16, 64] {
                    let what = format!("{}: T={t}, W={w}, C={chunk}", config.label());
                    let inputs = window_inputs(&attention, &x, None);
                    let (y, state) = window::chunked(inputs.clone(), w, chunk, None).unwrap();
                    assert_tensors_close(&y, &reference, 1e-10, 1e-12, &format!("{what}: chunked"));
                    assert_state_close(&state, &x, &attention, t, &what);
                    let y = window::chunked_output(inputs, w, chunk).unwrap();
                    assert_tensors_close(
                        &y,
                        &reference,
                        1e-10,
                        1e-12,
                        &format!("{what}: output only"),
                    );
                }
                let layer = attention
                    .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
                    .unwrap();
                let what = format!("{}: T={t}, W={w}, LinearAttention::forward", config.label());
                assert_tensors_close(&layer, &reference, 1e-10, 1e-12, &what);
            }
        }
    }
}

/// `Σ y ⊙ w` for a fixed random `w`, so every output element gets a distinct gradient.
fn probe_loss(y: Tensor<AdF64, 4>) -> Tensor<AdF64, 1> {
    let w = randn::<AdF64, 4>(y.dims(), 1.0, 99);
    (y * w).sum()
}

/// Gradients of the probe loss wrt q, k, v, every map parameter and the window logits.
fn gradients(config: &FeatureMapConfig, t: usize, w: usize, quadratic: bool) -> Vec<Vec<f64>> {
    let attention = windowed::<AdF64>(config, w);
    let x = inputs::<AdF64>(t, 3);
    let x = Inputs {
        q: x.q.require_grad(),
        k: x.k.require_grad(),
        v: x.v.require_grad(),
    };
    let y = if quadratic {
        window::quadratic(window_inputs(&attention, &x, None), w)
            .unwrap()
            .0
    } else {
        attention
            .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
            .unwrap()
    };
    let grads = probe_loss(y).backward();
    let mut out: Vec<Vec<f64>> = [&x.q, &x.k, &x.v]
        .iter()
        .map(|t| values(&t.grad(&grads).expect("input has a gradient")))
        .collect();
    let mut parameters = Vec::new();
    attention.visit(&mut ParameterGrads {
        grads: &grads,
        out: &mut parameters,
    });
    let logits = attention.window_factors.as_ref().expect("a window").val();
    assert!(
        logits.grad(&grads).is_some(),
        "the window logits have a gradient"
    );
    out.extend(parameters);
    out
}

/// Collects the gradient of every float parameter of a module.
struct ParameterGrads<'a> {
    grads: &'a <AdF64 as burn::tensor::backend::AutodiffBackend>::Gradients,
    out: &'a mut Vec<Vec<f64>>,
}

impl burn::module::ModuleVisitor<AdF64> for ParameterGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<AdF64, D>>) {
        if let Some(grad) = param.val().grad(self.grads) {
            self.out.push(values(&grad));
        }
    }
}

#[test]
fn chunked_gradients_equal_quadratic_gradients_for_every_map() {
    for (t, w) in [(63, 7), (100, 64), (257, 1)] {
        for config in maps_for(t) {
            let reference = gradients(&config, t, w, true);
            let got = gradients(&config, t, w, false);
            assert_eq!(
                got.len(),
                reference.len(),
                "{}: parameter count",
                config.label()
            );
            for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
                let what = format!("{}: T={t}, W={w}, gradient #{i}", config.label());
                assert_close(g, r, 1e-8, 1e-10, &what);
            }
        }
    }
}

/// Decodes `x` from `prefix` tokens on, after prefilling those (in two calls when `split`).
fn prefill_then_decode(
    attention: &LinearAttention<F64>,
    x: &Inputs<F64>,
    prefix: usize,
    split: Option<usize>,
) -> (Tensor<F64, 4>, WindowState<F64>) {
    let t = x.q.dims()[2];
    let part = |r: std::ops::Range<usize>| {
        (
            tokens(&x.q, r.clone()),
            tokens(&x.k, r.clone()),
            tokens(&x.v, r),
        )
    };
    let mut outputs = Vec::new();
    let mut state = None;
    let bounds = match split {
        Some(s) => vec![0, s, prefix],
        None => vec![0, prefix],
    };
    for pair in bounds.windows(2) {
        let r = pair[0]..pair[1];
        let (q, k, v) = part(r);
        let (y, next) = attention.prefill_window(q, k, v, None, state).unwrap();
        outputs.push(y);
        state = Some(next);
    }
    let mut state = state.unwrap();
    for i in prefix..t {
        let (q, k, v) = part(i..i + 1);
        let (y, next) = attention.decode_step_window(state, q, k, v).unwrap();
        outputs.push(y);
        state = next;
    }
    (Tensor::cat(outputs, 2), state)
}

#[test]
fn decoding_token_by_token_equals_the_full_pass() {
    for t in [63, 100] {
        let x = inputs::<F64>(t, 4);
        for config in maps_for(t) {
            for w in WINDOWS {
                let attention = windowed::<F64>(&config, w);
                let full = attention
                    .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
                    .unwrap();
                for (prefix, split) in [
                    (1, None),
                    (40, None),
                    (40, Some(3)),
                    (t - 1, Some(w.min(t - 2))),
                ] {
                    let what = format!(
                        "{}: T={t}, W={w}, prefill {prefix} (split {split:?})",
                        config.label()
                    );
                    let (decoded, state) = prefill_then_decode(&attention, &x, prefix, split);
                    assert_tensors_close(&decoded, &full, 1e-10, 1e-12, &what);
                    assert_state_close(&state, &x, &attention, t, &what);
                }
            }
        }
    }
}

#[test]
fn a_window_covering_the_sequence_is_softmax_attention() {
    let t = 63;
    let x = inputs::<F64>(t, 5);
    let (softmax_y, softmax_weights) =
        softmax::attention(x.q.clone(), x.k.clone(), x.v.clone(), true, None).unwrap();
    for config in maps_for(t) {
        for w in [t, t + 5] {
            let mut attention = windowed::<F64>(&config, w);
            let what = format!("{}: W={w} ≥ T={t}", config.label());
            // With ε > 0, γ no longer cancels exactly: each row is off by at most ε/(γ Σ e^{s−m}).
            let y = attention
                .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
                .unwrap();
            assert_tensors_close(&y, &softmax_y, 1e-4, 1e-5, &format!("{what}, ε = 1e-6"));
            attention.eps = 0.0;
            let y = attention
                .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
                .unwrap();
            assert_tensors_close(&y, &softmax_y, 1e-12, 1e-12, &format!("{what}, ε = 0"));
            let weights = attention
                .weights(x.q.clone(), x.k.clone(), true, None)
                .unwrap();
            assert_tensors_close(
                &weights,
                &softmax_weights,
                1e-12,
                1e-12,
                &format!("{what}: weights"),
            );
        }
    }
}

#[test]
fn window_zero_is_todays_linear_attention_bit_for_bit() {
    let t = 100;
    let x = inputs::<F64>(t, 6);
    for config in maps_for(t) {
        let label = config.label();
        let built = AttentionConfig::linear(config.clone())
            .init_linear::<F64>(D, H, &Default::default())
            .unwrap()
            .unwrap();
        assert_eq!(
            (built.window, built.window_factors.is_none()),
            (0, true),
            "{label}"
        );
        let plain = linear_attention::<F64>(&config, D, H, 11);
        let attention = plain
            .clone()
            .with_window(0, 0.3, H, &Default::default())
            .unwrap();
        assert_eq!(
            attention.num_params(),
            plain.num_params(),
            "{label}: no window parameters"
        );
        let y = attention
            .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, None)
            .unwrap();
        let fq =
            plain
                .query_map
                .forward_for_output(x.q.clone(), hedgehog_attention::Role::Query, 0);
        let fk = plain
            .key_map()
            .forward_for_output(x.k.clone(), hedgehog_attention::Role::Key, 0);
        let today =
            linear::chunked_output(fq, fk, x.v.clone(), plain.chunk_size, None, plain.eps).unwrap();
        assert_eq!(values(&y), values(&today), "{label}: window 0 forward");
        let weights = attention
            .weights(x.q.clone(), x.k.clone(), true, None)
            .unwrap();
        let today = plain.weights(x.q.clone(), x.k.clone(), true, None).unwrap();
        assert_eq!(
            values(&weights),
            values(&today),
            "{label}: window 0 weights"
        );
    }
}

#[test]
fn window_zero_configs_keep_their_labels_and_serialisation() {
    for config in maps_for(1) {
        let plain = AttentionConfig::linear(config.clone());
        assert_eq!(plain.label(), config.label());
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("window"), "{json}");
        let AttentionConfig::Linear {
            feature_map,
            tie_query_key,
            chunk_size,
            eps,
            ..
        } = plain.clone()
        else {
            unreachable!()
        };
        let windowed = AttentionConfig::Linear {
            feature_map,
            tie_query_key,
            chunk_size,
            eps,
            window: 64,
            window_factor: 0.25,
        };
        // A windowed layer must not fill the map's own paper row, which hedgehog-analysis
        // matches by the row's name as a prefix (`"Hedgehog (…"`).
        let label = windowed.label();
        assert_eq!(label, format!("window 64 + {}", config.label()));
        assert!(!label.starts_with(&config.label()), "{label}");
        let back: AttentionConfig =
            serde_json::from_str(&serde_json::to_string(&windowed).unwrap()).unwrap();
        assert_eq!(back, windowed);
    }
    let parsed: AttentionConfig =
        serde_json::from_str(r#"{"kind":"linear","feature_map":{"kind":"elu"},"window":64}"#)
            .unwrap();
    let AttentionConfig::Linear {
        window,
        window_factor,
        ..
    } = parsed
    else {
        unreachable!()
    };
    assert_eq!((window, window_factor), (64, 0.1));
    let typo = serde_json::from_str::<AttentionConfig>(
        r#"{"kind":"linear","feature_map":{"kind":"elu"},"windw":64}"#,
    );
    assert!(typo.unwrap_err().to_string().contains("windw"));
}

fn padding(t: usize, left: usize, right_from: usize) -> Tensor<F64, 2, Bool> {
    let mut mask = vec![false; B * t];
    mask[..left].fill(true);
    mask[t + right_from..].fill(true);
    Tensor::from_data(TensorData::new(mask, [B, t]), &Default::default())
}

#[test]
fn padded_keys_are_unseen_and_padded_queries_output_zero() {
    let (t, left, real) = (63, 5, 50);
    let x = inputs::<F64>(t, 7);
    let mask = padding(t, left, real);
    for config in maps_for(t) {
        for w in WINDOWS {
            let attention = windowed::<F64>(&config, w);
            let what = format!("{}: W={w}, padded", config.label());
            let (reference, weights) =
                window::quadratic(window_inputs(&attention, &x, Some(&mask)), w).unwrap();
            let y = attention
                .forward(x.q.clone(), x.k.clone(), x.v.clone(), true, Some(&mask))
                .unwrap();
            assert_tensors_close(
                &y,
                &reference,
                1e-10,
                1e-12,
                &format!("{what}: chunked vs quadratic"),
            );
            let zeros = |y: Tensor<F64, 4>, b: usize, r: std::ops::Range<usize>| {
                values(&y.slice([b..b + 1, 0..H, r]))
            };
            assert!(
                zeros(y.clone(), 0, 0..left).iter().all(|v| *v == 0.0),
                "{what}: left"
            );
            assert!(
                zeros(y.clone(), 1, real..t).iter().all(|v| *v == 0.0),
                "{what}: right"
            );
            let padded_columns = values(&weights.clone().slice([0..1, 0..H, 0..t, 0..left]));
            assert!(
                padded_columns.iter().all(|v| *v == 0.0),
                "{what}: weights of padded keys"
            );
            // The right-padded sequence's real tokens are the sequence alone.
            let alone = |x: &Tensor<F64, 4>| x.clone().slice([1..2, 0..H, 0..real]);
            let inputs = WindowInputs {
                key_padding: None,
                ..window_inputs(
                    &attention,
                    &Inputs {
                        q: alone(&x.q),
                        k: alone(&x.k),
                        v: alone(&x.v),
                    },
                    None,
                )
            };
            let (unpadded, _) = window::quadratic(inputs, w).unwrap();
            assert_tensors_close(
                &alone(&y),
                &unpadded,
                1e-10,
                1e-12,
                &format!("{what}: vs alone"),
            );
        }
    }
}

#[test]
fn decoding_after_a_padded_prefill_keeps_the_padding_unseen() {
    let (t, prefix, left) = (40, 30, 4);
    let x = inputs::<F64>(t, 8);
    let full_mask = padding(t, left, t);
    let prefix_mask = full_mask.clone().slice([0..B, 0..prefix]);
    for config in maps_for(t) {
        for w in WINDOWS {
            let attention = windowed::<F64>(&config, w);
            let full = attention
                .forward(
                    x.q.clone(),
                    x.k.clone(),
                    x.v.clone(),
                    true,
                    Some(&full_mask),
                )
                .unwrap();
            let part = |x: &Tensor<F64, 4>, r: std::ops::Range<usize>| tokens(x, r);
            let (y, mut state) = attention
                .prefill_window(
                    part(&x.q, 0..prefix),
                    part(&x.k, 0..prefix),
                    part(&x.v, 0..prefix),
                    Some(&prefix_mask),
                    None,
                )
                .unwrap();
            let mut outputs = vec![y];
            for i in prefix..t {
                let (y, next) = attention
                    .decode_step_window(
                        state,
                        part(&x.q, i..i + 1),
                        part(&x.k, i..i + 1),
                        part(&x.v, i..i + 1),
                    )
                    .unwrap();
                outputs.push(y);
                state = next;
            }
            let what = format!("{}: W={w}, padded prefill + decode", config.label());
            assert_tensors_close(&Tensor::cat(outputs, 2), &full, 1e-10, 1e-12, &what);
        }
    }
}

#[test]
fn bad_inputs_are_clear_errors() {
    let device = Default::default();
    for factor in [0.0, 1.0, 1.5, -0.1, f64::NAN] {
        let config = AttentionConfig::Linear {
            feature_map: FeatureMapConfig::Elu,
            tie_query_key: false,
            chunk_size: 16,
            eps: 1e-6,
            window: 8,
            window_factor: factor,
        };
        let err = config.init_linear::<F64>(D, H, &device).unwrap_err();
        assert!(
            err.to_string().contains("window_factor must be in (0, 1)"),
            "{err}"
        );
    }
    let x = inputs::<F64>(10, 9);
    let attention = windowed::<F64>(&FeatureMapConfig::Elu, 4);
    let err = attention
        .forward(x.q.clone(), x.k.clone(), x.v.clone(), false, None)
        .unwrap_err();
    assert!(err.to_string().contains("causal only"), "{err}");
    let err = attention
        .weights(x.q.clone(), x.k.clone(), false, None)
        .unwrap_err();
    assert!(err.to_string().contains("causal only"), "{err}");
    let err = attention
        .prefill(x.q.clone(), x.k.clone(), x.v.clone(), None)
        .unwrap_err();
    assert!(err.to_string().contains("prefill_window"), "{err}");
    let plain = linear_attention::<F64>(&FeatureMapConfig::Elu, D, H, 11);
    let err = plain
        .prefill_window(x.q.clone(), x.k.clone(), x.v.clone(), None, None)
        .unwrap_err();
    assert!(err.to_string().contains("window 0"), "{err}");

    let inputs = window_inputs(&attention, &x, None);
    let err = window::quadratic(inputs.clone(), 0).unwrap_err();
    assert!(
        err.to_string()
            .contains("window 0 is plain linear attention"),
        "{err}"
    );
    let err = window::chunked(inputs.clone(), 4, 0, None).unwrap_err();
    assert!(err.to_string().contains("chunk_size"), "{err}");
    let two_factors = WindowInputs {
        factors: randn::<F64, 1>([2], 1.0, 0),
        ..inputs.clone()
    };
    let err = window::chunked_output(two_factors, 4, 8).unwrap_err();
    assert!(
        matches!(
            err,
            AttentionError::Shape {
                what: "window factors γ",
                ..
            }
        ),
        "{err}"
    );
    let short_k = WindowInputs {
        k: tokens(&x.k, 0..9),
        ..inputs.clone()
    };
    let err = window::quadratic(short_k, 4).unwrap_err();
    assert!(
        matches!(
            err,
            AttentionError::Shape {
                what: "sliding-window keys",
                ..
            }
        ),
        "{err}"
    );

    let (_, state) = window::chunked(inputs.clone(), 4, 8, None).unwrap();
    let one = |t: &Tensor<F64, 4>| {
        t.clone()
            .slice([0..B, 0..H, 0..1])
            .reshape([B, H, t.dims()[3]])
    };
    let token = WindowToken {
        q: one(&x.q),
        k: one(&x.k),
        v: one(&x.v),
        fq: one(&inputs.fq),
        leaving_features: None,
    };
    let err = window::decode_step(state, token, inputs.factors.clone(), 4, 1e-6).unwrap_err();
    assert!(
        err.to_string().contains("leaving_features must be given"),
        "{err}"
    );
    let wide_q = randn::<F64, 4>([B, H, 1, D + 1], 1.0, 0);
    let (_, state) = attention
        .prefill_window(x.q.clone(), x.k.clone(), x.v.clone(), None, None)
        .unwrap();
    let err = attention
        .decode_step_window(state, wide_q, one4(&x.k), one4(&x.v))
        .unwrap_err();
    assert!(matches!(err, AttentionError::Shape { .. }), "{err}");
}

fn one4(t: &Tensor<F64, 4>) -> Tensor<F64, 4> {
    t.clone().slice([0..B, 0..H, 0..1])
}
