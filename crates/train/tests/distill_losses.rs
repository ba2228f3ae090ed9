//! Distill stages with `loss:`: LoLCATs' output MSE lowers its loss on a tiny GPT-2 (against
//! the same run with its maps held still) and writes
//! each component to `metrics.csv` and every layer to `distill_layers.csv` and `summary.json`;
//! a run killed inside a windowed distillation on a weighted sum of losses resumes exactly;
//! BERT's padded batches distil on the outputs; misplaced and bad weights are clear errors.

use std::path::Path;

use burn::backend::{Autodiff, NdArray};
use hedgehog_train::layer_metrics::LayerLog;
use hedgehog_train::metrics::MetricsRow;
use hedgehog_train::run::summary_from_json;
use hedgehog_train::{RunOptions, RunSummary, Spec, run};

mod common;

use common::{
    copy_dir, corpus_spec, exclusive, metrics_without_timing, sample_vocab, stage_rows, temp,
    untimed, workspace,
};

type B = Autodiff<NdArray<f32>>;

const OUTPUTS: &str = "name: output-mse
seed: 5
model: {family: gpt2, preset: gpt2_tiny}
task: {kind: language_modeling, path: CORPUS, context: 16, cache: CACHE}
checkpoint: {every: 4, keep: 10}
stages:
  - kind: train
    steps: 3
    batch_size: 2
    optimizer: {kind: adamw, lr: 3.0e-3}
  - kind: distill
    label: outputs
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 8}}]
    steps: 8
    batch_size: 2
    log_every: 2
    loss: {output_mse: 1000}
    optimizer: {kind: adamw, lr: 1.0e-2}
";

fn run_one(spec: &Spec, results: &Path, resume: bool) -> RunSummary {
    let options = RunOptions {
        results_dir: results.to_path_buf(),
        resume,
        verbose: false,
        confirmed: false,
    };
    let mut summaries = run::<B>(spec, &options, &[Default::default()]).unwrap();
    summaries.remove(0)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs())
}

