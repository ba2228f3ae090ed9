//! End to end on tiny sizes: specs validate or fail with the documented messages; a run writes
//! its folder; an interrupted run resumed from its checkpoint reproduces the uninterrupted
//! metrics exactly.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use hedgehog_train::{RunOptions, RunSummary, Spec, run};

mod common;

use common::{copy_dir, exclusive, metrics_without_timing, temp, untimed, workspace, write_corpus};

type B = Autodiff<NdArray<f32>>;

#[test]
fn every_committed_spec_validates() {
    let dir = workspace().join("experiments");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Spec::load(&path, &[]).unwrap_or_else(|e| panic!("{e}"));
            count += 1;
        }
    }
    assert!(count >= 1, "no specs in {}", dir.display());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

const TINY: &str = "name: tiny
seed: 3
model: {family: gpt2, preset: gpt2_tiny}
task: {kind: language_modeling, path: CORPUS, context: 16, cache: CACHE}
checkpoint: {every: 3, keep: 10}
stages:
  - kind: train
    steps: 6
    batch_size: 2
    optimizer: {kind: adamw, lr: 3.0e-3}
    schedule: {kind: cosine, warmup_steps: 2}
    clip: 1.0
    eval_every: 3
  - kind: distill
    attention: [{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 8}}]
    steps: 2
    batch_size: 2
    optimizer: {kind: adamw, lr: 1.0e-2}
  - kind: eval
";

fn tiny_spec(dir: &Path) -> PathBuf {
    let corpus = write_corpus(dir);
    let spec = TINY
        .replace("CORPUS", &corpus.display().to_string())
        .replace("CACHE", &dir.join("cache").display().to_string());
    write(dir, "tiny.yaml", &spec)
}

/// The run folders under `dir` (none when it does not exist).
fn run_folders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Runs a spec without a sweep.
fn run_one(spec: &Spec, options: &RunOptions) -> Result<RunSummary, hedgehog_train::RunError> {
    let mut summaries = run::<B>(spec, options, &[Default::default()])?;
    assert_eq!(summaries.len(), 1);
    Ok(summaries.remove(0))
}

