//! Every feature map and form on a second backend against the CPU backend (burn-ndarray, whose
//! fused kernels the other tests check against the composed references) on the same inputs, in
//! float32: outputs and the gradients of q, k, v and every parameter of the layer.
//!
//! The second backend is burn-flex, or CUDA when the test is built with `--features cuda` and
//! run with `HEDGEHOG_AGREEMENT_BACKEND=cuda` (`tools/gpu_check.sh` does both). Each case
//! prints its worst closeness ratio (≤ 1 passes), so a run on a GPU is also its report.

mod common;

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use common::*;
use hedgehog_attention::{LinearAttention, linear, softmax};

const B: usize = 2;
const H: usize = 3;
const D: usize = 8;
const DV: usize = 5;
const SIZES: [usize; 4] = [1, 63, 100, 257];
const WINDOW: usize = 16;
/// f32 on both sides, different summation orders: `|a − b| ≤ ATOL·max(1, max|b|) + RTOL·|b|`.
const RTOL: f64 = 1e-3;
const ATOL: f64 = 1e-4;

/// One form's output and gradients, in a fixed order, as plain numbers.
struct Case {
    label: String,
    values: Vec<(&'static str, Vec<f64>)>,
}

/// The gradients of every float parameter of a module, in visiting order.
struct ParamGrads<'a, Bk: AutodiffBackend> {
    grads: &'a Bk::Gradients,
    out: Vec<Vec<f64>>,
}

impl<Bk: AutodiffBackend> ModuleVisitor<Bk> for ParamGrads<'_, Bk> {
    fn visit_float<const N: usize>(&mut self, param: &Param<Tensor<Bk, N>>) {
        let grad = param.val().grad(self.grads);
        self.out.push(grad.map(|g| values(&g)).unwrap_or_default());
    }
}

/// Runs `form` on seeded inputs, then backpropagates `Σ y ⊙ r` for a seeded `r`.
fn case<Bk: AutodiffBackend>(
    label: String,
    t: usize,
    layer: Option<&LinearAttention<Bk>>,
    form: impl Fn(Tensor<Bk, 4>, Tensor<Bk, 4>, Tensor<Bk, 4>) -> Tensor<Bk, 4>,
) -> Case {
    let q = randn::<Bk, 4>([B, H, t, D], 0.7, 1).require_grad();
    let k = randn::<Bk, 4>([B, H, t, D], 0.7, 2).require_grad();
    let v = randn::<Bk, 4>([B, H, t, DV], 1.0, 3).require_grad();
    let y = form(q.clone(), k.clone(), v.clone());
    let r = randn::<Bk, 4>(y.dims(), 1.0, 4);
    let grads = (y.clone() * r).sum().backward();
    let mut values_out = vec![("output", values(&y))];
    for (name, x) in [("dq", &q), ("dk", &k), ("dv", &v)] {
        values_out.push((name, x.grad(&grads).map(|g| values(&g)).unwrap_or_default()));
    }
    if let Some(layer) = layer {
        let mut visitor = ParamGrads::<Bk> {
            grads: &grads,
            out: Vec::new(),
        };
        layer.visit(&mut visitor);
        values_out.extend(visitor.out.into_iter().map(|g| ("dparam", g)));
    }
    Case {
        label,
        values: values_out,
    }
}