#[test]
fn an_output_mse_distillation_lowers_its_loss_and_logs_every_layer() {
    let _turn = exclusive();
    let dir = temp("output-mse");
    let spec = corpus_spec(&dir, OUTPUTS, &[]).unwrap();
    let summary = run_one(&spec, &dir.join("results"), false);
    let run_dir = &summary.run_dir;

    let rows = stage_rows(run_dir, 1);
    assert_eq!(rows.len(), 8, "a row per distill step");
    for row in &rows {
        let mse = row.components["output_mse"];
        assert_eq!(row.components.len(), 1, "only the weighed component");
        assert!(
            close(row.loss.unwrap(), 1000.0 * mse),
            "loss = 1000 × output_mse"
        );
    }
    // Each step's batch changes the loss as much as learning does on this corpus, so the
    // control is the same run whose maps barely move: same batches, same first loss.
    let frozen = corpus_spec(&dir, OUTPUTS, &["stages.1.optimizer.lr=1.0e-9"]).unwrap();
    let control = stage_rows(&run_one(&frozen, &dir.join("control"), false).run_dir, 1);
    let loss = |rows: &[MetricsRow], i: usize| rows[i].loss.unwrap();
    assert!(
        close(loss(&rows, 0), loss(&control, 0)),
        "the same first step"
    );
    for step in 4..8 {
        let (trained, untrained) = (loss(&rows, step), loss(&control, step));
        assert!(
            trained < 0.8 * untrained,
            "step {}: the output loss goes down: {trained} vs {untrained} untrained",
            step + 1
        );
    }
    assert!(
        stage_rows(run_dir, 0)
            .iter()
            .all(|row| row.components.is_empty()),
        "train steps have no distillation components"
    );

    let layers = LayerLog::read(&run_dir.join("distill_layers.csv")).unwrap();
    let steps: Vec<(usize, usize)> = layers.iter().map(|r| (r.step, r.layer)).collect();
    let expected: Vec<(usize, usize)> = [2, 4, 6, 8]
        .into_iter()
        .flat_map(|step| [(step, 0), (step, 1)])
        .collect();
    assert_eq!(steps, expected, "both layers at every logged step");
    for pair in layers.chunks(2) {
        let row = &rows[pair[0].step - 1];
        assert_eq!(pair[0].global_step, row.global_step);
        let mean = (pair[0].loss + pair[1].loss) / 2.0;
        assert!(
            close(mean, row.loss.unwrap()),
            "the layers' mean is the step's loss"
        );
        for layer in pair {
            assert!(close(layer.loss, 1000.0 * layer.components["output_mse"]));
        }
    }

    // summary.json holds the last step's per-layer losses, readable back.
    let text = std::fs::read_to_string(run_dir.join("summary.json")).unwrap();
    let read = summary_from_json(&text).unwrap();
    let final_layers = read.stages[1].layer_losses.clone().expect("layer losses");
    assert_eq!(
        final_layers,
        summary.stages[1].layer_losses.clone().unwrap()
    );
    assert_eq!(final_layers.layers, vec![0, 1]);
    assert_eq!(
        final_layers.loss,
        layers[6..].iter().map(|r| r.loss).collect::<Vec<_>>()
    );
    assert_eq!(
        final_layers.components.keys().collect::<Vec<_>>(),
        ["output_mse"]
    );
    assert!(
        read.stages[0].layer_losses.is_none(),
        "a train stage has none"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn resuming_inside_a_windowed_distillation_on_a_weighted_sum_is_exact() {
    let _turn = exclusive();
    let dir = temp("losses-resume");
    let spec = corpus_spec(
        &dir,
        OUTPUTS,
        &[
            "stages.1.steps=6",
            "stages.1.attention.0.window=4",
            "stages.1.attention.0.chunk_size=4",
            "stages.1.loss={output_mse: 1000, weight_ce: 0.5}",
        ],
    )
    .unwrap();
    let whole = run_one(&spec, &dir.join("whole"), false);
    let rows = stage_rows(&whole.run_dir, 1);
    for row in &rows {
        let weighted = 1000.0 * row.components["output_mse"] + 0.5 * row.components["weight_ce"];
        assert!(
            close(row.loss.unwrap(), weighted),
            "loss = Σ weight × component"
        );
    }
    // Killed after global step 7: step 4 of the 6 distill steps (checkpoints fall every 4 steps
    // of a stage), past the layer rows of steps 2 and 4, before those of step 6.
    let killed = dir.join("killed/output-mse/run-001");
    copy_dir(&whole.run_dir, &killed);
    std::fs::remove_file(killed.join("summary.json")).unwrap();
    assert!(killed.join("checkpoints/step-0000007").exists());
    for entry in std::fs::read_dir(killed.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("step-0000007") {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let resumed = run_one(&spec, &dir.join("killed"), true);
    assert_eq!(resumed.run_dir, killed);
    assert_eq!(
        metrics_without_timing(&killed),
        metrics_without_timing(&whole.run_dir)
    );
    let layer_file = |run: &Path| std::fs::read_to_string(run.join("distill_layers.csv")).unwrap();
    assert_eq!(layer_file(&killed), layer_file(&whole.run_dir));
    assert_eq!(layer_file(&killed).lines().count(), 1 + 3 * 2);
    assert_eq!(untimed(&resumed.stages), untimed(&whole.stages));
    std::fs::remove_dir_all(&dir).ok();
}

const GLUE: &str = "name: glue-outputs
seed: 2
model:
  family: bert
  preset: all_minilm_l6_v2
  config: {vocab_size: VOCAB, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64}
task: {kind: glue, path: GLUE_ROOT, task: SST-2, max_length: 16, tokenizer: VOCAB_PATH}
stages:
  - {kind: train, steps: 2, batch_size: 4, optimizer: {kind: adamw, lr: 1.0e-3}}
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 4}}]
    steps: 3
    batch_size: 4
    log_every: 1
    loss: {output_mse: 1000, weight_kl: 1}
    optimizer: {kind: adamw, lr: 1.0e-2}
";

/// SST-2's sentences differ in length, so every batch pads: the padded rows are dropped from
/// both losses (their values are checked in the attention and models crates).
#[test]
fn bert_distils_padded_batches_on_outputs_and_kl() {
    let _turn = exclusive();
    let dir = temp("glue-outputs");
    let vocab = sample_vocab(&dir);
    let size = std::fs::read_to_string(&vocab).unwrap().lines().count();
    let text = GLUE
        .replace("VOCAB_PATH", &vocab.display().to_string())
        .replace("VOCAB", &size.to_string())
        .replace(
            "GLUE_ROOT",
            &workspace().join("data/samples/glue").display().to_string(),
        );
    let path = dir.join("spec.yaml");
    std::fs::write(&path, text).unwrap();
    let spec = Spec::load(&path, &[]).unwrap();
    let summary = run_one(&spec, &dir.join("results"), false);
    for row in stage_rows(&summary.run_dir, 1) {
        let (mse, kl) = (row.components["output_mse"], row.components["weight_kl"]);
        assert!(
            mse.is_finite() && mse > 0.0 && kl.is_finite() && kl >= 0.0,
            "{row:?}"
        );
        assert!(close(row.loss.unwrap(), 1000.0 * mse + kl));
    }
    let layers = summary.stages[1].layer_losses.clone().unwrap();
    assert_eq!(layers.layers, vec![0, 1]);
    assert_eq!(layers.components.len(), 2);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn misplaced_and_bad_loss_weights_are_clear_errors() {
    let dir = temp("bad-losses");
    for (overrides, expected) in [
        (
            &["stages.0.loss={weight_ce: 1}"][..],
            "stages.0 (train): `loss:` weighs the distillation losses and belongs to a distill stage",
        ),
        (
            &["stages.1.loss={output_mse: 0}"][..],
            "every loss weight is 0",
        ),
        (
            &["stages.1.loss.output_mse=-1"][..],
            "loss.output_mse is -1",
        ),
        (&["stages.1.loss={outputs_mse: 1}"][..], "outputs_mse"),
    ] {
        let err = corpus_spec(&dir, OUTPUTS, overrides).unwrap_err();
        assert!(err.contains(expected), "{overrides:?}: {err}");
    }
    // `--set` refuses a non-finite value itself; in the file it reaches the check.
    let nan = OUTPUTS.replace("output_mse: 1000", "output_mse: .nan");
    let err = corpus_spec(&dir, &nan, &[]).unwrap_err();
    assert!(err.contains("loss.output_mse is NaN"), "{err}");
    let typo = OUTPUTS.replace("output_mse: 1000", "output_mse: 1000, weight_xe: 1");
    let err = corpus_spec(&dir, &typo, &[]).unwrap_err();
    assert!(
        err.contains("weight_xe") && err.contains("line") && err.contains("weight_ce"),
        "a typo names the line and the allowed keys: {err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
