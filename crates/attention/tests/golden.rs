//! Golden values from the independent numpy reference `tools/reference_attention.py`
//! (regenerate with `python3 tools/reference_attention.py`): every map's features, every form's
//! outputs and final state, softmax, and the distillation losses, in float64.

mod common;

use burn::tensor::{Tensor, TensorData};
use common::*;
use hedgehog_attention::distill::{self, RowLoss};
use hedgehog_attention::feature_map::{Hedgehog, Performer, T2r};
use hedgehog_attention::linear::{self, DEFAULT_EPS};
use hedgehog_attention::{FeatureMap, FeatureMapConfig, LinearAttention, softmax};
use serde_json::Value;

const RTOL: f64 = 1e-9;
const ATOL: f64 = 1e-11;

struct Golden {
    json: Value,
    dims: [usize; 5], // B, H, T, d, dv
}

impl Golden {
    fn load() -> Self {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/golden.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            panic!("{path}: {e}; regenerate it with `python3 tools/reference_attention.py`")
        });
        let json: Value = serde_json::from_str(&text).expect("golden.json is valid JSON");
        let dim = |k: &str| json[k].as_u64().unwrap() as usize;
        let dims = [
            dim("batch"),
            dim("heads"),
            dim("seq_len"),
            dim("head_dim"),
            dim("value_dim"),
        ];
        Self { json, dims }
    }
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn tensor<const D: usize>(v: &Value, shape: [usize; D]) -> Tensor<F64, D> {
    Tensor::from_data(TensorData::new(floats(v), shape), &Default::default())
}

/// The map of a fixture entry, with its stored parameters.
fn attention_from(entry: &Value, heads: usize, head_dim: usize) -> LinearAttention<F64> {
    let config: FeatureMapConfig = serde_json::from_value(entry["config"].clone()).unwrap();
    let params = &entry["params"];
    let affine = |side: &str, out: usize| {
        let per_head =
            params[format!("{side}_weight")].as_array().unwrap().len() == heads * head_dim * out;
        let wh = if per_head { heads } else { 1 };
        (
            tensor(&params[format!("{side}_weight")], [wh, head_dim, out]),
            tensor(&params[format!("{side}_bias")], [wh, out]),
        )
    };
    match &config {
        FeatureMapConfig::Performer { num_features, .. } => {
            let projection = tensor(&params["projection"], [*num_features, head_dim]);
            LinearAttention::new(
                FeatureMap::Performer(Performer::from_projection(projection, false)),
                None,
                16,
                DEFAULT_EPS,
            )
        }
        FeatureMapConfig::Hedgehog {
            activation,
            feature_dim,
            ..
        } => {
            let map = |side| {
                let (w, b) = affine(side, *feature_dim);
                FeatureMap::Hedgehog(Hedgehog::from_tensors(w, b, *activation).unwrap())
            };
            LinearAttention::new(map("query"), Some(map("key")), 16, DEFAULT_EPS)
        }
        FeatureMapConfig::T2r { feature_dim, .. } => {
            let map = |side| {
                let (w, b) = affine(side, *feature_dim);
                FeatureMap::T2r(T2r::from_tensors(w, b).unwrap())
            };
            LinearAttention::new(map("query"), Some(map("key")), 16, DEFAULT_EPS)
        }
        other => {
            let map = other
                .init::<F64>(head_dim, heads, &Default::default())
                .unwrap();
            LinearAttention::new(map, None, 16, DEFAULT_EPS)
        }
    }
}

