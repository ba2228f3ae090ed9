//! The fused CPU kernels against the composed reference: outputs, final states and gradients
//! with respect to every input and map parameter, at odd sizes (T = 1, 63, 100, 257, chunks
//! that do not divide T, a padded batch of 2), both in f32 (burn-ndarray fixes one float type
//! per process at the first tensor made, so f32 and f64 backends cannot share a test binary;
//! `forms.rs` and `golden.rs` hold the composed code itself to f64 numpy references). A
//! deliberately broken kernel (an off-by-one causal mask) must fail the same check.

mod common;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Tensor, TensorData};
use common::{AdF32, AdF64, F32, F64, closeness, randn, values};
use hedgehog_attention::kernels::{self, Composed, Kernels, LinearInputs, SoftmaxInputs};
use hedgehog_attention::{HedgehogActivation, LinearState};

/// Two f32 computations in different orders agree to a relative 1e-3 of each value plus 1e-4
/// of the array's largest magnitude (f32 rounding of sums of hundreds of terms, which cancel in
/// softmax backward passes); a wrong mask or a missed term is off by orders of magnitude more.
const RTOL: f64 = 1e-3;
const ATOL_OF_MAX: f64 = 1e-4;

/// An absolute floor for arrays that are zero in exact arithmetic (the query gradient of a
/// one-token sequence): rounding leaves ~1e-7 there.
const ATOL_FLOOR: f64 = 1e-6;

/// [`closeness`] with the absolute tolerance scaled to `b`'s largest magnitude.
fn scaled_closeness(a: &[f64], b: &[f64]) -> f64 {
    let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    closeness(a, b, RTOL, (ATOL_OF_MAX * scale).max(ATOL_FLOOR))
}

