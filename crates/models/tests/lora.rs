//! LoRA on q, k, v, o: attaching changes no output, the adapters act in every forward path
//! (softmax and linear layers, conversion mode, captures, cached decoding), training only the
//! adapters leaves the base bit-identical, and the merged model computes what the adapted one
//! did.

mod common;

use std::collections::BTreeSet;

use burn::backend::{Autodiff, NdArray};
use burn::module::{AutodiffModule, ModuleVisitor, Param, ParamId};
use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use common::*;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::bert::Bert;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::vit::Vit;
use hedgehog_models::{
    AttentionLayers, AttentionMode, LoraConfig, LoraTarget, ModelError, attach_lora,
    lora_param_ids, merge_lora,
};

/// Float64 throughout: merging reassociates `x W + (x A) B` as `x (W + A B)`, and the
/// fixtures' raw scores are dot products of vectors of norm ~10, so f32 rounding alone differs
/// by ~1e-5 there; in f64 the comparison checks the algebra. No test here may use f32: burn
/// 0.21 fixes a device's default float dtype at its first tensor, process-wide, and
/// `NdArray<f64>` tensors made after an `NdArray<f32>` one come out f32.
type F = NdArray<f64>;
type AdF = Autodiff<F>;

/// Every float parameter's id and values.
fn parameters<Bk: Backend, M: burn::module::Module<Bk>>(model: &M) -> Vec<(ParamId, Vec<f64>)> {
    struct Collect(Vec<(ParamId, Vec<f64>)>);
    impl<Bk: Backend> ModuleVisitor<Bk> for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<Bk, D>>) {
            self.0.push((param.id, values(&param.val())));
        }
    }
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

/// Adam on the adapters only: the other gradients are dropped before the step.
fn train_adapters<M: AutodiffModule<AdF> + AttentionLayers<AdF>>(
    mut model: M,
    loss: &impl Fn(&M) -> Tensor<AdF, 1>,
    steps: usize,
) -> M {
    let ids = lora_param_ids(&model);
    let mut optimizer = AdamConfig::new().init::<AdF, M>();
    for _ in 0..steps {
        let mut grads = loss(&model).backward();
        let grads = GradientsParams::from_params(&mut grads, &model, &ids);
        model = optimizer.step(2e-2, model, grads);
    }
    model
}

fn layers_with_adapters<Bk: Backend, M: AttentionLayers<Bk>>(model: &M) -> usize {
    model
        .attention_layers()
        .iter()
        .filter(|layer| layer.lora.is_some())
        .count()
}

