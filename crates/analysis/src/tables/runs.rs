//! Run folders: `results/<spec>/<run-id>/summary.json` read into [`RunRecord`]s.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::AnalysisError;

/// One stage of a run, as in `summary.json`. Fields the train crate adds later are ignored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageSummary {
    pub label: String,
    pub kind: StageKind,
    #[serde(default)]
    pub steps: usize,
    #[serde(default)]
    pub final_loss: Option<f64>,
    pub attention: String,
    /// Task metrics by name (`perplexity`, `accuracy`, `matthews`, `f1`, `pearson`, `spearman`,
    /// `top1`); a metric that came out NaN is written as null.
    #[serde(default)]
    pub metrics: BTreeMap<String, Option<f64>>,
    /// The key of `metrics` that tables use.
    #[serde(default)]
    pub headline: Option<String>,
    /// The table row this stage fills, if any.
    #[serde(default)]
    pub row: Option<String>,
    #[serde(default)]
    pub seconds: Option<f64>,
    #[serde(default)]
    pub stopped_early: bool,
    /// Path of this stage's `AttentionReport`, relative to the run folder.
    #[serde(default)]
    pub analysis: Option<String>,
}

/// What a stage did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Train,
    Distill,
    Finetune,
    Eval,
    Analyze,
    Passkey,
    /// A kind newer than this crate.
    #[serde(other)]
    Other,
}

/// A run's `summary.json`. Unknown fields are ignored, missing optional ones default, so
/// summaries from older or newer train crates still load (an old one without `finished` counts
/// as unfinished).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    #[serde(default)]
    pub run_dir: Option<PathBuf>,
    /// What "ours" means for this run, e.g. "MiniLM on the movie-review SST-2 stand-in".
    #[serde(default)]
    pub setting: Option<String>,
    /// The table id this run reports to (see [`TABLE_IDS`](super::TABLE_IDS)).
    #[serde(default)]
    pub report_table: Option<String>,
    /// The sweep point (dotted key → value).
    #[serde(default)]
    pub sweep: Option<serde_json::Value>,
    #[serde(default)]
    pub parameters: Option<u64>,
    #[serde(default)]
    pub finished: bool,
    /// For GLUE runs: which task ("CoLA", "SST-2", …).
    #[serde(default)]
    pub glue_task: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageSummary>,
}

/// One run folder with a `summary.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRecord {
    /// The spec folder name.
    pub spec: String,
    /// The run folder name, e.g. `run-007`.
    pub run_id: String,
    pub dir: PathBuf,
    /// When `summary.json` was last written.
    pub modified: Option<SystemTime>,
    pub summary: RunSummary,
}

impl RunRecord {
    /// Newer runs sort later: run number (digits of the run id), then the id, then file time.
    pub(super) fn age_key(&self) -> (Option<u64>, &str, Option<SystemTime>) {
        let digits: String = self.run_id.chars().filter(char::is_ascii_digit).collect();
        (digits.parse().ok(), &self.run_id, self.modified)
    }

    pub(super) fn name(&self) -> String {
        format!("{}/{}", self.spec, self.run_id)
    }
}

/// Reads every `results_dir/<spec>/<run-id>/summary.json`, sorted by spec and run id. Folders
/// without a `summary.json` (runs still going, `results/bench`) are passed over.
pub fn collect_runs(results_dir: &Path) -> Result<Vec<RunRecord>, AnalysisError> {
    let mut runs = Vec::new();
    for spec_dir in sorted_subdirs(results_dir)? {
        for run_dir in sorted_subdirs(&spec_dir)? {
            let path = run_dir.join("summary.json");
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(AnalysisError::io(&path))?;
            let summary = serde_json::from_str(&text).map_err(|source| AnalysisError::Json {
                path: path.clone(),
                what: "run summary",
                source,
            })?;
            let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            runs.push(RunRecord {
                spec: file_name(&spec_dir),
                run_id: file_name(&run_dir),
                dir: run_dir,
                modified,
                summary,
            });
        }
    }
    Ok(runs)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

fn sorted_subdirs(dir: &Path) -> Result<Vec<PathBuf>, AnalysisError> {
    let entries = std::fs::read_dir(dir).map_err(AnalysisError::io(dir))?;
    let mut dirs = Vec::new();
    for entry in entries {
        let entry = entry.map_err(AnalysisError::io(dir))?;
        // `results/<spec>/latest` is a link to a run folder: counting it would count a run twice.
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        let path = entry.path();
        if path.is_dir() && !is_link {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs)
}