#[test]
fn every_map_and_form_matches_the_numpy_reference() {
    let golden = Golden::load();
    let [b, h, t, d, dv] = golden.dims;
    let q = tensor(&golden.json["q"], [b, h, t, d]);
    let k = tensor(&golden.json["k"], [b, h, t, d]);
    let v = tensor(&golden.json["v"], [b, h, t, dv]);
    let maps = golden.json["maps"].as_array().unwrap();
    assert_eq!(maps.len(), all_maps().len(), "the fixture covers every map");
    for entry in maps {
        let name = entry["name"].as_str().unwrap();
        let attention = attention_from(entry, h, d);
        let f = entry["feature_dim"].as_u64().unwrap() as usize;
        assert_eq!(attention.feature_dim(), f, "{name}: feature_dim");
        let (fq, fk) = attention.features(q.clone(), k.clone(), 0).unwrap();
        assert_close(
            &values(&fk),
            &floats(&entry["key_features"]),
            RTOL,
            ATOL,
            &format!("{name}: φ(k)"),
        );
        assert_close(
            &values(&fq),
            &floats(&entry["query_features"]),
            RTOL,
            ATOL,
            &format!("{name}: φ(q)"),
        );

        let causal = floats(&entry["causal_output"]);
        let noncausal = floats(&entry["noncausal_output"]);
        let check = |y: &Tensor<F64, 4>, expected: &[f64], form: &str| {
            assert_close(&values(y), expected, RTOL, ATOL, &format!("{name}: {form}"));
        };
        let (y, _) =
            linear::quadratic(fq.clone(), fk.clone(), v.clone(), true, None, DEFAULT_EPS).unwrap();
        check(&y, &causal, "quadratic causal");
        let (y, state) = linear::chunked(
            fq.clone(),
            fk.clone(),
            v.clone(),
            16,
            None,
            None,
            DEFAULT_EPS,
        )
        .unwrap();
        check(&y, &causal, "chunked causal");
        assert_close(
            &values(&state.s),
            &floats(&entry["state_s"]),
            RTOL,
            ATOL,
            &format!("{name}: chunked S"),
        );
        assert_close(
            &values(&state.z),
            &floats(&entry["state_z"]),
            RTOL,
            ATOL,
            &format!("{name}: chunked z"),
        );
        let (y, state) =
            linear::recurrent(fq.clone(), fk.clone(), v.clone(), None, None, DEFAULT_EPS).unwrap();
        check(&y, &causal, "recurrent causal");
        assert_close(
            &values(&state.s),
            &floats(&entry["state_s"]),
            RTOL,
            ATOL,
            &format!("{name}: recurrent S"),
        );
        let (y, _) =
            linear::quadratic(fq.clone(), fk.clone(), v.clone(), false, None, DEFAULT_EPS).unwrap();
        check(&y, &noncausal, "quadratic non-causal");
        let (y, state) = linear::parallel(fq, fk, v.clone(), None, DEFAULT_EPS).unwrap();
        check(&y, &noncausal, "parallel non-causal");
        assert_close(
            &values(&state.z),
            &floats(&entry["state_z"]),
            RTOL,
            ATOL,
            &format!("{name}: parallel z"),
        );
        check(
            &attention
                .forward(q.clone(), k.clone(), v.clone(), true, None)
                .unwrap(),
            &causal,
            "layer causal",
        );
    }
}

#[test]
fn softmax_and_distillation_losses_match_the_numpy_reference() {
    let golden = Golden::load();
    let [b, h, t, d, dv] = golden.dims;
    let q = tensor(&golden.json["q"], [b, h, t, d]);
    let k = tensor(&golden.json["k"], [b, h, t, d]);
    let v = tensor(&golden.json["v"], [b, h, t, dv]);
    let reference = &golden.json["softmax"];
    for (causal, tag) in [(true, "causal"), (false, "noncausal")] {
        let (y, weights) =
            softmax::attention(q.clone(), k.clone(), v.clone(), causal, None).unwrap();
        assert_close(
            &values(&y),
            &floats(&reference[format!("{tag}_output")]),
            RTOL,
            ATOL,
            &format!("softmax {tag} output"),
        );
        assert_close(
            &values(&weights),
            &floats(&reference[format!("{tag}_weights")]),
            RTOL,
            ATOL,
            &format!("softmax {tag} weights"),
        );
    }

    let distill_ref = &golden.json["distill"];
    let student_name = distill_ref["student"].as_str().unwrap();
    let entry = golden.json["maps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == student_name)
        .unwrap();
    let student = attention_from(entry, h, d)
        .weights(q.clone(), k.clone(), true, None)
        .unwrap();
    assert_close(
        &values(&student),
        &floats(&distill_ref["student_weights"]),
        RTOL,
        ATOL,
        "student weights",
    );
    let teacher = softmax::weights(q, k, true, None).unwrap();
    for (loss, key) in [
        (RowLoss::SoftCrossEntropy, "soft_cross_entropy"),
        (RowLoss::Kl, "kl"),
    ] {
        let got = distill::row_loss(teacher.clone(), student.clone(), loss, None).unwrap();
        assert_close(&values(&got), &floats(&distill_ref[key]), RTOL, ATOL, key);
    }
}
