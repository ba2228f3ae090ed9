//! The `passkey` stage on a tiny random GPT-2 over the shipped WikiText sample: the report's
//! keys and accuracy range, the cache sizes against context length for softmax, linear and
//! windowed linear attention, and the errors for tasks and specs it does not fit.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use hedgehog_train::{RunOptions, Spec, run};

mod common;

use common::{exclusive, temp, workspace};

type B = Autodiff<NdArray<f32>>;

const HEDGEHOG: &str =
    "{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 8}";

fn spec(dir: &Path, stages: &str) -> Result<Spec, String> {
    spec_with(dir, "[]", stages)
}

/// A tiny GPT-2 spec over the sample with model attention `attention` and `stages`.
fn spec_with(dir: &Path, attention: &str, stages: &str) -> Result<Spec, String> {
    let text = format!(
        "name: passkey_tiny
seed: 1
model: {{family: gpt2, preset: gpt2_tiny}}
attention: {attention}
task: {{kind: language_modeling, path: {corpus}, context: 32, cache: {cache}}}
stages:
{stages}",
        corpus = workspace().join("data/samples/wikitext").display(),
        cache = dir.join("cache").display(),
    );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    Spec::load(&path, &[]).map_err(|e| e.to_string())
}

const PASSKEY_STAGE: &str = "  - kind: passkey
    passkey: {lengths: [96, 160], depths: [0.0, 1.0], trials: 1, speed_tokens: 3}
";

#[test]
fn the_stage_writes_accuracies_and_cache_sizes_per_length() {
    let _turn = exclusive();
    let dir = temp("passkey");
    let attentions = [
        "[]".to_string(),
        format!("[{HEDGEHOG}}}]"),
        format!("[{HEDGEHOG}, window: 16}}]"),
    ];
    let mut cache = Vec::new();
    for (index, attention) in attentions.iter().enumerate() {
        let spec = spec_with(&dir, attention, PASSKEY_STAGE).unwrap();
        let options = RunOptions {
            results_dir: dir.join(format!("results-{index}")),
            resume: false,
            verbose: false,
            confirmed: false,
        };
        let summary = run::<B>(&spec, &options, &[Default::default()])
            .unwrap()
            .remove(0);
        assert!(summary.finished);
        let stage = &summary.stages[0];
        let relative = "analysis/passkey-stage-0.json";
        assert_eq!(stage.analysis.as_deref(), Some(relative));
        let text = std::fs::read_to_string(summary.run_dir.join(relative)).unwrap();
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        for key in [
            "attention",
            "lengths",
            "depths",
            "cells",
            "speed",
            "trials",
            "length_accuracy",
        ] {
            assert!(report.get(key).is_some(), "the report has `{key}`");
        }
        let cells = report["cells"].as_array().unwrap();
        assert_eq!(cells.len(), 4, "2 lengths × 2 depths");
        for cell in cells {
            let accuracy = cell["accuracy"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&accuracy), "{cell}");
        }
        for trial in report["trials"].as_array().unwrap() {
            let asked = trial["length"].as_u64().unwrap();
            let built = trial["prompt_tokens"].as_u64().unwrap();
            assert!(asked.abs_diff(built) <= 2, "{trial}");
        }
        for length in [96, 160] {
            let accuracy = stage.metrics[&format!("passkey_accuracy_{length}")];
            assert!((0.0..=1.0).contains(&accuracy));
            assert!(stage.metrics[&format!("ms_per_token_{length}")] > 0.0);
        }
        cache.push((
            stage.metrics["cache_bytes_96"],
            stage.metrics["cache_bytes_160"],
        ));
    }
    let [softmax, linear, window] = [cache[0], cache[1], cache[2]];
    // gpt2_tiny: 2 layers of 4 heads of 32; softmax keeps 2 × 2 × 4 × 32 floats per token.
    let per_token = (2 * 2 * 4 * 32 * 4) as f64;
    assert_eq!(
        softmax.1 - softmax.0,
        64.0 * per_token,
        "softmax grows per token"
    );
    assert_eq!(linear.0, linear.1, "linear state does not grow");
    assert_eq!(window.0, window.1, "the window stops growing at W");
    assert_eq!(
        window.0 - linear.0,
        16.0 * per_token,
        "W keys and values besides the state"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn passkey_specs_that_cannot_work_are_clear_errors() {
    let dir = temp("passkey-errors");
    let missing = spec(&dir, "  - {kind: passkey}\n").unwrap_err();
    assert!(missing.contains("give `passkey:"), "{missing}");
    let misplaced = spec(&dir, "  - {kind: eval, passkey: {lengths: [64]}}\n").unwrap_err();
    assert!(
        misplaced.contains("belongs to a passkey stage"),
        "{misplaced}"
    );
    let depth = spec(
        &dir,
        "  - {kind: passkey, passkey: {lengths: [64], depths: [1.5]}}\n",
    )
    .unwrap_err();
    assert!(depth.contains("fractions in 0..1"), "{depth}");
    let recall = "name: recall
model: {family: gpt2, preset: gpt2_tiny}
task: {kind: associative_recall, vocab_size: 128, seq_len: 64, num_kv_pairs: 8, power_a: 0.01,
       train_examples: 20, test_examples: 10, train_seed: 1, test_seed: 2}
stages:
  - {kind: passkey, passkey: {lengths: [64]}}
";
    let path = dir.join("recall.yaml");
    std::fs::write(&path, recall).unwrap();
    let error = Spec::load(&path, &[]).unwrap_err().to_string();
    assert!(error.contains("needs a language_modeling task"), "{error}");
    std::fs::remove_dir_all(&dir).ok();
}
