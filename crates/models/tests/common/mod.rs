//! Fixture helpers for the model tests.
#![allow(dead_code)]

use std::path::PathBuf;

use burn::backend::{Autodiff, NdArray};
use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};
use hedgehog_attention::{AttentionConfig, FeatureMapConfig, HedgehogActivation};
use hedgehog_models::CausalLm;
use hedgehog_models::attention::LayerCache;
use serde_json::Value;

pub type B = NdArray<f32>;
pub type AdB = Autodiff<NdArray<f32>>;

pub fn fixture_dir(family: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(family)
}

/// `golden.json` of a fixture (written by `python3 tools/reference_models.py`).
pub fn golden(family: &str) -> Value {
    let path = fixture_dir(family).join("golden.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with `python3 tools/reference_models.py`",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap()
}

fn shape(golden: &Value, name: &str) -> Vec<usize> {
    golden[format!("{name}_shape")]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

pub fn floats(golden: &Value, name: &str) -> Vec<f64> {
    golden[name]
        .as_array()
        .unwrap_or_else(|| panic!("no `{name}`"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

pub fn float_tensor<Bk: Backend, const D: usize>(golden: &Value, name: &str) -> Tensor<Bk, D> {
    let data =
        TensorData::new(floats(golden, name), shape(golden, name)).convert::<Bk::FloatElem>();
    Tensor::from_data(data, &Default::default())
}

pub fn int_tensor<Bk: Backend>(golden: &Value, name: &str) -> Tensor<Bk, 2, Int> {
    let values: Vec<i64> = golden[name]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    Tensor::from_data(
        TensorData::new(values, shape(golden, name)).convert::<Bk::IntElem>(),
        &Default::default(),
    )
}

/// HF attention mask (1 = token) as a bool tensor (true = token).
pub fn mask_tensor<Bk: Backend>(golden: &Value, name: &str) -> Tensor<Bk, 2, Bool> {
    int_tensor::<Bk>(golden, name).equal_elem(1)
}

pub fn values<Bk: Backend, const D: usize>(t: &Tensor<Bk, D>) -> Vec<f64> {
    t.to_data().convert::<f64>().to_vec::<f64>().unwrap()
}

/// `max |a − b|` must stay below `tolerance`.
#[track_caller]
pub fn assert_max_diff(got: &[f64], expected: &[f64], tolerance: f64, what: &str) {
    assert_eq!(got.len(), expected.len(), "{what}: length");
    let (index, diff) = got
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .enumerate()
        .fold((0, 0.0), |best, (i, d)| {
            if d > best.1 || d.is_nan() {
                (i, d)
            } else {
                best
            }
        });
    assert!(
        diff <= tolerance,
        "{what}: max |diff| {diff:.3e} at {index} ({} vs {}) exceeds {tolerance:e}",
        got[index],
        expected[index]
    );
}

/// Hedgehog attention with a short chunk, so that tiny fixtures cross chunk boundaries.
pub fn hedgehog(feature_dim: usize) -> AttentionConfig {
    AttentionConfig::Linear {
        feature_map: FeatureMapConfig::Hedgehog {
            activation: HedgehogActivation::SoftmaxSplit,
            feature_dim,
            per_head: true,
        },
        tie_query_key: false,
        chunk_size: 5,
        eps: 1e-6,
        window: 0,
        window_factor: hedgehog_attention::attention::DEFAULT_WINDOW_FACTOR,
    }
}

pub fn tokens(ids: &[i64], batch: usize) -> Tensor<B, 2, Int> {
    let t = ids.len() / batch;
    Tensor::from_data(
        TensorData::new(ids.to_vec(), [batch, t]),
        &Default::default(),
    )
}

/// Runs `model` token by token through its caches and stacks the logits.
pub fn decode_stepwise<Bk: Backend, M: CausalLm<Bk>>(
    model: &M,
    ids: &Tensor<Bk, 2, Int>,
    prefix: usize,
) -> Tensor<Bk, 3> {
    let [b, t] = ids.dims();
    let caches = vec![LayerCache::Empty; model.num_layers()];
    let (first, mut caches) = model
        .forward_cached(ids.clone().slice([0..b, 0..prefix]), caches, 0)
        .unwrap();
    let mut outputs = vec![first];
    for i in prefix..t {
        let (logits, next) = model
            .forward_cached(ids.clone().slice([0..b, i..i + 1]), caches, i)
            .unwrap();
        outputs.push(logits);
        caches = next;
    }
    Tensor::cat(outputs, 1)
}

/// Every parameter (window factors' logits included) moved off its init by `N(0, 0.05²)` noise,
/// so a save/load round trip proves something.
pub fn perturb_params<M: burn::module::Module<B>>(model: M) -> M {
    struct Perturb;
    impl burn::module::ModuleMapper<B> for Perturb {
        fn map_float<const D: usize>(
            &mut self,
            param: burn::module::Param<Tensor<B, D>>,
        ) -> burn::module::Param<Tensor<B, D>> {
            let (id, tensor, mapper) = param.consume();
            let noise = tensor.random_like(burn::tensor::Distribution::Normal(0.0, 0.05));
            burn::module::Param::from_mapped_value(id, tensor + noise, mapper)
        }
    }
    model.map(&mut Perturb)
}