/// Every map in every form (parallel, chunked, quadratic weights, recurrent, sliding window
/// chunked and quadratic), then softmax, at `t` tokens.
fn cases<Bk: AutodiffBackend>(t: usize) -> Vec<Case> {
    let mut out = Vec::new();
    for config in maps_for(t) {
        let name = config.label();
        let plain = linear_attention::<Bk>(&config, D, H, 11);
        let windowed = linear_attention::<Bk>(&config, D, H, 11)
            .with_window(WINDOW, 0.1, H, &Default::default())
            .unwrap();
        let layer = &plain;
        out.push(case(
            format!("{name} parallel T={t}"),
            t,
            Some(layer),
            |q, k, v| layer.forward(q, k, v, false, None).unwrap(),
        ));
        out.push(case(
            format!("{name} chunked T={t}"),
            t,
            Some(layer),
            |q, k, v| layer.forward(q, k, v, true, None).unwrap(),
        ));
        out.push(case(
            format!("{name} weights T={t}"),
            t,
            Some(layer),
            |q, k, _| layer.weights(q, k, true, None).unwrap(),
        ));
        out.push(case(
            format!("{name} recurrent T={t}"),
            t,
            Some(layer),
            |q, k, v| {
                let (fq, fk) = layer.features(q, k, 0).unwrap();
                linear::recurrent(fq, fk, v, None, None, layer.eps)
                    .unwrap()
                    .0
            },
        ));
        let layer = &windowed;
        out.push(case(
            format!("{name} window chunked T={t}"),
            t,
            Some(layer),
            |q, k, v| layer.forward(q, k, v, true, None).unwrap(),
        ));
        out.push(case(
            format!("{name} window weights T={t}"),
            t,
            Some(layer),
            |q, k, _| layer.weights(q, k, true, None).unwrap(),
        ));
    }
    for causal in [false, true] {
        out.push(case::<Bk>(
            format!("softmax causal={causal} T={t}"),
            t,
            None,
            |q, k, v| softmax::output(q, k, v, causal, None, 0.0).unwrap(),
        ));
        out.push(case::<Bk>(
            format!("softmax weights causal={causal} T={t}"),
            t,
            None,
            |q, k, _| softmax::weights(q, k, causal, None).unwrap(),
        ));
    }
    out
}

/// The worst closeness ratio over a case's values (≤ 1 passes), and what it was on.
fn compare(ours: &Case, reference: &Case) -> (f64, &'static str) {
    assert_eq!(ours.label, reference.label);
    let mut worst = (0.0, "");
    for ((name, a), (_, b)) in ours.values.iter().zip(&reference.values) {
        assert_eq!(
            a.len(),
            b.len(),
            "{}: {name} has a different size",
            ours.label
        );
        // Every form reads q: an empty output or dq means nothing was compared.
        if matches!(*name, "output" | "dq") {
            assert!(!b.is_empty(), "{}: no {name} to compare", ours.label);
        }
        assert!(
            b.iter().all(|x| x.is_finite()),
            "{}: the CPU reference's {name} is not finite",
            ours.label
        );
        if a.iter().any(|x| !x.is_finite()) {
            return (f64::INFINITY, name);
        }
        // At least 1: some gradients are 0 in exact arithmetic (dq and dk at T = 1), rounding noise.
        let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
        let ratio = closeness(a, b, RTOL, ATOL * scale);
        if ratio > worst.0 {
            worst = (ratio, name);
        }
    }
    worst
}

/// Size by size, so that a run cut short still reports the sizes it finished.
fn agree_with_cpu<Target: AutodiffBackend>(backend: &str) {
    let mut failures = Vec::new();
    let mut count = 0;
    println!(
        "backend agreement: {backend} against ndarray f32, rtol {RTOL:e}, atol {ATOL:e}·max(1, max|ref|)"
    );
    for t in SIZES {
        let reference = cases::<AdF32>(t);
        let started = std::time::Instant::now();
        let ours = cases::<Target>(t);
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(ours.len(), reference.len());
        for (a, b) in ours.iter().zip(&reference) {
            let (ratio, on) = compare(a, b);
            let verdict = if ratio <= 1.0 { "ok" } else { "FAIL" };
            println!("{verdict:4} {ratio:9.3e} {:<44} (worst on {on})", a.label);
            if ratio > 1.0 {
                failures.push(format!("{} ({on}: {ratio:.3e})", a.label));
            }
        }
        count += ours.len();
        println!("T={t}: {} cases on {backend} in {seconds:.1} s", ours.len());
    }
    println!("{count} cases, {} disagree", failures.len());
    assert!(
        failures.is_empty(),
        "{backend} disagrees with the CPU backend: {failures:?}"
    );
}

#[test]
fn every_form_agrees_with_the_cpu_backend() {
    match std::env::var("HEDGEHOG_AGREEMENT_BACKEND").as_deref() {
        #[cfg(feature = "cuda")]
        Ok("cuda") => agree_with_cpu::<burn::backend::Autodiff<burn::backend::Cuda>>("cuda"),
        Ok("flex") | Err(_) => {
            agree_with_cpu::<burn::backend::Autodiff<burn::backend::Flex>>("flex")
        }
        Ok(other) => panic!(
            "HEDGEHOG_AGREEMENT_BACKEND={other}: expected flex, or cuda in a build with --features cuda"
        ),
    }
}