/// Attach → train the adapters → merge, checking at each step; `run` evaluates every forward
/// path of the family and returns all outputs in one vector.
fn assert_lora_cycle<M>(
    name: &str,
    model: M,
    config: &LoraConfig,
    loss: impl Fn(&M) -> Tensor<AdF, 1>,
    run: impl Fn(&M::InnerModule) -> Vec<f64>,
) where
    M: AutodiffModule<AdF> + AttentionLayers<AdF>,
    M::InnerModule: AttentionLayers<F>,
{
    let device = Default::default();
    let layers = model.attention_layers().len();
    let before = run(&model.valid());

    let model = attach_lora(model, config, &device).unwrap();
    assert_eq!(
        layers_with_adapters(&model),
        layers,
        "{name}: every layer adapted"
    );
    assert_eq!(
        run(&model.valid()),
        before,
        "{name}: attaching (B = 0) changes no output"
    );

    // Gradients reach both factors. B gets one at once; A only once B ≠ 0 (its gradient is
    // proportional to B), which the training below checks by A moving.
    let grads = loss(&model).backward();
    let first = model.attention_layers()[0].lora.as_ref().unwrap();
    let adapter = LoraTarget::ALL
        .iter()
        .find_map(|&target| first.get(target))
        .unwrap();
    assert!(
        adapter.down.val().grad(&grads).is_some(),
        "{name}: grad of A"
    );
    let up = adapter.up.val().grad(&grads).expect("grad of B");
    assert!(
        values(&up).iter().any(|g| *g != 0.0),
        "{name}: B's grad ≠ 0"
    );

    let lora: BTreeSet<ParamId> = lora_param_ids(&model).into_iter().collect();
    let targets = LoraTarget::ALL
        .iter()
        .filter(|target| config.targets.contains(target))
        .count();
    assert_eq!(
        lora.len(),
        2 * targets * layers,
        "{name}: A and B per target"
    );
    let start = parameters(&model);
    let model = train_adapters(model, &loss, 3);
    for ((id, old), (new_id, new)) in start.iter().zip(parameters(&model)) {
        assert_eq!(*id, new_id, "{name}: parameter order");
        if lora.contains(id) {
            assert_ne!(*old, new, "{name}: adapter parameter {id} trained");
        } else {
            assert_eq!(*old, new, "{name}: base parameter {id} unchanged");
        }
    }

    // Merged on the autodiff backend, the weights are trainable leaves again.
    let merged = merge_lora(model.clone());
    let grads = loss(&merged).backward();
    let query = &merged.attention_layers()[0].query.weight;
    assert!(
        query.val().grad(&grads).is_some(),
        "{name}: merged weight trains"
    );

    let adapted = model.valid();
    let trained = run(&adapted);
    let moved = trained
        .iter()
        .zip(&before)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(
        moved > 1e-3,
        "{name}: training the adapters moved the outputs ({moved})"
    );
    let merged = merge_lora(adapted);
    assert_eq!(layers_with_adapters(&merged), 0, "{name}: merged away");
    assert_max_diff(
        &run(&merged),
        &trained,
        1e-5,
        &format!("{name}: merged = adapted"),
    );
}

/// Every tensor a forward can return, so that a path the adapters miss shows up as a difference.
fn flatten_captures(out: Vec<f64>, captures: &[hedgehog_models::AttentionCapture<F>]) -> Vec<f64> {
    let mut all = out;
    for capture in captures {
        all.extend(values(&capture.teacher));
        all.extend(values(&capture.scores));
        for t in capture.student.iter().chain(&capture.kernel) {
            all.extend(values(t));
        }
    }
    all
}

fn squares<const D: usize>(x: Tensor<AdF, D>) -> Tensor<AdF, 1> {
    x.powi_scalar(2).mean()
}

#[test]
fn gpt2_adapters_train_alone_and_merge_in_every_forward_path() {
    let golden = golden("gpt2");
    let device = Default::default();
    // A softmax and a linear layer: both branches of the layer see the adapters.
    let attention = vec![AttentionConfig::Softmax, hedgehog(6)];
    let model =
        Gpt2::<AdF>::from_pretrained(fixture_dir("gpt2"), Some(attention), &device).unwrap();
    let ids = int_tensor::<F>(&golden, "input_ids");
    let train_ids = int_tensor::<AdF>(&golden, "input_ids");
    assert_lora_cycle(
        "GPT-2",
        model,
        &LoraConfig::new(4, 8.0),
        |m: &Gpt2<AdF>| {
            let out = m.forward(train_ids.clone(), None, AttentionMode::Configured, false);
            squares(out.unwrap().output)
        },
        |m: &Gpt2<F>| {
            let configured = m
                .forward(ids.clone(), None, AttentionMode::Configured, true)
                .unwrap();
            let distill = m
                .forward(ids.clone(), None, AttentionMode::Distill, false)
                .unwrap();
            let mut all = flatten_captures(values(&configured.output), &configured.attention);
            all = flatten_captures(all, &distill.attention);
            all.extend(values(&distill.output));
            all.extend(values(&decode_stepwise(m, &ids, 5)));
            all
        },
    );
}

