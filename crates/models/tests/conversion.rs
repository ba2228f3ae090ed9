//! Converted models: pluggable attention per layer, conversion mode, decoding with recurrent
//! state equal to the full pass, and save/load round trips.

mod common;

use burn::module::Module;
use common::*;
use hedgehog_attention::{AttentionConfig, FeatureMapConfig};
use hedgehog_models::bert::Bert;
use hedgehog_models::checkpoint::{self, Checkpoint};
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::vit::Vit;
use hedgehog_models::{AttentionMode, ModelError};

#[test]
fn decoders_decode_token_by_token_like_the_full_pass() {
    let golden_gpt2 = golden("gpt2");
    let golden_llama = golden("llama");
    let attentions = [
        ("softmax", AttentionConfig::Softmax),
        ("hedgehog", hedgehog(6)),
        (
            "cosformer",
            AttentionConfig::linear(FeatureMapConfig::Cosformer { max_len: 64 }),
        ),
        (
            "taylor",
            AttentionConfig::linear(FeatureMapConfig::Taylor { compressed: true }),
        ),
    ];
    for (name, attention) in attentions {
        let gpt2 = Gpt2::<B>::from_pretrained(
            fixture_dir("gpt2"),
            Some(vec![attention.clone()]),
            &Default::default(),
        )
        .unwrap();
        let ids = int_tensor::<B>(&golden_gpt2, "input_ids");
        let full = gpt2
            .forward(ids.clone(), None, AttentionMode::Configured, false)
            .unwrap()
            .output;
        let stepwise = decode_stepwise(&gpt2, &ids, 6);
        assert_max_diff(
            &values(&stepwise),
            &values(&full),
            1e-4,
            &format!("GPT-2 {name}: stepwise vs full"),
        );

        let llama = Llama::<B>::from_pretrained(
            fixture_dir("llama"),
            Some(vec![attention]),
            &Default::default(),
        )
        .unwrap();
        let ids = int_tensor::<B>(&golden_llama, "input_ids");
        let full = llama
            .forward(ids.clone(), None, AttentionMode::Configured, false)
            .unwrap()
            .output;
        let stepwise = decode_stepwise(&llama, &ids, 7);
        assert_max_diff(
            &values(&stepwise),
            &values(&full),
            1e-4,
            &format!("Llama {name}: stepwise vs full"),
        );
    }
}

#[test]
fn attention_is_chosen_per_layer_and_conversion_mode_returns_both_weight_sets() {
    let golden = golden("gpt2");
    let ids = int_tensor::<B>(&golden, "input_ids");
    let mixed = vec![AttentionConfig::Softmax, hedgehog(8)];
    let model =
        Gpt2::<B>::from_pretrained(fixture_dir("gpt2"), Some(mixed), &Default::default()).unwrap();
    assert!(model.blocks[0].attn.linear.is_none());
    assert!(model.blocks[1].attn.linear.is_some());

    // In conversion mode every layer runs the softmax teacher: the logits are the softmax model's.
    let distil = model
        .forward(ids.clone(), None, AttentionMode::Distill, false)
        .unwrap();
    assert_max_diff(
        &values(&distil.output),
        &floats(&golden, "logits"),
        1e-4,
        "conversion mode = teacher",
    );
    assert_eq!(distil.attention.len(), 2, "one capture per layer");
    let [b, t] = ids.dims();
    for (layer, capture) in distil.attention.iter().enumerate() {
        assert_eq!(capture.teacher.dims(), [b, 4, t, t]);
        assert_eq!(capture.scores.dims(), [b, 4, t, t]);
        let sums = values(&capture.teacher.clone().sum_dim(3));
        assert!(
            sums.iter().all(|s| (s - 1.0).abs() < 1e-5),
            "layer {layer}: teacher rows sum to 1"
        );
        assert_eq!(
            capture.student.is_some(),
            layer == 1,
            "student weights only for the linear layer"
        );
    }
    let student = distil.attention[1].student.clone().unwrap();
    let upper = values(&student.clone().triu(1).abs().sum());
    assert_eq!(upper[0], 0.0, "student weights are causal");

    // The configured forward uses the linear layer and differs from the teacher.
    let converted = model
        .forward(ids, None, AttentionMode::Configured, false)
        .unwrap();
    let diff: f64 = values(&converted.output)
        .iter()
        .zip(floats(&golden, "logits"))
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(diff > 1e-3, "the linear layer changes the output ({diff})");
}

