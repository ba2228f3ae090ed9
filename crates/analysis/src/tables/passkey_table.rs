//! The passkey table: every finished run's passkey stages, accuracy per prompt length, one row
//! per (run, stage), from the `analysis/passkey-stage-N.json` the stage wrote.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::{Column, DataFrame};
use serde::Deserialize;

use super::format::{NOT_AVAILABLE, csv_text, table_error};
use super::runs::{RunRecord, StageKind};
use crate::AnalysisError;

/// The id (file stem) of the passkey table that [`write_tables`](super::write_tables) writes.
pub const PASSKEY_TABLE_ID: &str = "passkey";

/// The parts of a passkey stage's report the tables and figures read (hedgehog-train's
/// `stage/passkey.rs` writes it; unknown fields are ignored).
#[derive(Clone, Debug, Deserialize)]
pub struct PasskeyReport {
    pub attention: String,
    /// The passkey stage's label (e.g. "zero-shot"); the figures filter on it.
    #[serde(default)]
    pub label: String,
    pub lengths: Vec<usize>,
    pub depths: Vec<f64>,
    /// Mean accuracy over depths and trials, by length (JSON keys are the lengths as text).
    pub length_accuracy: BTreeMap<String, f64>,
    pub cells: Vec<PasskeyCell>,
    #[serde(default)]
    pub speed: Vec<PasskeySpeed>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PasskeyCell {
    pub length: usize,
    pub depth: f64,
    pub accuracy: f64,
}

#[derive(Clone, Debug, Deserialize)]
pub struct PasskeySpeed {
    pub length: usize,
    pub ms_per_token: Option<f64>,
    /// The decoding cache right after the prompt: what the context length costs, before any
    /// generated token (absent from reports written before it was measured).
    #[serde(default)]
    pub cache_bytes_after_prefill: Option<usize>,
    pub cache_bytes: usize,
}

impl PasskeyReport {
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let text = std::fs::read_to_string(path).map_err(AnalysisError::io(path))?;
        serde_json::from_str(&text).map_err(|source| AnalysisError::Json {
            path: path.to_path_buf(),
            what: "passkey report",
            source,
        })
    }
}

/// Every passkey stage of every finished run of `spec` (all specs when `None`), in run
/// order, with the run's name.
pub fn passkey_reports(
    runs: &[RunRecord],
    spec: Option<&str>,
) -> Result<Vec<(String, PasskeyReport)>, AnalysisError> {
    let mut reports = Vec::new();
    for run in runs
        .iter()
        .filter(|r| r.summary.finished && spec.is_none_or(|s| r.spec == s))
    {
        for stage in &run.summary.stages {
            if let (StageKind::Passkey, Some(relative)) = (stage.kind, &stage.analysis) {
                reports.push((run.name(), PasskeyReport::load(&run.dir.join(relative))?));
            }
        }
    }
    Ok(reports)
}

/// Accuracy by prompt length (columns: every length any run measured) for each attention, with
/// the run folder it comes from; markdown and CSV (through polars).
pub fn passkey_table(runs: &[RunRecord]) -> Result<(String, String), AnalysisError> {
    let reports = passkey_reports(runs, None)?;
    let mut lengths: Vec<usize> = reports
        .iter()
        .flat_map(|(_, r)| r.lengths.clone())
        .collect();
    lengths.sort_unstable();
    lengths.dedup();
    let accuracy = |report: &PasskeyReport, length: usize| {
        report.length_accuracy.get(&length.to_string()).copied()
    };
    let mut md = String::from(
        "### Passkey retrieval by prompt length (`passkey`)\n\n\
         Exact-match accuracy of a five-digit key hidden in corpus text, averaged over the \
         depths and trials of each length (per depth: the run's `analysis/passkey-stage-N.json` \
         and `just plots`).\n\n",
    );
    let headers: Vec<String> = ["attention".to_string(), "run".to_string()]
        .into_iter()
        .chain(lengths.iter().map(|l| format!("{l} tokens")))
        .collect();
    md.push_str(&format!("| {} |\n", headers.join(" | ")));
    md.push_str(&format!("|---|---|{}\n", "---:|".repeat(lengths.len())));
    for (run, report) in &reports {
        let cells: Vec<String> = lengths
            .iter()
            .map(|&l| {
                accuracy(report, l).map_or_else(|| NOT_AVAILABLE.to_string(), |a| format!("{a:.2}"))
            })
            .collect();
        md.push_str(&format!(
            "| {} | {run} | {} |\n",
            report.attention,
            cells.join(" | ")
        ));
    }
    if reports.is_empty() {
        md.push_str("\nNo finished run has a passkey stage yet.\n");
    }
    let mut columns = vec![
        Column::new(
            "attention".into(),
            reports
                .iter()
                .map(|(_, r)| r.attention.clone())
                .collect::<Vec<_>>(),
        ),
        Column::new(
            "run".into(),
            reports.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        ),
    ];
    for (&length, header) in lengths.iter().zip(&headers[2..]) {
        let values: Vec<Option<f64>> = reports.iter().map(|(_, r)| accuracy(r, length)).collect();
        columns.push(Column::new(header.as_str().into(), values));
    }
    let mut frame =
        DataFrame::new(reports.len(), columns).map_err(|e| table_error(PASSKEY_TABLE_ID, e))?;
    Ok((md, csv_text(&mut frame, PASSKEY_TABLE_ID)?))
}
