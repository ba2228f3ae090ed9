//! Every pipeline end to end on tiny sizes (GLUE with BERT, images with ViT, associative recall
//! with GPT-2), with LoRA, sweeps, early stopping, data-parallel devices, NaN detection, resume
//! inside a LoRA stage, and the errors a user meets first.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use hedgehog_train::run::RunError;
use hedgehog_train::{RunOptions, RunSummary, Spec, run};

mod common;

use common::{copy_dir, exclusive, metrics_without_timing, sample_vocab, temp, untimed, workspace};

type B = Autodiff<NdArray<f32>>;

fn options(results: &Path, resume: bool) -> RunOptions {
    RunOptions {
        results_dir: results.to_path_buf(),
        resume,
        verbose: false,
        confirmed: false,
    }
}

fn spec_from(dir: &Path, text: &str, overrides: &[&str]) -> Spec {
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Spec::load(&path, &overrides).unwrap_or_else(|e| panic!("{e}"))
}

fn run_cpu(spec: &Spec, options: &RunOptions, devices: usize) -> Result<Vec<RunSummary>, RunError> {
    run::<B>(spec, options, &vec![Default::default(); devices])
}

const GLUE: &str = "name: glue-tiny
seed: 1
model:
  family: bert
  preset: all_minilm_l6_v2
  config: {vocab_size: VOCAB, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64}
task: {kind: glue, path: GLUE_ROOT, task: SST-2, max_length: 16, tokenizer: VOCAB_PATH}
report: {table: finetuned_conversion}
checkpoint: {every: 2, keep: 5}
stages:
  - {kind: train, label: softmax, steps: 3, batch_size: 2, optimizer: {kind: adamw, lr: 1.0e-3}}
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 4}}]
    steps: 2
    batch_size: 2
    optimizer: {kind: adamw, lr: 1.0e-2}
  - kind: finetune
    steps: 4
    batch_size: 2
    trainable: {lora: {rank: 2, alpha: 4.0}}
    optimizer: {kind: adamw, lr: 1.0e-2}
    row: Hedgehog
  - {kind: analyze, batch_size: 2, analysis: {batches: 1, bins: 8}}
";

fn glue_spec(dir: &Path) -> Spec {
    let vocab = sample_vocab(dir);
    let size = std::fs::read_to_string(&vocab).unwrap().lines().count();
    let text = GLUE
        .replace("VOCAB_PATH", &vocab.display().to_string())
        .replace("VOCAB", &size.to_string())
        .replace(
            "GLUE_ROOT",
            &workspace().join("data/samples/glue").display().to_string(),
        );
    spec_from(dir, &text, &[])
}