#[test]
fn distill_mode_gives_gradients_to_the_feature_maps_only() {
    use hedgehog_attention::distill::{self, Reduction, RowLoss};
    let golden = golden("llama");
    let model = Llama::<AdB>::from_pretrained(
        fixture_dir("llama"),
        Some(vec![hedgehog(8)]),
        &Default::default(),
    )
    .unwrap();
    let ids = int_tensor::<AdB>(&golden, "input_ids");
    let out = model
        .forward(ids, None, AttentionMode::Distill, false)
        .unwrap();
    assert!(
        out.attention
            .iter()
            .all(|c| c.kernel.as_ref().is_some_and(|k| !k.is_require_grad())),
        "the captured kernel is detached"
    );
    let pairs = out
        .attention
        .into_iter()
        .map(|c| (c.teacher, c.student.unwrap()))
        .collect();
    let (loss, table) =
        distill::layerwise_loss(pairs, RowLoss::SoftCrossEntropy, Reduction::Mean, None).unwrap();
    assert_eq!(table.dims(), [2, 6], "[layers, heads]");
    let grads = loss.backward();
    let layer = &model.layers[0].attention;
    let linear = layer.linear.as_ref().unwrap();
    let hedgehog_attention::FeatureMap::Hedgehog(map) = &linear.query_map else {
        panic!("hedgehog")
    };
    let grad = map
        .affine
        .weight
        .val()
        .grad(&grads)
        .expect("the feature map gets a gradient");
    assert!(values(&grad).iter().any(|g| *g != 0.0));
    assert!(
        layer.query.weight.val().grad(&grads).is_none(),
        "the frozen base gets none"
    );
}

/// Converts the `family` fixture to `attention`, applies `prepare`, perturbs the weights, saves
/// it, loads it back and compares `run` on both, bit for bit.
fn assert_round_trip<M: Checkpoint<B> + Module<B>>(
    family: &str,
    display: &str,
    attention: &[AttentionConfig],
    dir: &std::path::Path,
    prepare: impl FnOnce(M) -> M,
    run: impl Fn(&M) -> Vec<f64>,
) {
    let device = Default::default();
    let model: M = perturb_params(prepare(
        checkpoint::load(&fixture_dir(family), Some(attention.to_vec()), &device).unwrap(),
    ));
    checkpoint::save(&model, dir.join(family)).unwrap();
    let loaded: M = checkpoint::load(&dir.join(family), None, &device).unwrap();
    assert_eq!(
        run(&model),
        run(&loaded),
        "{display} round trip is bit-identical"
    );
}