#[test]
fn llama_adapters_fit_grouped_key_value_projections() {
    let golden = golden("llama");
    let device = Default::default();
    let model =
        Llama::<AdF>::from_pretrained(fixture_dir("llama"), Some(vec![hedgehog(6)]), &device)
            .unwrap();
    // 6 query heads and 2 key/value heads of width 8 over a 48-wide model.
    let adapted = attach_lora(model.clone(), &LoraConfig::new(3, 6.0), &device).unwrap();
    let lora = adapted.layers[1].attention.lora.as_ref().unwrap();
    let shapes = |target| {
        let adapter = lora.get(target).unwrap();
        (adapter.down.dims(), adapter.up.dims(), adapter.scale)
    };
    assert_eq!(shapes(LoraTarget::Query), ([48, 3], [3, 48], 2.0));
    assert_eq!(shapes(LoraTarget::Key), ([48, 3], [3, 16], 2.0));
    assert_eq!(shapes(LoraTarget::Value), ([48, 3], [3, 16], 2.0));
    assert_eq!(shapes(LoraTarget::Output), ([48, 3], [3, 48], 2.0));

    let ids = int_tensor::<F>(&golden, "input_ids");
    let train_ids = int_tensor::<AdF>(&golden, "input_ids");
    assert_lora_cycle(
        "Llama",
        model,
        &LoraConfig::new(3, 6.0),
        |m: &Llama<AdF>| {
            let out = m.forward(train_ids.clone(), None, AttentionMode::Configured, false);
            squares(out.unwrap().output)
        },
        |m: &Llama<F>| {
            let out = m
                .forward(ids.clone(), None, AttentionMode::Distill, true)
                .unwrap();
            let mut all = flatten_captures(values(&out.output), &out.attention);
            let configured = m.forward(ids.clone(), None, AttentionMode::Configured, false);
            all.extend(values(&configured.unwrap().output));
            all.extend(values(&decode_stepwise(m, &ids, 4)));
            all
        },
    );
}

#[test]
fn bert_adapters_train_alone_and_merge() {
    let golden = golden("bert");
    let device = Default::default();
    let model = Bert::<AdF>::from_pretrained(fixture_dir("bert"), None, &device).unwrap();
    let encode = |m: &Bert<F>, mode: AttentionMode, capture: bool| {
        m.encode(
            int_tensor(&golden, "input_ids"),
            Some(int_tensor(&golden, "token_type_ids")),
            Some(mask_tensor(&golden, "attention_mask")),
            mode,
            capture,
        )
        .unwrap()
    };
    assert_lora_cycle(
        "BERT",
        model,
        &LoraConfig::new(2, 4.0).with_targets(vec![LoraTarget::Query, LoraTarget::Value]),
        |m: &Bert<AdF>| {
            let out = m
                .encode(
                    int_tensor(&golden, "input_ids"),
                    Some(int_tensor(&golden, "token_type_ids")),
                    Some(mask_tensor(&golden, "attention_mask")),
                    AttentionMode::Configured,
                    false,
                )
                .unwrap();
            squares(m.classify(&out).unwrap())
        },
        |m: &Bert<F>| {
            let out = encode(m, AttentionMode::Configured, true);
            let mut all = values(&m.classify(&out).unwrap());
            all.extend(values(&out.last_hidden_state));
            flatten_captures(all, &out.attention)
        },
    );
}

#[test]
fn vit_adapters_train_alone_and_merge() {
    let golden = golden("vit");
    let device = Default::default();
    let model =
        Vit::<AdF>::from_pretrained(fixture_dir("vit"), Some(vec![hedgehog(4)]), &device).unwrap();
    assert_lora_cycle(
        "ViT",
        model,
        &LoraConfig::new(4, 4.0),
        |m: &Vit<AdF>| {
            let out = m.forward(
                float_tensor(&golden, "pixel_values"),
                AttentionMode::Configured,
                false,
            );
            squares(out.unwrap().logits.unwrap())
        },
        |m: &Vit<F>| {
            let out = m
                .forward(
                    float_tensor(&golden, "pixel_values"),
                    AttentionMode::Configured,
                    true,
                )
                .unwrap();
            flatten_captures(values(&out.logits.unwrap()), &out.attention)
        },
    );
}

