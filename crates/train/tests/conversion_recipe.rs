//! The later conversion recipe's two stage options on a tiny pretrained GPT-2 (trained here,
//! exported by its run): a finetune stage's `logit_distillation:` (KL to the frozen softmax
//! model's next-token distributions, mixed with the LM loss) and a distill stage's
//! `keep_softmax:` (the layers distilled worst get softmax back, chosen from measured losses,
//! recorded in `softmax_layers.json`, restored on resume and from the exported model).

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use hedgehog_train::{RunOptions, RunSummary, Spec, run};

mod common;

use common::{
    copy_dir, corpus_spec_filled, exclusive, metrics_without_timing, stage_rows, temp, untimed,
};

type B = Autodiff<NdArray<f32>>;

const PRETRAIN: &str = "name: pretrain
seed: 3
model:
  family: gpt2
  preset: gpt2_tiny
  config: {n_layer: 3, resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}
task: {kind: language_modeling, path: CORPUS, context: 16, cache: CACHE}
stages:
  - {kind: train, steps: 6, batch_size: 2, optimizer: {kind: adamw, lr: 3.0e-3}}
";

const CONVERT: &str = "name: convert
seed: 4
model: {family: gpt2, pretrained: PRETRAINED}
task: {kind: language_modeling, path: CORPUS, context: 16, cache: CACHE}
checkpoint: {every: 3, keep: 10}
stages:
  - kind: finetune
    label: own-teacher
    steps: 2
    batch_size: 2
    log_every: 1
    logit_distillation: {kl: 1, lm: 0.5}
    optimizer: {kind: adamw, lr: 1.0e-3}
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 8}}]
    steps: 4
    batch_size: 2
    keep_softmax: {layers: 1, batches: 3}
    optimizer: {kind: adamw, lr: 1.0e-2}
  - kind: finetune
    label: logits
    steps: 4
    batch_size: 2
    log_every: 1
    logit_distillation: {kl: 1}
    optimizer: {kind: adamw, lr: 3.0e-4}
  - {kind: eval, row: \"{attention}\"}
";

fn run_one(spec: &Spec, results: &Path, resume: bool) -> Result<RunSummary, String> {
    let options = RunOptions {
        results_dir: results.to_path_buf(),
        resume,
        verbose: false,
        confirmed: false,
    };
    run::<B>(spec, &options, &[Default::default()])
        .map(|mut summaries| summaries.remove(0))
        .map_err(|e| e.to_string())
}

/// The pretrained model the conversion specs start from: `<dir>/pretrain/.../final`.
fn pretrained(dir: &Path) -> PathBuf {
    let spec = corpus_spec_filled(dir, PRETRAIN, &[], &[]).unwrap();
    run_one(&spec, &dir.join("pretrain"), false)
        .unwrap()
        .run_dir
        .join("final")
}

fn convert_spec(dir: &Path, model: &Path, overrides: &[&str]) -> Result<Spec, String> {
    corpus_spec_filled(
        dir,
        CONVERT,
        &[("PRETRAINED", model.display().to_string())],
        overrides,
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-5 * a.abs().max(b.abs()).max(1e-3)
}

#[test]
fn logit_distillation_and_keep_softmax_convert_a_pretrained_model_and_resume_exactly() {
    let _turn = exclusive();
    let dir = temp("conversion-recipe");
    let model = pretrained(&dir);
    let spec = convert_spec(&dir, &model, &[]).unwrap();
    let whole = run_one(&spec, &dir.join("whole"), false).unwrap();
    let run_dir = &whole.run_dir;

    // A softmax student of its own teacher: the first step's KL is 0 (same weights, no
    // dropout), and its LM part is the plain finetune's loss on the same batch.
    let own = stage_rows(run_dir, 0);
    assert_eq!(own.len(), 2);
    let first = &own[0];
    assert!(first.components["logit_kl"].abs() < 1e-6, "{first:?}");
    let plain = CONVERT.replace("    logit_distillation: {kl: 1, lm: 0.5}\n", "");
    let fill = [("PRETRAINED", model.display().to_string())];
    let plain = corpus_spec_filled(&dir, &plain, &fill, &[]).unwrap();
    let plain = run_one(&plain, &dir.join("plain"), false).unwrap();
    let plain_first = stage_rows(&plain.run_dir, 0)[0].loss.unwrap();
    assert!(
        close(first.components["lm"], plain_first),
        "{first:?} vs {plain_first}"
    );
    for row in &own {
        let weighted = row.components["logit_kl"] + 0.5 * row.components["lm"];
        assert!(
            close(row.loss.unwrap(), weighted),
            "loss = kl + 0.5 lm: {row:?}"
        );
    }
    assert!(
        own[1].components["logit_kl"] > 0.0,
        "after a step the student has moved off its teacher"
    );

    // keep_softmax: three layers measured, the worst one back to softmax.
    let text = std::fs::read_to_string(run_dir.join("softmax_layers.json")).unwrap();
    let record: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ranking = record["ranking"].as_array().unwrap();
    assert_eq!(ranking.len(), 3, "{text}");
    let losses: Vec<f64> = ranking
        .iter()
        .map(|l| l["loss"].as_f64().unwrap())
        .collect();
    assert!(
        losses.windows(2).all(|w| w[0] >= w[1]),
        "highest first: {losses:?}"
    );
    assert!(losses.iter().all(|l| l.is_finite() && *l > 0.0));
    let worst = ranking[0]["layer"].as_u64().unwrap() as usize;
    assert_eq!(record["softmax_layers"], serde_json::json!([worst]));
    assert_eq!(record["stage"], 1);
    let distill = &whole.stages[1];
    assert_eq!(distill.softmax_layers, Some(vec![worst]));
    assert!(
        distill
            .attention
            .ends_with(&format!("softmax in layer {worst}")),
        "{}",
        distill.attention
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("final/config.json")).unwrap())
            .unwrap();
    let attention = config["hedgehog_attention"].as_array().unwrap();
    assert_eq!(attention.len(), 3, "one entry per layer");
    for (layer, entry) in attention.iter().enumerate() {
        assert_eq!(
            entry["kind"] == "softmax",
            layer == worst,
            "layer {layer}: {entry}"
        );
    }
    let eval = &whole.stages[3];
    assert_eq!(eval.row.as_deref(), Some(distill.attention.as_str()));
    assert!(eval.headline_value().unwrap().is_finite());
    // The hybrid loads back from `final/` (softmax layer, trained maps) and scores the same.
    let reload = CONVERT.split("stages:").next().unwrap().to_string() + "stages: [{kind: eval}]\n";
    let fill = [("PRETRAINED", run_dir.join("final").display().to_string())];
    let reload = corpus_spec_filled(&dir, &reload, &fill, &[]).unwrap();
    let reloaded = run_one(&reload, &dir.join("reload"), false).unwrap();
    assert_eq!(reloaded.stages[0].attention, distill.attention);
    assert_eq!(reloaded.stages[0].headline_value(), eval.headline_value());

    // The converted model distils its logits: KL only, and it falls below the same stage's
    // with the weights held still (same batches; each batch's KL differs more than a step's
    // learning changes it, so the control, not the first step, is the comparison).
    let logits = stage_rows(run_dir, 2);
    assert!(
        logits
            .iter()
            .all(|r| close(r.loss.unwrap(), r.components["logit_kl"]))
    );
    assert!(!logits[0].components.contains_key("lm"));
    let still = convert_spec(&dir, &model, &["stages.2.optimizer.lr=1.0e-9"]).unwrap();
    let still = stage_rows(
        &run_one(&still, &dir.join("still"), false).unwrap().run_dir,
        2,
    );
    assert!(
        close(logits[0].loss.unwrap(), still[0].loss.unwrap()),
        "the same first step"
    );
    for step in 2..4 {
        let (trained, held) = (logits[step].loss.unwrap(), still[step].loss.unwrap());
        assert!(
            trained < 0.9 * held,
            "step {}: KL {trained} vs {held} held still",
            step + 1
        );
    }

    // Killed inside the distillation, after its third step (global step 5, checkpointed before
    // the choice): the resumed run measures and chooses the same layer.
    let killed = dir.join("killed/convert/run-001");
    copy_dir(run_dir, &killed);
    std::fs::remove_file(killed.join("summary.json")).unwrap();
    std::fs::remove_file(killed.join("softmax_layers.json")).unwrap();
    std::fs::remove_dir_all(killed.join("final")).unwrap();
    let keep = killed.join("checkpoints/step-0000005");
    assert!(keep.exists());
    for entry in std::fs::read_dir(killed.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if path != keep {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    let resumed = run_one(&spec, &dir.join("killed"), true).unwrap();
    assert_eq!(resumed.run_dir, killed);
    let record_of = |run: &Path| std::fs::read_to_string(run.join("softmax_layers.json")).unwrap();
    assert_eq!(record_of(&killed), record_of(run_dir));
    assert_eq!(
        metrics_without_timing(&killed),
        metrics_without_timing(run_dir)
    );
    assert_eq!(untimed(&resumed.stages), untimed(&whole.stages));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn misplaced_recipe_options_are_clear_errors() {
    let _turn = exclusive();
    let dir = temp("recipe-errors");
    let model = dir.join("no-model");
    for (overrides, expected) in [
        (
            &["stages.1.logit_distillation={kl: 1}"][..],
            "stages.1 (distill): `logit_distillation:` is a train or finetune stage's loss",
        ),
        (
            &["stages.0.keep_softmax={layers: 1}"][..],
            "stages.0 (finetune): `keep_softmax:` chooses layers by their distillation loss",
        ),
        (
            &["stages.1.keep_softmax.layers=0"][..],
            "keep_softmax needs layers ≥ 1",
        ),
        (
            &["stages.0.logit_distillation.kl=0"][..],
            "logit_distillation.kl is 0",
        ),
        (&["stages.1.keep_softmax.layer=1"][..], "layer"),
    ] {
        let err = convert_spec(&dir, &model, overrides).unwrap_err();
        assert!(err.contains(expected), "{overrides:?}: {err}");
    }
    // A teacher needs pretrained weights.
    let scratch = CONVERT.replace(
        "{family: gpt2, pretrained: PRETRAINED}",
        "{family: gpt2, preset: gpt2_tiny}",
    );
    let err = corpus_spec_filled(&dir, &scratch, &[], &[]).unwrap_err();
    assert!(err.contains("model has no `pretrained` weights"), "{err}");
    // Keeping every linear layer softmax converts nothing: refused when the stage ends.
    let model = pretrained(&dir);
    let all = convert_spec(
        &dir,
        &model,
        &["stages.1.keep_softmax.layers=3", "stages.1.steps=1"],
    )
    .unwrap();
    let err = run_one(&all, &dir.join("all"), false).unwrap_err();
    assert!(
        err.contains("keep_softmax.layers is 3 but only 3 layers are linear"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