#[test]
fn converted_models_save_and_load_bit_identically() {
    let dir = std::env::temp_dir().join(format!("hedgehog-roundtrip-{}", std::process::id()));
    let attention = vec![
        hedgehog(6),
        AttentionConfig::linear(FeatureMapConfig::Performer {
            num_features: 16,
            seed: 3,
            stabilize_queries: false,
        }),
    ];
    let gpt2_ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    assert_round_trip::<Gpt2<B>>(
        "gpt2",
        "GPT-2",
        &attention,
        &dir,
        |m| m,
        |m| {
            let out = m.forward(gpt2_ids.clone(), None, AttentionMode::Configured, false);
            values(&out.unwrap().output)
        },
    );
    let llama_ids = int_tensor::<B>(&golden("llama"), "input_ids");
    assert_round_trip::<Llama<B>>(
        "llama",
        "Llama",
        &attention,
        &dir,
        |m| m,
        |m| {
            let out = m.forward(llama_ids.clone(), None, AttentionMode::Configured, false);
            values(&out.unwrap().output)
        },
    );
    let golden_bert = golden("bert");
    assert_round_trip::<Bert<B>>(
        "bert",
        "BERT",
        &attention,
        &dir,
        |m| m,
        |m| {
            let out = m
                .encode(
                    int_tensor(&golden_bert, "input_ids"),
                    Some(int_tensor(&golden_bert, "token_type_ids")),
                    None,
                    AttentionMode::Configured,
                    false,
                )
                .unwrap();
            values(&m.classify(&out).unwrap())
        },
    );
    let golden_vit = golden("vit");
    assert_round_trip::<Vit<B>>(
        "vit",
        "ViT",
        &attention,
        &dir,
        |m| m,
        |m| {
            let out = m.forward(
                float_tensor(&golden_vit, "pixel_values"),
                AttentionMode::Configured,
                false,
            );
            values(&out.unwrap().logits.unwrap())
        },
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Every registered feature map's tensors are named in the checkpoint: a map added to the
/// registry whose weights were not saved would load fresh and fail here.
#[test]
fn every_registered_feature_map_saves_and_loads_bit_identically() {
    let dir = std::env::temp_dir().join(format!("hedgehog-maps-{}", std::process::id()));
    let ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    for map in FeatureMapConfig::examples() {
        assert_round_trip::<Gpt2<B>>(
            "gpt2",
            &format!("GPT-2 with {}", map.label()),
            &[AttentionConfig::linear(map.clone())],
            &dir,
            |m| m,
            |m| {
                let out = m.forward(ids.clone(), None, AttentionMode::Configured, false);
                values(&out.unwrap().output)
            },
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn fresh_classification_heads_save_and_load_with_the_model() {
    let dir = std::env::temp_dir().join(format!("hedgehog-heads-{}", std::process::id()));
    let device = Default::default();
    let attention = [hedgehog(6)];
    let golden_bert = golden("bert");
    let encode = |m: &Bert<B>| {
        m.encode(
            int_tensor(&golden_bert, "input_ids"),
            Some(int_tensor(&golden_bert, "token_type_ids")),
            Some(mask_tensor(&golden_bert, "attention_mask")),
            AttentionMode::Configured,
            false,
        )
        .unwrap()
    };
    // The fixture's 3-way head gives way to a 5-way one, and the config says so.
    assert_round_trip::<Bert<B>>(
        "bert",
        "BERT with a new head",
        &attention,
        &dir,
        |m| m.with_classifier(5, &device),
        |m| {
            assert_eq!(m.config.num_labels, Some(5));
            let logits = m.classify(&encode(m)).unwrap();
            assert_eq!(logits.dims(), [2, 5]);
            values(&logits)
        },
    );
    let golden_vit = golden("vit");
    assert_round_trip::<Vit<B>>(
        "vit",
        "ViT with a new head",
        &attention,
        &dir,
        |m| m.with_classifier(3, &device),
        |m| {
            assert_eq!(m.config.num_labels, Some(3));
            let out = m.forward(
                float_tensor(&golden_vit, "pixel_values"),
                AttentionMode::Configured,
                false,
            );
            let logits = out.unwrap().logits.unwrap();
            assert_eq!(logits.dims()[1], 3);
            values(&logits)
        },
    );

    // An encoder without a head (as all-MiniLM-L6-v2 is) gets one; the encoder is untouched.
    let encoder = Bert::<B>::from_pretrained(fixture_dir("bert"), None, &device).unwrap();
    let mut headless = encoder.clone();
    headless.classifier = None;
    headless.config.num_labels = None;
    let err = headless.classify(&encode(&headless)).unwrap_err();
    assert!(err.to_string().contains("no classification head"), "{err}");
    let headed = headless.with_classifier(2, &device);
    let weight = values(&headed.classifier.as_ref().unwrap().weight.val());
    let std = (weight.iter().map(|w| w * w).sum::<f64>() / weight.len() as f64).sqrt();
    assert!(
        (0.01..0.03).contains(&std),
        "N(0, 0.02) head, got std {std}"
    );
    let bias = headed.classifier.as_ref().unwrap().bias.as_ref().unwrap();
    assert!(values(&bias.val()).iter().all(|b| *b == 0.0), "zero bias");
    assert_eq!(
        values(&encode(&headed).pooled),
        values(&encode(&encoder).pooled)
    );
    checkpoint::save(&headed, dir.join("headless")).unwrap();
    let loaded = Bert::<B>::from_pretrained(dir.join("headless"), None, &device).unwrap();
    assert_eq!(
        values(&loaded.classify(&encode(&loaded)).unwrap()),
        values(&headed.classify(&encode(&headed)).unwrap()),
        "a head added to an encoder round-trips"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn captures_carry_the_raw_kernel_of_linear_layers() {
    let device = Default::default();
    let eps = 1e-6;
    let golden_gpt2 = golden("gpt2");
    let model = Gpt2::<B>::from_pretrained(
        fixture_dir("gpt2"),
        Some(vec![AttentionConfig::Softmax, hedgehog(8)]),
        &device,
    )
    .unwrap();
    let ids = int_tensor::<B>(&golden_gpt2, "input_ids");
    let golden_bert = golden("bert");
    let bert =
        Bert::<B>::from_pretrained(fixture_dir("bert"), Some(vec![hedgehog(8)]), &device).unwrap();
    let mask = mask_tensor::<B>(&golden_bert, "attention_mask");
    // The second sequence is right-padded after `real` tokens.
    let real = values(&mask.clone().float().sum_dim(1))[1] as usize;
    for mode in [AttentionMode::Configured, AttentionMode::Distill] {
        let gpt2 = model.forward(ids.clone(), None, mode, true).unwrap();
        let bert = bert
            .encode(
                int_tensor(&golden_bert, "input_ids"),
                None,
                Some(mask.clone()),
                mode,
                true,
            )
            .unwrap();
        let captures = gpt2
            .attention
            .iter()
            .map(|c| ("GPT-2", true, c))
            .chain(bert.attention.iter().map(|c| ("BERT", false, c)));
        for (layer, (family, causal, capture)) in captures.enumerate() {
            let what = format!("{family} {mode:?} capture {layer}");
            let (Some(kernel), Some(student)) = (&capture.kernel, &capture.student) else {
                assert!(
                    capture.kernel.is_none() && capture.student.is_none(),
                    "{what}: kernel exactly with student weights"
                );
                continue;
            };
            assert_eq!(
                kernel.dims(),
                capture.teacher.dims(),
                "{what}: [B, H, T, T]"
            );
            let normalised = kernel
                .clone()
                .div(kernel.clone().sum_dim(3).add_scalar(eps));
            assert_max_diff(&values(&normalised), &values(student), 1e-5, &what);
            let [_, h, t, _] = kernel.dims();
            for (index, value) in values(kernel).iter().enumerate() {
                let (n, i, j) = (index / (h * t * t), index / t % t, index % t);
                let padded = !causal && n == 1 && (i >= real || j >= real);
                if (causal && j > i) || padded {
                    assert_eq!(*value, 0.0, "{what}: masked entry n={n} i={i} j={j}");
                }
            }
        }
    }
}

#[test]
fn bad_checkpoints_are_clear_errors() {
    let dir = std::env::temp_dir().join(format!("hedgehog-bad-{}", std::process::id()));
    let device = Default::default();
    let source = fixture_dir("gpt2");

    // Missing directory.
    let err = Gpt2::<B>::from_pretrained(dir.join("nowhere"), None, &device).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");

    // Config of another size: shape mismatch named with the tensor.
    std::fs::create_dir_all(dir.join("wide")).unwrap();
    let config = std::fs::read_to_string(source.join("config.json"))
        .unwrap()
        .replace("\"n_embd\": 32", "\"n_embd\": 48");
    std::fs::write(dir.join("wide/config.json"), config).unwrap();
    std::fs::copy(
        source.join("model.safetensors"),
        dir.join("wide/model.safetensors"),
    )
    .unwrap();
    let err = Gpt2::<B>::from_pretrained(dir.join("wide"), None, &device).unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Weights(hedgehog_models::weights::WeightError::ShapeMismatch { .. })
        ),
        "{err}"
    );

    // Fewer layers in the config than in the file: unused tensors.
    std::fs::create_dir_all(dir.join("short")).unwrap();
    let config = std::fs::read_to_string(source.join("config.json"))
        .unwrap()
        .replace("\"n_layer\": 2", "\"n_layer\": 1");
    std::fs::write(dir.join("short/config.json"), config).unwrap();
    std::fs::copy(
        source.join("model.safetensors"),
        dir.join("short/model.safetensors"),
    )
    .unwrap();
    let err = Gpt2::<B>::from_pretrained(dir.join("short"), None, &device).unwrap_err();
    assert!(err.to_string().contains("not used by the model"), "{err}");

    // More layers than the file has: a missing tensor.
    let config = std::fs::read_to_string(source.join("config.json"))
        .unwrap()
        .replace("\"n_layer\": 2", "\"n_layer\": 3");
    std::fs::write(dir.join("short/config.json"), config).unwrap();
    let err = Gpt2::<B>::from_pretrained(dir.join("short"), None, &device).unwrap_err();
    assert!(err.to_string().contains("missing tensor `h.2."), "{err}");

    // Truncated weights file.
    std::fs::create_dir_all(dir.join("corrupt")).unwrap();
    std::fs::copy(source.join("config.json"), dir.join("corrupt/config.json")).unwrap();
    let bytes = std::fs::read(source.join("model.safetensors")).unwrap();
    std::fs::write(
        dir.join("corrupt/model.safetensors"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let err = Gpt2::<B>::from_pretrained(dir.join("corrupt"), None, &device).unwrap_err();
    assert!(
        err.to_string().contains("not a valid safetensors file"),
        "{err}"
    );

    // Malformed config.
    std::fs::write(dir.join("corrupt/config.json"), "{\"n_embd\": 32,").unwrap();
    let err = Gpt2::<B>::from_pretrained(dir.join("corrupt"), None, &device).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");

    // Token ids outside the vocabulary.
    let model = Gpt2::<B>::from_pretrained(&source, None, &device).unwrap();
    let err = model
        .forward(
            tokens(&[1, 2, 500], 1),
            None,
            AttentionMode::Configured,
            false,
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("token ids must be in 0..97"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generation_matches_a_naive_full_recompute_loop() {
    use hedgehog_models::generation::{GenerationConfig, Sampling, generate};
    let device = Default::default();
    let prompt = [5u32, 17, 42, 8];
    for attention in [AttentionConfig::Softmax, hedgehog(6)] {
        let model = Llama::<B>::from_pretrained(
            fixture_dir("llama"),
            Some(vec![attention.clone()]),
            &device,
        )
        .unwrap();
        let greedy = GenerationConfig {
            max_new_tokens: 8,
            sampling: Sampling::Greedy,
            seed: 0,
            stop_token: None,
        };
        let generated = generate(&model, &prompt, &greedy, &device).unwrap();
        // Naive: rerun the whole sequence each step and take the argmax of the last position.
        let mut sequence: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
        for _ in 0..8 {
            let logits = model
                .forward(tokens(&sequence, 1), None, AttentionMode::Configured, false)
                .unwrap()
                .output;
            let last = values(&logits)[(sequence.len() - 1) * 101..].to_vec();
            let argmax = last
                .iter()
                .enumerate()
                .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                .0;
            sequence.push(argmax as i64);
        }
        let naive: Vec<u32> = sequence[prompt.len()..].iter().map(|&t| t as u32).collect();
        assert_eq!(
            generated,
            naive,
            "{}: cached greedy decoding = naive loop",
            attention.label()
        );
        // top-k with k = 1 is greedy; sampling is reproducible from its seed.
        let top1 = GenerationConfig {
            sampling: Sampling::TopK {
                k: 1,
                temperature: 1.0,
            },
            ..greedy.clone()
        };
        assert_eq!(generate(&model, &prompt, &top1, &device).unwrap(), naive);
        let nucleus = GenerationConfig {
            sampling: Sampling::TopP {
                p: 0.9,
                temperature: 0.8,
            },
            seed: 7,
            ..greedy.clone()
        };
        let a = generate(&model, &prompt, &nucleus, &device).unwrap();
        assert_eq!(
            a,
            generate(&model, &prompt, &nucleus, &device).unwrap(),
            "seeded sampling repeats"
        );
        assert!(a.iter().all(|&t| t < 101));
    }
    let model = Gpt2::<B>::from_pretrained(fixture_dir("gpt2"), None, &device).unwrap();
    let too_long = GenerationConfig {
        max_new_tokens: 64,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_token: None,
    };
    let err = generate(&model, &prompt, &too_long, &device).unwrap_err();
    assert!(
        err.to_string().contains("exceeds the model's 64 positions"),
        "{err}"
    );
}