#[test]
fn only_the_listed_projections_are_adapted() {
    let device = Default::default();
    let model = Gpt2::<F>::from_pretrained(fixture_dir("gpt2"), None, &device).unwrap();
    let config = LoraConfig::new(2, 2.0).with_targets(vec![LoraTarget::Key, LoraTarget::Output]);
    let model = attach_lora(model, &config, &device).unwrap();
    for layer in model.attention_layers() {
        let lora = layer.lora.as_ref().unwrap();
        assert!(lora.query.is_none() && lora.value.is_none());
        assert!(lora.key.is_some() && lora.output.is_some());
    }
    assert_eq!(
        lora_param_ids(&model).len(),
        2 * 2 * 2,
        "A, B × 2 targets × 2 layers"
    );
}

#[test]
fn lora_configs_parse_with_defaults_and_reject_typos() {
    let config: LoraConfig = serde_json::from_str(r#"{"rank": 8, "alpha": 16}"#).unwrap();
    assert_eq!(config, LoraConfig::new(8, 16.0));
    assert_eq!(config.targets, LoraTarget::ALL.to_vec());
    assert_eq!(config.scale(), 2.0);
    let config: LoraConfig =
        serde_json::from_str(r#"{"rank": 4, "alpha": 4, "targets": ["query", "value"]}"#).unwrap();
    assert_eq!(config.targets, vec![LoraTarget::Query, LoraTarget::Value]);
    let err = serde_json::from_str::<LoraConfig>(r#"{"rank": 4, "alpha": 4, "dropout": 0.1}"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `dropout`"), "{err}");
    let err = serde_json::from_str::<LoraConfig>(r#"{"rank": 4, "alpha": 4, "targets": ["q"]}"#)
        .unwrap_err();
    assert!(err.to_string().contains("unknown variant `q`"), "{err}");
}

#[test]
fn bad_lora_configs_and_unmerged_saves_are_clear_errors() {
    let device = Default::default();
    let model = Llama::<F>::from_pretrained(fixture_dir("llama"), None, &device).unwrap();
    let cases = [
        (LoraConfig::new(0, 8.0), "LoRA rank must be at least 1"),
        (LoraConfig::new(4, f64::NAN), "LoRA alpha must be finite"),
        (
            LoraConfig::new(4, 0.0),
            "LoRA alpha must be finite and positive",
        ),
        (
            LoraConfig::new(4, 8.0).with_targets(Vec::new()),
            "LoRA targets are empty",
        ),
    ];
    for (config, message) in cases {
        let err = attach_lora(model.clone(), &config, &device).unwrap_err();
        assert!(
            matches!(&err, ModelError::Config(m) if m.contains(message)),
            "{err}"
        );
        let layer = model.layers[0].attention.clone();
        let err = layer.attach_lora(&config, &device).unwrap_err();
        assert!(err.to_string().contains(message), "{err}");
    }

    let adapted = attach_lora(model, &LoraConfig::new(2, 2.0), &device).unwrap();
    let err = attach_lora(adapted.clone(), &LoraConfig::new(2, 2.0), &device).unwrap_err();
    assert!(
        err.to_string().contains("already has LoRA adapters"),
        "{err}"
    );

    // A checkpoint has no place for adapters: saving refuses instead of dropping them.
    let dir = std::env::temp_dir().join(format!("hedgehog-lora-{}", std::process::id()));
    let err = hedgehog_models::checkpoint::save(&adapted, &dir).unwrap_err();
    assert!(
        err.to_string().contains("call merge_lora before saving"),
        "{err}"
    );
    assert!(!dir.join("model.safetensors").exists());

    // Merged, it saves and loads back bit-identically.
    let merged = merge_lora(adapted);
    hedgehog_models::checkpoint::save(&merged, &dir).unwrap();
    let loaded = Llama::<F>::from_pretrained(&dir, None, &device).unwrap();
    let ids = int_tensor::<F>(&golden("llama"), "input_ids");
    let run = |m: &Llama<F>| {
        let out = m.forward(ids.clone(), None, AttentionMode::Configured, false);
        values(&out.unwrap().output)
    };
    assert_eq!(run(&loaded), run(&merged));
    std::fs::remove_dir_all(&dir).ok();
}
