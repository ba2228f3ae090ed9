//! Helpers the pipeline tests share: one run at a time, temporary folders, and run outputs
//! without their timings.

#![allow(dead_code)] // each test file uses its own subset

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hedgehog_train::metrics::{MetricsLog, MetricsRow};
use hedgehog_train::{Spec, StageResult};

/// burn's ndarray RNG is process-global: runs in parallel test threads would draw from it in
/// interleaved order, so the tests that run models take turns.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh, empty temporary folder named after the test.
pub fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-train-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tiny WikiText-format corpus, `<dir>/corpus` (six copies of a passage to train on, two to
/// validate on).
pub fn write_corpus(dir: &Path) -> PathBuf {
    let corpus = dir.join("corpus");
    std::fs::create_dir_all(&corpus).unwrap();
    let text = " = Hedgehogs = \n The hedgehog is a small mammal covered in spines . It eats insects and worms . \n It rolls into a ball when threatened . \n";
    for (split, copies) in [("train", 6), ("valid", 2)] {
        let path = corpus.join(format!("wiki.{split}.tokens"));
        std::fs::write(path, text.repeat(copies)).unwrap();
    }
    corpus
}

/// `template` with [`write_corpus`]'s corpus as `CORPUS`, `<dir>/cache` as `CACHE` and each
/// `(key, value)` of `fill` replaced, written to `<dir>/spec.yaml` and loaded with `overrides`.
pub fn corpus_spec_filled(
    dir: &Path,
    template: &str,
    fill: &[(&str, String)],
    overrides: &[&str],
) -> Result<Spec, String> {
    let corpus = write_corpus(dir);
    let mut spec = template
        .replace("CORPUS", &corpus.display().to_string())
        .replace("CACHE", &dir.join("cache").display().to_string());
    for (key, value) in fill {
        spec = spec.replace(key, value);
    }
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).unwrap();
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    Spec::load(&path, &overrides).map_err(|e| e.to_string())
}

/// [`corpus_spec_filled`] with nothing else to fill.
pub fn corpus_spec(dir: &Path, template: &str, overrides: &[&str]) -> Result<Spec, String> {
    corpus_spec_filled(dir, template, &[], overrides)
}

/// The `metrics.csv` rows of one stage.
pub fn stage_rows(run_dir: &Path, stage: usize) -> Vec<MetricsRow> {
    MetricsLog::read(&run_dir.join("metrics.csv"))
        .unwrap()
        .into_iter()
        .filter(|row| row.stage == stage)
        .collect()
}

/// Stage results without their wall-clock seconds.
pub fn untimed(stages: &[StageResult]) -> Vec<StageResult> {
    stages
        .iter()
        .cloned()
        .map(|mut s| {
            s.seconds = 0.0;
            s
        })
        .collect()
}

/// `metrics.csv` lines without the machine-dependent throughput column.
pub fn metrics_without_timing(run_dir: &Path) -> Vec<String> {
    std::fs::read_to_string(run_dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|line| {
            let mut fields: Vec<&str> = line.split(',').collect();
            fields.remove(6); // tokens_per_second
            fields.join(",")
        })
        .collect()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A WordPiece vocabulary holding the specials and every word of the SST-2 sample.
pub fn sample_vocab(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(workspace().join("data/samples/glue/SST-2/train.tsv"))
        .unwrap()
        + &std::fs::read_to_string(workspace().join("data/samples/glue/SST-2/dev.tsv")).unwrap();
    let words: BTreeSet<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let mut vocab = vec!["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    vocab.extend(words);
    let path = dir.join("vocab.txt");
    std::fs::write(&path, vocab.join("\n") + "\n").unwrap();
    path
}