#[test]
fn glue_with_bert_trains_distils_finetunes_with_lora_and_analyses() {
    let _turn = exclusive();
    let dir = temp("glue");
    let spec = glue_spec(&dir);
    let summary = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap()
        .remove(0);
    assert!(summary.finished);
    assert_eq!(summary.glue_task.as_deref(), Some("SST-2"));
    assert_eq!(summary.stages.len(), 4);
    let [train, distill, finetune, analyze] = &summary.stages[..] else {
        unreachable!()
    };
    assert_eq!(train.headline.as_deref(), Some("accuracy"));
    assert!((0.0..=100.0).contains(&train.metrics["accuracy"]));
    assert_eq!(distill.attention, "Hedgehog (softmax_split)");
    assert!(distill.final_loss.unwrap() > 0.0);
    assert_eq!(finetune.row.as_deref(), Some("Hedgehog"));
    assert!(finetune.metrics.contains_key("matthews"));
    let report = summary.run_dir.join(analyze.analysis.as_ref().unwrap());
    let report = hedgehog_analysis::AttentionReport::load(&report).unwrap();
    assert_eq!(report.layers.len(), 2);
    assert!(report.summary().kl.unwrap() >= 0.0);
    assert!(analyze.metrics["student_entropy"] > 0.0);
    // The LoRA stage ends merged: the final checkpoint loads as a plain converted BERT.
    let last = summary.run_dir.join("checkpoints");
    let newest = std::fs::read_dir(&last)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    assert!(!newest.join("lora.mpk").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resuming_inside_a_lora_stage_reproduces_the_uninterrupted_run() {
    let _turn = exclusive();
    let dir = temp("lora-resume");
    let spec = glue_spec(&dir);
    let whole = run_cpu(&spec, &options(&dir.join("whole"), false), 1)
        .unwrap()
        .remove(0);
    // Global step 7 is inside the LoRA stage (3 train + 2 distill + 2 of 4 finetune steps).
    let killed = dir.join("killed/glue-tiny/run-001");
    copy_dir(&whole.run_dir, &killed);
    std::fs::remove_file(killed.join("summary.json")).unwrap();
    for entry in std::fs::read_dir(killed.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("step-0000007") {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    assert!(killed.join("checkpoints/step-0000007/lora.mpk").exists());
    let resumed = run_cpu(&spec, &options(&dir.join("killed"), true), 1)
        .unwrap()
        .remove(0);
    assert_eq!(resumed.run_dir, killed);
    assert_eq!(
        metrics_without_timing(&killed),
        metrics_without_timing(&whole.run_dir)
    );
    let mut a = untimed(&resumed.stages);
    let mut b = untimed(&whole.stages);
    // The analysis report's path is relative, so equal; its numbers are in the metrics.
    a.iter_mut()
        .chain(b.iter_mut())
        .for_each(|s| s.analysis = None);
    assert_eq!(a, b);
    std::fs::remove_dir_all(&dir).ok();
}

const IMAGES: &str = "name: vit-tiny
model:
  family: vit
  preset: vit_tiny_28
  config: {hidden_size: 16, num_hidden_layers: 1, num_attention_heads: 2, intermediate_size: 32}
task: {kind: images, path: MNIST, transform: mnist, workers: 2}
stages:
  - {kind: train, steps: 2, batch_size: 4, optimizer: {kind: adamw, lr: 1.0e-3}}
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: t2r, feature_dim: 8}}]
    steps: 1
    batch_size: 4
  - {kind: eval}
";

#[test]
fn images_with_vit_train_distil_and_evaluate_top1() {
    let _turn = exclusive();
    let dir = temp("images");
    let text = IMAGES.replace(
        "MNIST",
        &workspace().join("data/samples/mnist").display().to_string(),
    );
    let spec = spec_from(&dir, &text, &[]);
    let summary = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap()
        .remove(0);
    assert_eq!(summary.stages[0].headline.as_deref(), Some("top1"));
    assert_eq!(summary.stages[2].attention, "T2R");
    assert!((0.0..=100.0).contains(&summary.stages[2].metrics["top1"]));
    std::fs::remove_dir_all(&dir).ok();
}

const RECALL: &str = "name: ar-tiny
seed: 2
model:
  family: gpt2
  preset: gpt2_tiny
  config: {vocab_size: 32, n_positions: 16, n_embd: 32, n_layer: 1, n_head: 2}
task: {kind: associative_recall, vocab_size: 32, seq_len: 16, num_kv_pairs: 2, train_examples: 32, test_examples: 8, train_seed: 1, test_seed: 2}
report: {table: recall}
stages:
  - {kind: train, epochs: 0.25, batch_size: 4, optimizer: {kind: adamw, lr: 1.0e-3}}
  - {kind: analyze, batch_size: 4, analysis: {batches: 1}}
sweep:
  attention:
    - [{kind: softmax}]
    - [{kind: linear, feature_map: {kind: elu}}]
";

#[test]
fn a_sweep_runs_every_point_and_resume_skips_finished_points() {
    let _turn = exclusive();
    let dir = temp("sweep");
    let spec = spec_from(&dir, RECALL, &[]);
    assert_eq!(spec.expand().unwrap().len(), 2);
    let results = dir.join("results");
    let summaries = run_cpu(&spec, &options(&results, false), 1).unwrap();
    assert_eq!(summaries.len(), 2);
    let labels: Vec<&str> = summaries
        .iter()
        .map(|s| s.stages[0].attention.as_str())
        .collect();
    assert_eq!(labels, ["softmax", "1+ELU"]);
    for summary in &summaries {
        assert!(summary.sweep.as_ref().unwrap().contains_key("attention"));
        // 32 examples, a quarter epoch of batch 4: 2 steps.
        assert_eq!(summary.stages[0].steps, 2);
        assert_eq!(summary.stages[0].headline.as_deref(), Some("accuracy"));
    }
    let again = run_cpu(&spec, &options(&results, true), 1).unwrap();
    assert_eq!(
        again.iter().map(|s| s.run_dir.clone()).collect::<Vec<_>>(),
        summaries
            .iter()
            .map(|s| s.run_dir.clone())
            .collect::<Vec<_>>(),
        "finished points are not run again"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_devices_split_each_batch_and_match_one_device() {
    let _turn = exclusive();
    let dir = temp("parallel");
    // No dropout, so both runs draw nothing from the (process-global) backend RNG in training.
    let spec = spec_from(
        &dir,
        RECALL,
        &[
            "sweep={}",
            "model.config.resid_pdrop=0.0",
            "model.config.embd_pdrop=0.0",
            "model.config.attn_pdrop=0.0",
            "stages=[{kind: train, steps: 3, batch_size: 4, optimizer: {kind: adamw, lr: 1.0e-3}}]",
        ],
    );
    let one = run_cpu(&spec, &options(&dir.join("one"), false), 1)
        .unwrap()
        .remove(0);
    let two = run_cpu(&spec, &options(&dir.join("two"), false), 2)
        .unwrap()
        .remove(0);
    let loss = |s: &RunSummary| s.stages[0].final_loss.unwrap();
    assert!(
        (loss(&one) - loss(&two)).abs() < 1e-5,
        "{} vs {}",
        loss(&one),
        loss(&two)
    );
    let accuracy = |s: &RunSummary| s.stages[0].metrics["accuracy"];
    assert!((accuracy(&one) - accuracy(&two)).abs() < 1e-9);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn early_stopping_ends_a_stage_that_stops_improving() {
    let _turn = exclusive();
    let dir = temp("early");
    // A min_delta no change can beat: the first evaluation sets the best, the next one stops.
    let spec = spec_from(
        &dir,
        RECALL,
        &[
            "sweep={}",
            "stages=[{kind: train, steps: 10, batch_size: 4, eval_every: 1, early_stopping: {patience: 1, min_delta: 1.0e9}}]",
        ],
    );
    let summary = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap()
        .remove(0);
    assert!(summary.stages[0].stopped_early);
    assert_eq!(summary.stages[0].steps, 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_diverging_loss_stops_the_run_and_names_the_last_good_checkpoint() {
    let _turn = exclusive();
    let dir = temp("nan");
    let spec = spec_from(
        &dir,
        RECALL,
        &[
            "sweep={}",
            "checkpoint={every: 1, keep: 2}",
            "stages=[{kind: train, steps: 20, batch_size: 4, optimizer: {kind: adamw, lr: 1.0e30}}]",
        ],
    );
    let err = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("loss became") && err.contains("step-"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn user_mistakes_are_clear_errors() {
    let _turn = exclusive();
    let dir = temp("mistakes");
    let path = dir.join("spec.yaml");
    std::fs::write(&path, RECALL).unwrap();
    let load = |overrides: &[&str]| {
        let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
        Spec::load(&path, &overrides)
    };

    // A model.config key the family does not have: caught when the model is built.
    let spec = load(&["sweep={}", "model.config.n_layers=2"]).unwrap();
    let err = run_cpu(&spec, &options(&dir.join("r"), false), 1)
        .unwrap_err()
        .to_string();
    assert!(err.contains("n_layers") && err.contains("n_layer"), "{err}");

    // A task on the wrong model family.
    let err = load(&["model={family: bert, preset: all_minilm_l6_v2}"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a causal language model"), "{err}");

    // A sweep over a key that does not exist.
    let err = load(&["sweep={stages.0.stepz: [1, 2]}"])
        .unwrap_err()
        .to_string();
    assert!(err.contains("stepz"), "{err}");

    // Missing datasets name the path and how to get the data.
    std::fs::write(&path, IMAGES.replace("MNIST", "/nowhere/imagenet")).unwrap();
    let spec = Spec::load(&path, &[]).unwrap();
    let err = run_cpu(&spec, &options(&dir.join("r"), false), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nowhere/imagenet") && err.contains("just fetch-data"),
        "{err}"
    );
    let glue = glue_spec(&dir);
    let mut glue = glue.clone();
    if let hedgehog_train::spec::TaskSpec::Glue { path, .. } = &mut glue.task {
        *path = PathBuf::from("/nowhere/glue");
    }
    let err = run_cpu(&glue, &options(&dir.join("r"), false), 1)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("/nowhere/glue") && err.contains("just fetch-data"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

const LLAMA: &str = "name: llama-tiny
model:
  family: llama
  preset: smollm2_135m
  config: {vocab_size: 50257, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2,
           num_attention_heads: 4, num_key_value_heads: 2}
task: {kind: language_modeling, path: CORPUS, context: 16, eval_tokens: 64, cache: CACHE}
stages:
  - {kind: train, steps: 2, batch_size: 2, optimizer: {kind: adamw, lr: 1.0e-3}}
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 4}}]
    steps: 2
    batch_size: 2
  - kind: finetune
    steps: 2
    batch_size: 2
    trainable: {lora: {rank: 2, alpha: 4.0}}
    row: Hedgehog
";

/// A language-modelling spec on the shipped WikiText sample, its token cache in `dir`.
fn sample_corpus_spec(dir: &Path, template: &str) -> Spec {
    let corpus = workspace().join("data/samples/wikitext");
    let text = template
        .replace("CORPUS", &corpus.display().to_string())
        .replace("CACHE", &dir.join("cache").display().to_string());
    spec_from(dir, &text, &[])
}

#[test]
fn a_llama_decoder_converts_with_grouped_heads_and_lora() {
    let _turn = exclusive();
    let dir = temp("llama");
    let spec = sample_corpus_spec(&dir, LLAMA);
    let summary = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap()
        .remove(0);
    let finetune = &summary.stages[2];
    assert_eq!(finetune.attention, "Hedgehog (softmax_split)");
    assert_eq!(finetune.headline.as_deref(), Some("perplexity"));
    assert!(finetune.metrics["perplexity"].is_finite());
    assert!(summary.run_dir.join("final/model.safetensors").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn teacher_forced_analysis_measures_every_map_on_the_softmax_models_queries_and_keys() {
    let _turn = exclusive();
    let dir = temp("teacher-forced");
    let spec = glue_spec(&dir);
    let analyze = |map: &str, inputs: &str| {
        format!(
            "{{kind: analyze, attention: [{{kind: linear, feature_map: {{kind: {map}}}}}], batch_size: 2, analysis: {{batches: 2, layer_inputs: {inputs}}}}}"
        )
    };
    let stages = format!(
        "stages=[{{kind: train, steps: 1, batch_size: 2}}, {}, {}, {}, {}]",
        analyze("elu", "softmax"),
        analyze("relu", "softmax"),
        analyze("elu", "model"),
        analyze("relu", "model"),
    );
    let path = dir.join("spec.yaml");
    let spec = Spec::load(&path, &[stages]).unwrap_or_else(|e| panic!("{e} ({spec:?})"));
    let summary = run_cpu(&spec, &options(&dir.join("results"), false), 1)
        .unwrap()
        .remove(0);
    let teacher = |stage: usize| summary.stages[stage].metrics["teacher_entropy"];
    assert_eq!(summary.stages[1].attention, "1+ELU");
    assert_eq!(summary.stages[2].attention, "ReLU");
    assert!(
        (teacher(1) - teacher(2)).abs() < 1e-9,
        "teacher-forced: the same softmax weights whatever the map ({} vs {})",
        teacher(1),
        teacher(2)
    );
    assert!(
        (teacher(3) - teacher(4)).abs() > 1e-9,
        "as run, the second layer reads the first layer's linear output"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// The tiny Llama with 1+ELU swapped in by a distill stage that has nothing to learn, then
/// `STAGES`, then an evaluation.
const NO_OP_DISTILL: &str = "name: no-op-distill
model:
  family: llama
  preset: smollm2_135m
  config: {vocab_size: 50257, hidden_size: 16, intermediate_size: 32, num_hidden_layers: 2,
           num_attention_heads: 4, num_key_value_heads: 2}
task: {kind: language_modeling, path: CORPUS, context: 16, eval_tokens: 64, cache: CACHE}
stages:
  - {kind: distill, attention: [{kind: linear, feature_map: {kind: elu}}], steps: 2, batch_size: 2}
STAGES  - {kind: eval, label: evaluated}
";

#[test]
fn a_stage_after_a_distillation_with_nothing_to_learn_trains_every_parameter() {
    let _turn = exclusive();
    let dir = temp("no-op-distill");
    let perplexity = |stages: &str, name: &str| {
        let spec = sample_corpus_spec(&dir, &NO_OP_DISTILL.replace("STAGES", stages));
        let summary = run_cpu(&spec, &options(&dir.join(name), false), 1)
            .unwrap()
            .remove(0);
        assert_eq!(summary.stages[0].steps, 0, "1+ELU has nothing to distil");
        summary.stages.last().unwrap().metrics["perplexity"]
    };
    let untouched = perplexity("", "untouched");
    let finetuned = perplexity(
        "  - {kind: finetune, steps: 2, batch_size: 2, optimizer: {kind: adamw, lr: 1.0e-2}}\n",
        "finetuned",
    );
    assert!(
        finetuned != untouched,
        "the finetune stage changed nothing: perplexity {finetuned} both ways"
    );
    std::fs::remove_dir_all(&dir).ok();
}