#[test]
fn a_run_writes_its_folder_and_resume_reproduces_the_uninterrupted_metrics() {
    let _turn = exclusive();
    let dir = temp("resume");
    let spec_path = tiny_spec(&dir);
    let spec = Spec::load(&spec_path, &[]).unwrap();
    let options = |results: &Path, resume| RunOptions {
        results_dir: results.to_path_buf(),
        resume,
        verbose: false,
        confirmed: false,
    };
    let whole = run_one(&spec, &options(&dir.join("whole"), false)).unwrap();
    let run_dir = whole.run_dir.clone();
    for file in ["spec.yaml", "metrics.csv", "summary.json"] {
        assert!(run_dir.join(file).exists(), "{file} written");
    }
    assert_eq!(whole.stages.len(), 3);
    assert!(whole.stages[2].metrics["perplexity"].is_finite());
    assert!(whole.finished);
    let expected = metrics_without_timing(&run_dir);
    assert_eq!(
        expected.len(),
        1 + 6 + 2 + 1,
        "header + one row per step + eval"
    );

    // Interrupt: the same run killed after step 3 has only the step-3 checkpoint.
    let killed = dir.join("killed");
    std::fs::create_dir_all(killed.join("tiny")).unwrap();
    copy_dir(&run_dir, &killed.join("tiny/run-001"));
    let interrupted = killed.join("tiny/run-001");
    for entry in std::fs::read_dir(interrupted.join("checkpoints")).unwrap() {
        let path = entry.unwrap().path();
        if !path.ends_with("step-0000003") {
            std::fs::remove_dir_all(path).unwrap();
        }
    }
    std::fs::remove_file(interrupted.join("summary.json")).unwrap();
    let resumed = run_one(&spec, &options(&killed, true)).unwrap();
    assert_eq!(resumed.run_dir, interrupted);
    assert_eq!(
        metrics_without_timing(&interrupted),
        expected,
        "resumed metrics equal the uninterrupted run's"
    );
    assert_eq!(
        untimed(&resumed.stages),
        untimed(&whole.stages),
        "same losses and perplexities per stage"
    );
    assert_eq!(resumed.parameters, whole.parameters);

    // Interrupted after the distill stage: its checkpoint already holds the feature maps, and
    // the summary still counts what the uninterrupted run's does.
    let late = dir.join("late");
    std::fs::create_dir_all(late.join("tiny")).unwrap();
    copy_dir(&run_dir, &late.join("tiny/run-001"));
    let interrupted = late.join("tiny/run-001");
    let mut checkpoints: Vec<_> = std::fs::read_dir(interrupted.join("checkpoints"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    checkpoints.sort();
    for path in &checkpoints[..checkpoints.len() - 1] {
        std::fs::remove_dir_all(path).unwrap();
    }
    std::fs::remove_file(interrupted.join("summary.json")).unwrap();
    let resumed = run_one(&spec, &options(&late, true)).unwrap();
    assert_eq!(untimed(&resumed.stages), untimed(&whole.stages));
    assert_eq!(resumed.parameters, whole.parameters);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let _turn = exclusive();
    let dir = temp("seed");
    let spec_path = tiny_spec(&dir);
    let spec = Spec::load(
        &spec_path,
        &["stages=[{kind: train, steps: 2, batch_size: 2}]".into()],
    )
    .unwrap();
    let options = |results: &str| RunOptions {
        results_dir: dir.join(results),
        resume: false,
        verbose: false,
        confirmed: false,
    };
    let first = run_one(&spec, &options("a")).unwrap();
    let second = run_one(&spec, &options("b")).unwrap();
    assert_eq!(
        metrics_without_timing(&first.run_dir),
        metrics_without_timing(&second.run_dir)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_specs_fail_with_the_documented_messages() {
    let _turn = exclusive();
    let dir = temp("bad");
    let spec_path = tiny_spec(&dir);
    let text = std::fs::read_to_string(&spec_path).unwrap();

    let unknown = write(
        &dir,
        "unknown.yaml",
        &text.replace("seed: 3", "seed: 3\nsede: 4"),
    );
    let err = Spec::load(&unknown, &[]).unwrap_err().to_string();
    assert!(
        err.contains("sede") && err.contains("line"),
        "unknown key: {err}"
    );

    let wrong_type = write(&dir, "type.yaml", &text.replace("steps: 6", "steps: six"));
    let err = Spec::load(&wrong_type, &[]).unwrap_err().to_string();
    assert!(err.contains("line"), "wrong type: {err}");

    let bad_kind = write(
        &dir,
        "kind.yaml",
        &text.replace("kind: distill", "kind: distil"),
    );
    let err = Spec::load(&bad_kind, &[]).unwrap_err().to_string();
    assert!(
        err.contains("distill") && err.contains("train"),
        "lists the allowed values: {err}"
    );

    let err = Spec::load(&spec_path, &["stages.0.steps=0".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("give positive steps or epochs"), "{err}");
    let err = Spec::load(&spec_path, &["stages.9.steps=1".into()])
        .unwrap_err()
        .to_string();
    assert!(err.contains("index 9"), "{err}");
    let short_cosformer =
        "stages.1.attention=[{kind: linear, feature_map: {kind: cosformer, max_len: 8}}]";
    let err = Spec::load(&spec_path, &[short_cosformer.into()])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stages.1.attention.0") && err.contains("max_len 8") && err.contains("16"),
        "{err}"
    );
    let long_enough = short_cosformer.replace("max_len: 8", "max_len: 16");
    Spec::load(&spec_path, &[long_enough]).unwrap();

    let missing = Spec::load(&spec_path, &["task.path=/nowhere/wikitext-103".into()]).unwrap();
    let options = RunOptions {
        results_dir: dir.join("results"),
        resume: false,
        verbose: false,
        confirmed: false,
    };
    let err = run_one(&missing, &options).unwrap_err().to_string();
    assert!(
        err.contains("/nowhere/wikitext-103") && err.contains("just fetch-data"),
        "{err}"
    );
    let err = run_one(
        &Spec::load(&spec_path, &[]).unwrap(),
        &RunOptions {
            resume: true,
            results_dir: dir.join("none"),
            verbose: false,
            confirmed: false,
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no earlier run"), "{err}");

    // Corrupt pretrained weights: the run stops with the file's problem and leaves no empty
    // run folder behind.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/gpt2");
    let corrupt = dir.join("corrupt-gpt2");
    std::fs::create_dir_all(&corrupt).unwrap();
    std::fs::copy(fixture.join("config.json"), corrupt.join("config.json")).unwrap();
    let weights = std::fs::read(fixture.join("model.safetensors")).unwrap();
    std::fs::write(
        corrupt.join("model.safetensors"),
        &weights[..weights.len() / 2],
    )
    .unwrap();
    let corrupt_spec = write(
        &dir,
        "corrupt.yaml",
        &text.replace(
            "preset: gpt2_tiny",
            &format!("pretrained: {}", corrupt.display()),
        ),
    );
    let spec = Spec::load(&corrupt_spec, &[]).unwrap();
    let results = dir.join("corrupt-results");
    let options = RunOptions {
        results_dir: results.clone(),
        resume: false,
        verbose: false,
        confirmed: false,
    };
    let err = run_one(&spec, &options).unwrap_err().to_string();
    assert!(err.contains("not a valid safetensors file"), "{err}");
    let runs = run_folders(&results.join("tiny"));
    assert!(runs.is_empty(), "left behind: {runs:?}");

    // Past a day of compute (at any matrix rate this machine has), a fresh run waits for
    // `--yes`, names the CPU-scale spec and leaves no run folder.
    let huge = Spec::load(
        &spec_path,
        &[
            "stages.0.steps=1000000000000".into(),
            "cpu_scale=experiments/lm_scratch_cpu.yaml".into(),
        ],
    )
    .unwrap();
    let results = dir.join("huge-results");
    let options = RunOptions {
        results_dir: results.clone(),
        resume: false,
        verbose: false,
        confirmed: false,
    };
    let err = run_one(&huge, &options).unwrap_err().to_string();
    assert!(
        err.contains("--yes") && err.contains("hedgehog run experiments/lm_scratch_cpu.yaml"),
        "{err}"
    );
    let runs = run_folders(&results.join("tiny"));
    assert!(runs.is_empty(), "left behind: {runs:?}");
    std::fs::remove_dir_all(&dir).ok();
}