/// Named arrays a case produces: outputs, states, gradients.
type Results = Vec<(&'static str, Vec<f64>)>;

/// The worst closeness over every named array (≤ 1: all close), and its name.
fn worst(fused: &Results, reference: &Results) -> (f64, &'static str) {
    assert_eq!(fused.len(), reference.len());
    fused
        .iter()
        .zip(reference)
        .map(|((name, a), (other, b))| {
            assert_eq!(name, other);
            assert_eq!(a.len(), b.len(), "{name}: length");
            assert!(a.iter().all(|x| x.is_finite()), "{name}: non-finite values");
            (scaled_closeness(a, b), *name)
        })
        .fold((0.0, ""), |acc, c| if c.0 > acc.0 { c } else { acc })
}

#[track_caller]
fn assert_agree(fused: &Results, reference: &Results, what: &str) {
    if std::env::var("KERNEL_DEBUG").is_ok() {
        for ((name, a), (_, b)) in fused.iter().zip(reference) {
            let ratio = scaled_closeness(a, b);
            let (i, _) = a
                .iter()
                .zip(b)
                .enumerate()
                .map(|(i, (x, y))| (i, (x - y).abs()))
                .fold((0, 0.0), |acc, c| if c.1 > acc.1 { c } else { acc });
            let scale = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
            eprintln!(
                "{what} {name}: ratio {ratio:.3e}, worst abs at {i}: {} vs {} (max |ref| {scale:.3e})",
                a[i], b[i]
            );
        }
    }
    let (ratio, name) = worst(fused, reference);
    assert!(
        ratio <= 1.0,
        "{what}: fused `{name}` differs from the reference (worst ratio {ratio:.3e})"
    );
}

/// `[B, T]` padding: sequence 1 ends `pad_end` tokens early and (when long enough) starts
/// with 2 padded tokens; sequence 0 is unpadded.
fn padding<B: Backend>(t: usize, pad_end: usize) -> Tensor<B, 2, Bool> {
    let mut flags = vec![false; 2 * t];
    for i in 0..t {
        flags[t + i] = i >= t.saturating_sub(pad_end) || (t > 8 && i < 2);
    }
    Tensor::from_data(TensorData::new(flags, [2, t]), &Default::default())
}

/// A random tensor marked as requiring gradients.
fn leaf<B: AutodiffBackend, const D: usize>(
    shape: [usize; D],
    std: f64,
    seed: u64,
) -> Tensor<B, D> {
    randn::<B, D>(shape, std, seed).require_grad()
}

/// Positive features, as every map produces.
fn features<B: AutodiffBackend>(shape: [usize; 4], seed: u64) -> Tensor<B, 4> {
    randn::<B, 4>(shape, 0.5, seed)
        .exp()
        .detach()
        .require_grad()
}

/// `Σ y ⊙ R` for a fixed random `R`: every output element gets its own gradient.
fn probe<B: Backend, const D: usize>(y: Tensor<B, D>, seed: u64) -> Tensor<B, 1> {
    let r = randn::<B, D>(y.dims(), 1.0, seed);
    (y * r).sum()
}

fn grad<B: AutodiffBackend, const D: usize>(t: &Tensor<B, D>, grads: &B::Gradients) -> Vec<f64> {
    values(&t.grad(grads).expect("a gradient"))
}

struct LinearCase {
    t: usize,
    chunk: usize,
    causal: bool,
    padded: bool,
    initial_state: bool,
}

const HEADS: usize = 3;
const FEATURES: usize = 8;
const VALUE_DIM: usize = 5;

fn linear_case<B: AutodiffBackend>(kernels: &dyn Kernels<B>, case: &LinearCase) -> Results {
    let (b, h, f, dv) = (2, HEADS, FEATURES, VALUE_DIM);
    let fq = features::<B>([b, h, case.t, f], 1);
    let fk = features::<B>([b, h, case.t, f], 2);
    let v = leaf::<B, 4>([b, h, case.t, dv], 1.0, 3);
    let s0 = randn::<B, 4>([b, h, f, dv], 0.5, 4)
        .exp()
        .detach()
        .require_grad();
    let z0 = randn::<B, 3>([b, h, f], 0.5, 5)
        .exp()
        .detach()
        .require_grad();
    let inputs = LinearInputs {
        fq: fq.clone(),
        fk: fk.clone(),
        v: v.clone(),
        key_padding: case.padded.then(|| padding::<B>(case.t, case.t / 3)),
        eps: 1e-6,
    };
    let initial = case.initial_state.then(|| LinearState {
        s: s0.clone(),
        z: z0.clone(),
    });
    let (y, state) = if case.causal {
        kernels.causal_linear(inputs, initial, case.chunk, true)
    } else {
        kernels.parallel_linear(inputs, true)
    };
    let state = state.expect("state requested");
    let loss = probe(y.clone(), 10) + probe(state.s.clone(), 11) + probe(state.z.clone(), 12);
    let grads = loss.backward();
    let mut out = vec![
        ("y", values(&y)),
        ("S", values(&state.s)),
        ("z", values(&state.z)),
        ("dq", grad(&fq, &grads)),
        ("dk", grad(&fk, &grads)),
        ("dv", grad(&v, &grads)),
    ];
    if case.initial_state {
        out.push(("dS0", grad(&s0, &grads)));
        out.push(("dz0", grad(&z0, &grads)));
    }
    out
}

/// The same case on the plain CPU backend (no autodiff): output and final state only.
fn linear_inference(case: &LinearCase) -> Results {
    let (b, h, f, dv) = (2, HEADS, FEATURES, VALUE_DIM);
    let inputs = LinearInputs {
        fq: randn::<F32, 4>([b, h, case.t, f], 0.5, 1).exp(),
        fk: randn::<F32, 4>([b, h, case.t, f], 0.5, 2).exp(),
        v: randn::<F32, 4>([b, h, case.t, dv], 1.0, 3),
        key_padding: case.padded.then(|| padding::<F32>(case.t, case.t / 3)),
        eps: 1e-6,
    };
    let initial = case.initial_state.then(|| LinearState {
        s: randn::<F32, 4>([b, h, f, dv], 0.5, 4).exp(),
        z: randn::<F32, 3>([b, h, f], 0.5, 5).exp(),
    });
    let kernels = kernels::for_backend::<F32>();
    let (y, state) = if case.causal {
        kernels.causal_linear(inputs, initial, case.chunk, true)
    } else {
        kernels.parallel_linear(inputs, true)
    };
    let state = state.unwrap();
    vec![
        ("y", values(&y)),
        ("S", values(&state.s)),
        ("z", values(&state.z)),
    ]
}

fn linear_cases() -> Vec<LinearCase> {
    let mut cases = Vec::new();
    for t in [1, 63, 100, 257] {
        for (chunk, padded, initial_state) in
            [(64, false, false), (16, true, true), (7, true, false)]
        {
            cases.push(LinearCase {
                t,
                chunk,
                causal: true,
                padded,
                initial_state,
            });
        }
        for padded in [false, true] {
            cases.push(LinearCase {
                t,
                chunk: 64,
                causal: false,
                padded,
                initial_state: false,
            });
        }
    }
    cases
}

#[test]
fn fused_kernels_are_active_on_the_cpu_backend_only() {
    assert!(kernels::is_fused::<F32>() && kernels::is_fused::<AdF32>());
    assert!(!kernels::is_fused::<F64>() && !kernels::is_fused::<AdF64>());
}

#[test]
fn linear_attention_outputs_states_and_gradients_match_the_reference() {
    for case in linear_cases() {
        let what = format!(
            "linear T={} chunk={} causal={} padded={} initial_state={}",
            case.t, case.chunk, case.causal, case.padded, case.initial_state
        );
        let reference = linear_case::<AdF32>(&Composed, &case);
        let fused = linear_case::<AdF32>(kernels::for_backend::<AdF32>(), &case);
        assert_agree(&fused, &reference, &what);
        let inference = linear_inference(&case);
        assert_agree(
            &inference,
            &reference[..3].to_vec(),
            &format!("{what}, inference"),
        );
    }
}

#[test]
fn an_off_by_one_causal_mask_fails_the_agreement_check() {
    let case = LinearCase {
        t: 63,
        chunk: 16,
        causal: true,
        padded: false,
        initial_state: false,
    };
    let run = |offset: usize| -> Results {
        let (b, h, f, dv) = (2, HEADS, FEATURES, VALUE_DIM);
        let fq = features::<AdF32>([b, h, case.t, f], 1);
        let fk = features::<AdF32>([b, h, case.t, f], 2);
        let v = leaf::<AdF32, 4>([b, h, case.t, dv], 1.0, 3);
        let inputs = LinearInputs {
            fq: fq.clone(),
            fk: fk.clone(),
            v: v.clone(),
            key_padding: None,
            eps: 1e-6,
        };
        let y = kernels::testing::causal_linear_with_mask_offset(inputs, case.chunk, offset);
        let grads = probe(y.clone(), 10).backward();
        vec![
            ("y", values(&y)),
            ("dq", grad(&fq, &grads)),
            ("dk", grad(&fk, &grads)),
            ("dv", grad(&v, &grads)),
        ]
    };
    let reference = {
        let (b, h, f, dv) = (2, HEADS, FEATURES, VALUE_DIM);
        let fq = features::<AdF32>([b, h, case.t, f], 1);
        let fk = features::<AdF32>([b, h, case.t, f], 2);
        let v = leaf::<AdF32, 4>([b, h, case.t, dv], 1.0, 3);
        let inputs = LinearInputs {
            fq: fq.clone(),
            fk: fk.clone(),
            v: v.clone(),
            key_padding: None,
            eps: 1e-6,
        };
        let (y, _) = Composed.causal_linear(inputs, None, case.chunk, false);
        let grads = probe(y.clone(), 10).backward();
        vec![
            ("y", values(&y)),
            ("dq", grad(&fq, &grads)),
            ("dk", grad(&fk, &grads)),
            ("dv", grad(&v, &grads)),
        ]
    };
    let (correct, _) = worst(&run(0), &reference);
    assert!(correct <= 1.0, "the unbroken kernel agrees ({correct:.3e})");
    let (broken, _) = worst(&run(1), &reference);
    assert!(
        broken > 100.0,
        "a query seeing the next key must fail the check by far, got {broken:.3e}"
    );
}

fn hedgehog_case<B: AutodiffBackend>(
    kernels: &dyn Kernels<B>,
    t: usize,
    weight_heads: usize,
    activation: HedgehogActivation,
) -> Results {
    let (b, h, d, o) = (2, HEADS, 6, 5);
    let x = leaf::<B, 4>([b, h, t, d], 1.0, 20);
    let w = leaf::<B, 3>([weight_heads, d, o], 0.5, 21);
    let bias = leaf::<B, 3>([weight_heads, 1, o], 0.3, 22);
    let phi = kernels.hedgehog(x.clone(), w.clone(), bias.clone(), activation);
    let grads = probe(phi.clone(), 23).backward();
    vec![
        ("phi", values(&phi)),
        ("dx", grad(&x, &grads)),
        ("dW", grad(&w, &grads)),
        ("db", grad(&bias, &grads)),
    ]
}

#[test]
fn hedgehog_features_and_parameter_gradients_match_the_reference() {
    for activation in [
        HedgehogActivation::Exp,
        HedgehogActivation::SoftmaxSplit,
        HedgehogActivation::SoftmaxJoint,
    ] {
        for weight_heads in [HEADS, 1] {
            for t in [1, 63, 100, 257] {
                let what = format!("hedgehog {activation:?} H_w={weight_heads} T={t}");
                let reference = hedgehog_case::<AdF32>(&Composed, t, weight_heads, activation);
                let fused = hedgehog_case::<AdF32>(
                    kernels::for_backend::<AdF32>(),
                    t,
                    weight_heads,
                    activation,
                );
                assert_agree(&fused, &reference, &what);
            }
        }
    }
}

struct SoftmaxCase {
    tq: usize,
    tk: usize,
    causal: bool,
    padded: bool,
}

fn softmax_case<B: AutodiffBackend>(
    kernels: &dyn Kernels<B>,
    case: &SoftmaxCase,
    weights_only: bool,
) -> Results {
    let (b, h, d, dv) = (2, HEADS, 8, 5);
    let q = leaf::<B, 4>([b, h, case.tq, d], 1.0, 30);
    let k = leaf::<B, 4>([b, h, case.tk, d], 1.0, 31);
    let v = leaf::<B, 4>([b, h, case.tk, dv], 1.0, 32);
    let inputs = SoftmaxInputs {
        q: q.clone(),
        k: k.clone(),
        v: v.clone(),
        causal: case.causal,
        key_padding: case.padded.then(|| padding::<B>(case.tk, case.tk / 4)),
    };
    if weights_only {
        let w = kernels.softmax_weights(inputs);
        let grads = probe(w.clone(), 33).backward();
        return vec![
            ("weights", values(&w)),
            ("dq", grad(&q, &grads)),
            ("dk", grad(&k, &grads)),
        ];
    }
    let y = kernels.softmax_attention(inputs, 0.0);
    let grads = probe(y.clone(), 33).backward();
    vec![
        ("y", values(&y)),
        ("dq", grad(&q, &grads)),
        ("dk", grad(&k, &grads)),
        ("dv", grad(&v, &grads)),
    ]
}

fn softmax_cases() -> Vec<SoftmaxCase> {
    let mut cases = Vec::new();
    for t in [1, 63, 100, 257] {
        for causal in [true, false] {
            for padded in [false, true] {
                cases.push(SoftmaxCase {
                    tq: t,
                    tk: t,
                    causal,
                    padded,
                });
            }
        }
    }
    // Fewer queries than keys (decoding with a cache): the last query sits at the last key.
    cases.push(SoftmaxCase {
        tq: 5,
        tk: 130,
        causal: true,
        padded: false,
    });
    cases
}

#[test]
fn softmax_attention_outputs_weights_and_gradients_match_the_reference() {
    for case in softmax_cases() {
        for weights_only in [false, true] {
            let what = format!(
                "softmax Tq={} Tk={} causal={} padded={} weights_only={weights_only}",
                case.tq, case.tk, case.causal, case.padded
            );
            let reference = softmax_case::<AdF32>(&Composed, &case, weights_only);
            let fused = softmax_case::<AdF32>(kernels::for_backend::<AdF32>(), &case, weights_only);
            assert_agree(&fused, &reference, &what);
        }
    }
}

#[test]
fn softmax_dropout_drops_weights_at_its_rate_and_rescales_the_rest() {
    // With V = I (one value per key), y_i is row i of the dropped, rescaled weights.
    let (b, h, t, d, p) = (1, 2, 64, 8, 0.25);
    let q = randn::<AdF32, 4>([b, h, t, d], 1.0, 40);
    let k = randn::<AdF32, 4>([b, h, t, d], 1.0, 41);
    let eye: Vec<f32> = (0..h * t * t)
        .map(|i| f32::from((i % (t * t)) / t == i % t))
        .collect();
    let v = Tensor::<AdF32, 4>::from_data(TensorData::new(eye, [b, h, t, t]), &Default::default());
    let inputs = SoftmaxInputs {
        q: q.clone(),
        k: k.clone(),
        v,
        causal: false,
        key_padding: None,
    };
    let fused = kernels::for_backend::<AdF32>();
    let weights = values(&fused.softmax_weights(inputs.clone()));
    let dropped = values(&fused.softmax_attention(inputs, p));
    let (mut kept, mut total) = (0usize, 0usize);
    for (w, y) in weights.iter().zip(&dropped) {
        total += 1;
        if *y == 0.0 {
            continue;
        }
        kept += 1;
        assert!(
            (y / w - 1.0 / (1.0 - p)).abs() < 1e-4,
            "a kept weight is scaled by 1/(1 − p): {y} vs {w}"
        );
    }
    let rate = 1.0 - kept as f64 / total as f64;
    assert!((rate - p).abs() < 0.02, "dropped {rate:.3}, expected {p}");
}

#[test]
fn softmax_dropout_gradients_match_finite_differences_for_a_fixed_seed() {
    let (b, h, t, d, dv, p) = (1, 2, 37, 8, 4, 0.3);
    let device = Default::default();
    let q0 = randn::<AdF32, 4>([b, h, t, d], 1.0, 50);
    let k = randn::<AdF32, 4>([b, h, t, d], 1.0, 51);
    let v = randn::<AdF32, 4>([b, h, t, dv], 1.0, 52);
    let loss = |q: Tensor<AdF32, 4>| -> Tensor<AdF32, 1> {
        AdF32::seed(&device, 9);
        let inputs = SoftmaxInputs {
            q,
            k: k.clone(),
            v: v.clone(),
            causal: true,
            key_padding: None,
        };
        probe(
            kernels::for_backend::<AdF32>().softmax_attention(inputs, p),
            53,
        )
    };
    let q = q0.clone().require_grad();
    let analytic = grad(&q, &loss(q.clone()).backward());
    let direction = randn::<AdF32, 4>([b, h, t, d], 1.0, 54);
    let step = 1e-2;
    let value = |x: Tensor<AdF32, 4>| values(&loss(x))[0];
    let numeric = (value(q0.clone() + direction.clone().mul_scalar(step))
        - value(q0.clone() - direction.clone().mul_scalar(step)))
        / (2.0 * step);
    let projected: f64 = analytic
        .iter()
        .zip(values(&direction))
        .map(|(g, u)| g * u)
        .sum();
    assert!(
        (projected - numeric).abs() <= 2e-2 * numeric.abs().max(1.0),
        "directional derivative: autodiff {projected}, finite differences {numeric}"
    );
}

fn lm_head_case<B: AutodiffBackend>(kernels: &dyn Kernels<B>, n: usize, vocab: usize) -> Results {
    let d = 16;
    let hidden = leaf::<B, 2>([n, d], 1.0, 60);
    let weight = leaf::<B, 2>([vocab, d], 0.5, 61);
    let targets: Vec<Option<usize>> = (0..n)
        .map(|i| (i % 5 != 3).then_some((i * 7919) % vocab))
        .collect();
    let loss = kernels.lm_head_loss(hidden.clone(), weight.clone(), &targets);
    let nll: Vec<f64> = kernels
        .lm_head_nll(hidden.clone().detach(), weight.clone().detach(), &targets)
        .into_iter()
        .map(f64::from)
        .collect();
    let grads = loss.clone().mul_scalar(1.7).backward();
    vec![
        ("loss", values(&loss)),
        ("nll", nll),
        ("dhidden", grad(&hidden, &grads)),
        ("dweight", grad(&weight, &grads)),
    ]
}

#[test]
fn lm_head_cross_entropy_and_gradients_match_the_reference() {
    // 700 tokens of a 13,000-word vocabulary span several logits blocks.
    for (n, vocab) in [(1, 7), (63, 100), (257, 1000), (700, 13_000)] {
        let reference = lm_head_case::<AdF32>(&Composed, n, vocab);
        let fused = lm_head_case::<AdF32>(kernels::for_backend::<AdF32>(), n, vocab);
        assert_agree(&fused, &reference, &format!("LM head N={n} V={vocab}"));
    }
}

#[test]
fn lm_head_errors_name_the_problem() {
    let hidden = randn::<F32, 2>([3, 4], 1.0, 1);
    let weight = randn::<F32, 2>([10, 4], 1.0, 2);
    let err = hedgehog_attention::lm_head::cross_entropy(
        hidden.clone(),
        weight.clone(),
        &[Some(1), Some(10), None],
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("outside the vocabulary of 10"),
        "{err}"
    );
    let err = hedgehog_attention::lm_head::cross_entropy(
        hidden.clone(),
        weight.clone(),
        &[None, None, None],
    )
    .unwrap_err();
    assert!(err.to_string().contains("at least one scored"), "{err}");
    let err = hedgehog_attention::lm_head::cross_entropy(
        hidden,
        randn::<F32, 2>([10, 5], 1.0, 2),
        &[None; 3],
    )
    .unwrap_err();
    assert!(err.to_string().contains("[V, 4]"), "{err}");
}

#[test]
fn recurrent_steps_match_the_reference() {
    let (b, h, f, dv) = (2, HEADS, FEATURES, VALUE_DIM);
    let run = |kernels: &dyn Kernels<F32>| -> Results {
        let mut state = LinearState {
            s: randn::<F32, 4>([b, h, f, dv], 0.5, 70).exp(),
            z: randn::<F32, 3>([b, h, f], 0.5, 71).exp(),
        };
        let mut ys = Vec::new();
        for step in 0..5u64 {
            let (y, next) = kernels.recurrent_step(
                state,
                randn::<F32, 3>([b, h, f], 0.5, 72 + step).exp(),
                randn::<F32, 3>([b, h, f], 0.5, 80 + step).exp(),
                randn::<F32, 3>([b, h, dv], 1.0, 90 + step),
                1e-6,
            );
            ys.extend(values(&y));
            state = next;
        }
        vec![("y", ys), ("S", values(&state.s)), ("z", values(&state.z))]
    };
    assert_agree(
        &run(kernels::for_backend::<F32>()),
        &run(&Composed),
        "recurrent steps",
    );
}

fn taylor_case<B: AutodiffBackend>(
    kernels: &dyn Kernels<B>,
    t: usize,
    compressed: bool,
) -> Results {
    let x = leaf::<B, 4>([2, HEADS, t, 6], 1.0, 100);
    let phi = kernels.taylor(x.clone(), compressed);
    let grads = probe(phi.clone(), 101).backward();
    vec![("phi", values(&phi)), ("dx", grad(&x, &grads))]
}

#[test]
fn taylor_features_and_gradients_match_the_reference() {
    for compressed in [false, true] {
        for t in [1, 63, 100, 257] {
            let reference = taylor_case::<AdF32>(&Composed, t, compressed);
            let fused = taylor_case::<AdF32>(kernels::for_backend::<AdF32>(), t, compressed);
            assert_agree(
                &fused,
                &reference,
                &format!("Taylor-2 compressed={compressed} T={t}"),
            );
        }
    }
}

#[test]
fn taylor_attention_through_the_compressed_basis_equals_the_written_features() {
    use hedgehog_attention::{AttentionConfig, FeatureMapConfig};
    let (b, h, t, d) = (2, HEADS, 100, 8);
    let attention = AttentionConfig::linear(FeatureMapConfig::Taylor { compressed: false })
        .init_linear::<AdF32>(d, h, &Default::default())
        .unwrap()
        .unwrap();
    for causal in [true, false] {
        let q = leaf::<AdF32, 4>([b, h, t, d], 0.7, 110);
        let k = leaf::<AdF32, 4>([b, h, t, d], 0.7, 111);
        let v = leaf::<AdF32, 4>([b, h, t, 5], 1.0, 112);
        let padding = padding::<AdF32>(t, 10);
        let run = |through_forward: bool| -> Results {
            let y = if through_forward {
                attention
                    .forward(q.clone(), k.clone(), v.clone(), causal, Some(&padding))
                    .unwrap()
            } else {
                let (fq, fk) = attention.features(q.clone(), k.clone(), 0).unwrap();
                assert_eq!(fq.dims()[3], 1 + d + d * d, "the written features");
                let inputs = LinearInputs {
                    fq,
                    fk,
                    v: v.clone(),
                    key_padding: Some(padding.clone()),
                    eps: attention.eps,
                };
                if causal {
                    Composed
                        .causal_linear(inputs, None, attention.chunk_size, false)
                        .0
                } else {
                    Composed.parallel_linear(inputs, false).0
                }
            };
            let grads = probe(y.clone(), 113).backward();
            vec![
                ("y", values(&y)),
                ("dq", grad(&q, &grads)),
                ("dk", grad(&k, &grads)),
                ("dv", grad(&v, &grads)),
            ]
        };
        assert_agree(
            &run(true),
            &run(false),
            &format!("Taylor-2 causal={causal}"),
        );
    }
}

#[test]
fn elu_features_and_gradients_match_the_reference() {
    for t in [1, 63, 100, 257] {
        let run = |kernels: &dyn Kernels<AdF32>| -> Results {
            let x = leaf::<AdF32, 4>([2, HEADS, t, 6], 1.5, 120);
            let phi = kernels.elu_plus_one(x.clone());
            let grads = probe(phi.clone(), 121).backward();
            vec![("phi", values(&phi)), ("dx", grad(&x, &grads))]
        };
        assert_agree(
            &run(kernels::for_backend::<AdF32>()),
            &run(&Composed),
            &format!("1+ELU T={t}"),
        );
    }
}

/// A sliding-window case through `window::chunked_output` (fused on `AdF32`) or the quadratic
/// reference; gradients with respect to every input, the factors `γ` included.
fn window_case(t: usize, window: usize, padded: bool, fused: bool) -> Results {
    use hedgehog_attention::window::{self, WindowInputs};
    let (b, h, d, f, dv) = (2, HEADS, 4, FEATURES, VALUE_DIM);
    let q = leaf::<AdF32, 4>([b, h, t, d], 1.0, 130);
    let k = leaf::<AdF32, 4>([b, h, t, d], 1.0, 131);
    let fq = features::<AdF32>([b, h, t, f], 132);
    let fk = features::<AdF32>([b, h, t, f], 133);
    let v = leaf::<AdF32, 4>([b, h, t, dv], 1.0, 134);
    let factors =
        Tensor::<AdF32, 1>::from_floats([0.1, 0.45, 0.8], &Default::default()).require_grad();
    let inputs = WindowInputs {
        q: q.clone(),
        k: k.clone(),
        fq: fq.clone(),
        fk: fk.clone(),
        v: v.clone(),
        factors: factors.clone(),
        key_padding: padded.then(|| padding::<AdF32>(t, t / 3)),
        eps: 1e-6,
    };
    let y = if fused {
        window::chunked_output(inputs, window, 16).unwrap()
    } else {
        window::quadratic(inputs, window).unwrap().0
    };
    let grads = probe(y.clone(), 135).backward();
    vec![
        ("y", values(&y)),
        ("dq", grad(&q, &grads)),
        ("dk", grad(&k, &grads)),
        ("dfq", grad(&fq, &grads)),
        ("dfk", grad(&fk, &grads)),
        ("dv", grad(&v, &grads)),
        ("dfactors", grad(&factors, &grads)),
    ]
}

/// The same inputs on the plain CPU backend: the fused forward alone.
fn window_inference(t: usize, window: usize, padded: bool) -> Vec<f64> {
    use hedgehog_attention::window::{self, WindowInputs};
    let (b, h, d, f, dv) = (2, HEADS, 4, FEATURES, VALUE_DIM);
    let inputs = WindowInputs {
        q: randn::<F32, 4>([b, h, t, d], 1.0, 130),
        k: randn::<F32, 4>([b, h, t, d], 1.0, 131),
        fq: randn::<F32, 4>([b, h, t, f], 0.5, 132).exp(),
        fk: randn::<F32, 4>([b, h, t, f], 0.5, 133).exp(),
        v: randn::<F32, 4>([b, h, t, dv], 1.0, 134),
        factors: Tensor::from_floats([0.1, 0.45, 0.8], &Default::default()),
        key_padding: padded.then(|| padding::<F32>(t, t / 3)),
        eps: 1e-6,
    };
    values(&window::chunked_output(inputs, window, 16).unwrap())
}

#[test]
fn sliding_window_outputs_and_gradients_match_the_quadratic_reference() {
    for t in [1, 63, 100, 257] {
        // W = 1 (the window is the query's own key), W that divides nothing, LoLCATs' 64, and
        // W ≥ T (no linear part).
        for window in [1, 7, 64, 300] {
            for padded in [false, true] {
                let what = format!("window W={window} T={t} padded={padded}");
                let mut reference = window_case(t, window, padded, false);
                let mut fused = window_case(t, window, padded, true);
                if window >= t {
                    // No linear part: γ cancels but for ε, so its gradient is a sum of terms
                    // that cancel to ~ε, and both sides hold f32 rounding there, not a value.
                    reference.pop();
                    fused.pop();
                }
                assert_agree(&fused, &reference, &what);
                let inference = vec![("y", window_inference(t, window, padded))];
                assert_agree(
                    &inference,
                    &reference[..1].to_vec(),
                    &format!("{what}, inference"),
                );
            }
        }
    }
}
