//! Shared helpers for the attention tests: backends, seeded tensors, closeness checks.
#![allow(dead_code)]

use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData, backend::Backend};
use hedgehog_attention::FeatureMapConfig;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, Normal};

pub type F64 = NdArray<f64>;
pub type F32 = NdArray<f32>;
pub type AdF64 = Autodiff<NdArray<f64>>;
pub type AdF32 = Autodiff<NdArray<f32>>;

/// A tensor of `N(0, std²)` draws from `seed`, the same on every backend.
pub fn randn<B: Backend, const D: usize>(shape: [usize; D], std: f64, seed: u64) -> Tensor<B, D> {
    let mut rng = StdRng::seed_from_u64(seed);
    let normal = Normal::new(0.0, std).unwrap();
    let n: usize = shape.iter().product();
    let values: Vec<f64> = (0..n).map(|_| normal.sample(&mut rng)).collect();
    Tensor::from_data(
        TensorData::new(values, shape).convert::<B::FloatElem>(),
        &Default::default(),
    )
}

pub fn values<B: Backend, const D: usize>(t: &Tensor<B, D>) -> Vec<f64> {
    t.to_data().convert::<f64>().to_vec::<f64>().unwrap()
}

/// Largest `|a − b| / (atol + rtol·|b|)`; ≤ 1 means close.
pub fn closeness(a: &[f64], b: &[f64], rtol: f64, atol: f64) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / (atol + rtol * y.abs()))
        .fold(0.0, f64::max)
}

#[track_caller]
pub fn assert_close(a: &[f64], b: &[f64], rtol: f64, atol: f64, what: &str) {
    assert!(a.iter().all(|x| x.is_finite()), "{what}: non-finite values");
    let worst = closeness(a, b, rtol, atol);
    if worst > 1.0 {
        let (i, _) = a
            .iter()
            .zip(b)
            .enumerate()
            .map(|(i, (x, y))| (i, (x - y).abs() / (atol + rtol * y.abs())))
            .fold((0, 0.0), |acc, c| if c.1 > acc.1 { c } else { acc });
        panic!(
            "{what}: not close (worst ratio {worst:.3e} at index {i}: {} vs {}; rtol {rtol:e}, atol {atol:e})",
            a[i], b[i]
        );
    }
}

#[track_caller]
pub fn assert_tensors_close<B: Backend, const D: usize>(
    a: &Tensor<B, D>,
    b: &Tensor<B, D>,
    rtol: f64,
    atol: f64,
    what: &str,
) {
    assert_eq!(a.dims(), b.dims(), "{what}: shapes differ");
    assert_close(&values(a), &values(b), rtol, atol, what);
}

/// Every registered feature map (method.md §2), at the sizes each map's file gives in its
/// `MapSettings::examples`, small enough for quadratic references.
pub fn all_maps() -> Vec<FeatureMapConfig> {
    FeatureMapConfig::examples()
}

/// Every registered map, cosFormer's `M` raised to cover `t` tokens.
pub fn maps_for(t: usize) -> Vec<FeatureMapConfig> {
    all_maps()
        .into_iter()
        .map(|config| match config {
            FeatureMapConfig::Cosformer { max_len } => FeatureMapConfig::Cosformer {
                max_len: max_len.max(t),
            },
            other => other,
        })
        .collect()
}

/// The linear attention of `config` with trainable maps moved off their identity init, so that
/// the tests exercise general weights.
pub fn linear_attention<B: Backend>(
    config: &FeatureMapConfig,
    head_dim: usize,
    heads: usize,
    seed: u64,
) -> hedgehog_attention::LinearAttention<B> {
    use hedgehog_attention::FeatureMap;
    let device = Default::default();
    let attention = hedgehog_attention::AttentionConfig::linear(config.clone())
        .init_linear::<B>(head_dim, heads, &device)
        .unwrap()
        .unwrap();
    let perturb = |map: FeatureMap<B>, seed: u64| -> FeatureMap<B> {
        let perturb_affine = |affine: hedgehog_attention::feature_map::HeadAffine<B>| {
            let weight = affine.weight.val();
            let bias = affine.bias.val();
            let [wh, d, out] = weight.dims();
            let weight = weight + randn::<B, 3>([wh, d, out], 0.3, seed);
            let bias = bias.reshape([wh, out]) + randn::<B, 2>([wh, out], 0.1, seed + 1);
            (weight, bias)
        };
        match map {
            FeatureMap::Hedgehog(m) => {
                let activation = m.activation;
                let (w, b) = perturb_affine(m.affine);
                FeatureMap::Hedgehog(
                    hedgehog_attention::feature_map::Hedgehog::from_tensors(w, b, activation)
                        .unwrap(),
                )
            }
            FeatureMap::T2r(m) => {
                let (w, b) = perturb_affine(m.affine);
                FeatureMap::T2r(hedgehog_attention::feature_map::T2r::from_tensors(w, b).unwrap())
            }
            other => other,
        }
    };
    hedgehog_attention::LinearAttention::new(
        perturb(attention.query_map, seed),
        attention.key_map.map(|m| perturb(m, seed + 100)),
        attention.chunk_size,
        attention.eps,
    )
}
