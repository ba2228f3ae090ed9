//! The run-folder parsers on damaged copies of real files (`hedgehog-fuzz`): every committed
//! YAML spec, and a run folder's checkpoint files, `metrics.csv`, `progress` and `spec.yaml` as
//! `--resume` reads them. Damage must be an error (or a fresh start), never a panic, a hang or
//! an allocation sized by a corrupt length field (capped at 1 GiB here). `just fuzz` runs each
//! target for minutes instead of the suite's cases.

use std::path::{Path, PathBuf};

use burn::backend::{Autodiff, NdArray};
use hedgehog_fuzz::{CappedAllocator, fuzz};
use hedgehog_train::{RunOptions, Spec, run};

mod common;

use common::{copy_dir, corpus_spec, exclusive, temp, workspace};

type B = Autodiff<NdArray<f32>>;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator { limit: 1 << 30 };

#[test]
fn damaged_specs_are_errors() {
    let mut corpus = Vec::new();
    for entry in std::fs::read_dir(workspace().join("experiments")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            corpus.push(std::fs::read(&path).unwrap());
        }
    }
    corpus.sort();
    let dir = temp("fuzz-specs");
    fuzz("spec-yaml", corpus, 2000, move |bytes| {
        let path = dir.join("spec.yaml");
        std::fs::write(&path, bytes).unwrap();
        if let Ok(spec) = Spec::load(&path, &[]) {
            let _ = spec.expand();
        }
    });
}

const TINY: &str = "name: tiny
seed: 3
model: {family: gpt2, preset: gpt2_tiny}
task: {kind: language_modeling, path: CORPUS, context: 16, cache: CACHE}
checkpoint: {every: 2, keep: 10}
stages:
  - kind: train
    steps: 4
    batch_size: 2
    optimizer: {kind: adamw, lr: 3.0e-3}
  - kind: eval
";

/// Every file of `dir`, recursively, relative to it.
fn files(dir: &Path, under: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path, under));
        } else {
            found.push(path.strip_prefix(under).unwrap().to_path_buf());
        }
    }
    found.sort();
    found
}

#[test]
fn a_damaged_run_folder_is_an_error_on_resume() {
    let _turn = exclusive();
    let dir = temp("fuzz-resume");
    let spec = corpus_spec(&dir, TINY, &[]).unwrap();
    let options = |results: &Path, resume| RunOptions {
        results_dir: results.to_path_buf(),
        resume,
        verbose: false,
        confirmed: false,
    };
    let pristine = dir.join("pristine");
    let summary = run::<B>(&spec, &options(&pristine, false), &[Default::default()])
        .unwrap()
        .remove(0);
    // Unfinished again: resume then loads the last checkpoint and runs the eval stage.
    std::fs::remove_file(summary.run_dir.join("summary.json")).unwrap();
    let _ = std::fs::remove_dir_all(summary.run_dir.join("final"));
    let run_name = summary
        .run_dir
        .strip_prefix(&pristine)
        .unwrap()
        .to_path_buf();
    let targets: Vec<PathBuf> = files(&summary.run_dir, &summary.run_dir)
        .into_iter()
        .filter(|f| !f.ends_with("log.txt"))
        .collect();
    assert!(targets.len() >= 4, "{targets:?}");
    for target in targets {
        let original = std::fs::read(summary.run_dir.join(&target)).unwrap();
        let (pristine, spec) = (pristine.clone(), spec.clone());
        let (work, run_name) = (dir.join("work"), run_name.clone());
        let name = format!(
            "run-folder-{}",
            target.display().to_string().replace('/', "-")
        );
        fuzz(&name, vec![original], 5, move |bytes| {
            let _ = std::fs::remove_dir_all(&work);
            copy_dir(&pristine, &work);
            std::fs::write(work.join(&run_name).join(&target), bytes).unwrap();
            let _ = run::<B>(&spec, &options(&work, true), &[Default::default()]);
        });
    }
    std::fs::remove_dir_all(&dir).ok();
}
