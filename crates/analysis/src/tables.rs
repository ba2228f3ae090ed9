//! The paper's tables next to our runs: `results/<spec>/<run-id>/summary.json` → markdown and CSV.
//!
//! Each table has the paper's rows with a "paper" and an "ours" value per column. A run names its
//! table in `report_table` and contributes rows (see [`RunSummary`]); a run row matches a paper
//! row when its label equals the paper's, or starts with it followed by `" ("` (so
//! "Hedgehog (softmax_split)" fills "Hedgehog"). Rows only we have are listed after the paper's.
//! When several runs fill the same cell, the newest wins: the largest run number, then the latest
//! `summary.json` modification time.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use polars::prelude::{Column, CsvWriter, DataFrame, SerWriter};
use serde::{Deserialize, Serialize};

use crate::AnalysisError;

/// What a missing cell says.
pub const NOT_AVAILABLE: &str = "not available";

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
    /// The table id this run reports to (see [`TABLE_IDS`]).
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
    fn age_key(&self) -> (Option<u64>, &str, Option<SystemTime>) {
        let digits: String = self.run_id.chars().filter(char::is_ascii_digit).collect();
        (digits.parse().ok(), &self.run_id, self.modified)
    }

    fn name(&self) -> String {
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

/// A paper row: its label and its value per column (None: the paper has no number).
struct PaperRow {
    label: &'static str,
    values: &'static [Option<f64>],
    /// The paper's own name for the row where it differs from ours.
    paper_name: Option<&'static str>,
}

/// A table layout: id, caption, columns, and the paper's rows.
struct TableSpec {
    id: &'static str,
    title: &'static str,
    /// The metric and its direction, shown in the caption.
    metric: &'static str,
    decimals: usize,
    columns: &'static [&'static str],
    /// Header of a derived "row vs softmax" column: the ratio of the row's mean to softmax's mean
    /// over the columns both have, × 100 (for one column, simply row / softmax × 100).
    relative: Option<&'static str>,
    rows: &'static [PaperRow],
    notes: &'static [&'static str],
}

const fn row(label: &'static str, values: &'static [Option<f64>]) -> PaperRow {
    PaperRow {
        label,
        values,
        paper_name: None,
    }
}

const GLUE_TASKS: &[&str] = &[
    "CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE",
];

/// The paper's numbers, as transcribed in shared/docs/method.md §4 (which takes them from
/// third-party transcriptions of the paper's tables). Change them only with a source.
const TABLES: &[TableSpec] = &[
    TableSpec {
        id: "finetuned_conversion",
        title: "Table 1: BERT-base finetuned on CoLA with its attention swapped",
        metric: "Matthews correlation × 100, higher is better",
        decimals: 1,
        columns: &["CoLA"],
        relative: Some("% of softmax"),
        rows: &[
            row("softmax", &[Some(58.8)]),
            row("1+ELU", &[Some(28.1)]),
            row("ReLU", &[Some(39.5)]),
            row("Performer", &[Some(24.7)]),
            row("cosFormer", &[Some(39.9)]),
            row("exp(t=1)", &[Some(45.9)]),
            row("exp(t=2)", &[Some(50.0)]),
            row("Taylor-2", &[Some(58.4)]),
            row("Hedgehog", &[Some(59.2)]),
        ],
        notes: &[
            "Taylor-2 is Table 2's BERT-FT column; Hedgehog is the GLUE table's CoLA score.",
            "% of softmax: the row / softmax × 100, each column from its own source.",
        ],
    },
    TableSpec {
        id: "recall",
        title: "Table 2: associative recall",
        metric: "accuracy %, higher is better",
        decimals: 1,
        columns: &["accuracy"],
        relative: None,
        rows: &[
            row("softmax", &[Some(100.0)]),
            row("Taylor-2", &[Some(100.0)]),
            row("1+ELU", &[Some(17.0)]),
            row("Performer", &[Some(17.0)]),
            row("cosFormer", &[Some(17.0)]),
        ],
        notes: &["The paper reports associative recall only for these five attentions."],
    },
    TableSpec {
        id: "glue",
        title: "GLUE: BERT-base finetuned conversion",
        metric: "each task's headline metric × 100, higher is better",
        decimals: 1,
        columns: GLUE_TASKS,
        relative: Some("% recovered"),
        rows: &[
            row(
                "softmax",
                &[
                    Some(58.8),
                    Some(93.2),
                    Some(90.2),
                    Some(88.8),
                    Some(91.0),
                    Some(84.7),
                    Some(91.3),
                    Some(68.2),
                ],
            ),
            row(
                "Hedgehog",
                &[
                    Some(59.2),
                    Some(92.6),
                    Some(90.1),
                    Some(87.4),
                    Some(91.0),
                    Some(82.6),
                    Some(89.6),
                    Some(69.3),
                ],
            ),
        ],
        notes: &[
            "% recovered: the row's mean over tasks / softmax's mean over the same tasks × 100 \
             (the paper reports 99.3% for Hedgehog).",
        ],
    },
    TableSpec {
        id: "vit",
        title: "ViT-B/16 on ImageNet-1k, finetuned conversion",
        metric: "top-1 accuracy %, higher is better",
        decimals: 1,
        columns: &["top-1"],
        relative: None,
        rows: &[
            row("softmax", &[Some(80.3)]),
            PaperRow {
                label: "T2R",
                values: &[Some(77.0)],
                paper_name: Some("T2R-HH"),
            },
            row("Hedgehog", &[Some(79.5)]),
        ],
        notes: &[],
    },
    TableSpec {
        id: "gpt2_conversion",
        title: "GPT-2 125M pretrained conversion on WikiText-103",
        metric: "perplexity, lower is better",
        decimals: 2,
        columns: &["perplexity"],
        relative: None,
        rows: &[
            row("GPT-2 zero-shot", &[Some(28.0)]),
            row("GPT-2 finetuned", &[Some(15.8)]),
            row("Hybrid H3", &[Some(18.5)]),
            row("Hyena", &[Some(18.5)]),
            row("T2R", &[Some(19.4)]),
            row("Hedgehog", &[Some(16.7)]),
        ],
        notes: &[],
    },
    TableSpec {
        id: "lm_scratch",
        title: "Language modelling from scratch",
        metric: "perplexity, lower is better",
        decimals: 2,
        columns: &["perplexity"],
        relative: None,
        rows: &[],
        notes: &[
            "The paper's from-scratch WikiText-103 table was not available (method.md §4): \
             every paper cell is not available.",
        ],
    },
];

/// The ids a run's `report_table` may name.
pub const TABLE_IDS: &[&str] = &[
    "finetuned_conversion",
    "recall",
    "glue",
    "vit",
    "gpt2_conversion",
    "lm_scratch",
];

/// One row of a [`PaperTable`]: a value per column from the paper and from our newest run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// The paper's label, or ours where we ran a named variant of it ("Hedgehog (softmax_split)").
    pub label: String,
    pub paper: Vec<Option<f64>>,
    pub ours: Vec<Option<f64>>,
    /// `relative` column of the table (None where the table has none or a side lacks numbers).
    pub paper_relative: Option<f64>,
    pub ours_relative: Option<f64>,
    /// The runs our values came from (`spec/run-id`).
    pub runs: Vec<String>,
}

/// A paper table with our numbers beside the paper's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperTable {
    pub id: String,
    pub title: String,
    pub metric: String,
    /// Decimals shown for values (2 for perplexity, 1 otherwise); relative columns show 1.
    pub decimals: usize,
    pub columns: Vec<String>,
    /// Header of the derived relative column, if the table has one.
    pub relative: Option<String>,
    pub rows: Vec<TableRow>,
    /// One line per setting our numbers come from, e.g. "MiniLM on the SST-2 stand-in".
    pub settings: Vec<String>,
    pub notes: Vec<String>,
}

/// A run's value for one cell.
struct Contribution<'a> {
    label: String,
    column: usize,
    value: f64,
    run: &'a RunRecord,
}

/// Every paper table (in [`TABLE_IDS`] order) filled with the finished runs that report to it.
/// Unfinished runs and stages without a usable headline metric are left out with a note in
/// their table; runs naming a table id this crate does not know are in none (see
/// [`unknown_table_runs`]).
pub fn paper_tables(runs: &[RunRecord]) -> Vec<PaperTable> {
    TABLES.iter().map(|spec| build_table(spec, runs)).collect()
}

fn build_table(spec: &TableSpec, runs: &[RunRecord]) -> PaperTable {
    let mut notes: Vec<String> = spec.notes.iter().map(|n| n.to_string()).collect();
    for r in spec.rows.iter() {
        if let Some(name) = r.paper_name {
            notes.push(format!("{}: the paper's row is {name}.", r.label));
        }
    }
    let mut contributions = Vec::new();
    for run in runs {
        if run.summary.report_table.as_deref() != Some(spec.id) {
            continue;
        }
        if !run.summary.finished {
            notes.push(format!(
                "Skipped {}: not finished (summary.json has no `finished: true`).",
                run.name()
            ));
            continue;
        }
        contributions.extend(run_contributions(spec, run, &mut notes));
    }

    // Newest run per (row, column).
    let mut cells: BTreeMap<(String, usize), &Contribution> = BTreeMap::new();
    let mut ours_only: Vec<String> = Vec::new();
    for c in &contributions {
        let key = match spec.rows.iter().find(|r| matches_row(&c.label, r.label)) {
            Some(r) => r.label.to_string(),
            None => {
                if !ours_only.contains(&c.label) {
                    ours_only.push(c.label.clone());
                }
                c.label.clone()
            }
        };
        let slot = cells.entry((key, c.column)).or_insert(c);
        if c.run.age_key() > slot.run.age_key() {
            *slot = c;
        }
    }
    // Rows the paper lacks keep the order of the runs (a sweep's order), not the alphabet's.

    let width = spec.columns.len();
    let paper_rows = spec.rows.iter().map(|r| (r.label.to_string(), r.values));
    let extra_rows = ours_only.into_iter().map(|l| (l, &[][..]));
    let mut rows: Vec<TableRow> = paper_rows
        .chain(extra_rows)
        .map(|(key, paper_values)| {
            let winners: Vec<Option<&Contribution>> = (0..width)
                .map(|c| cells.get(&(key.clone(), c)).copied())
                .collect();
            let newest = winners
                .iter()
                .flatten()
                .max_by(|a, b| a.run.age_key().cmp(&b.run.age_key()));
            let runs: BTreeSet<String> = winners.iter().flatten().map(|c| c.run.name()).collect();
            TableRow {
                label: newest.map_or(key.clone(), |c| c.label.clone()),
                paper: (0..width)
                    .map(|c| paper_values.get(c).copied().flatten())
                    .collect(),
                ours: winners.iter().map(|c| c.map(|c| c.value)).collect(),
                paper_relative: None,
                ours_relative: None,
                runs: runs.into_iter().collect(),
            }
        })
        .collect();

    if let Some(header) = spec.relative {
        fill_relative(&mut rows, spec, header, &mut notes);
    }

    let mut settings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in cells.values() {
        let setting = c
            .run
            .summary
            .setting
            .clone()
            .unwrap_or_else(|| format!("{} (the run states no setting)", c.run.summary.name));
        settings.entry(setting).or_default().insert(c.run.name());
    }
    let settings = if settings.is_empty() {
        vec!["no finished run reports to this table yet".to_string()]
    } else {
        settings
            .into_iter()
            .map(|(s, runs)| format!("{s} ({})", Vec::from_iter(runs).join(", ")))
            .collect()
    };

    PaperTable {
        id: spec.id.to_string(),
        title: spec.title.to_string(),
        metric: spec.metric.to_string(),
        decimals: spec.decimals,
        columns: spec.columns.iter().map(|c| c.to_string()).collect(),
        relative: spec.relative.map(str::to_string),
        rows,
        settings,
        notes,
    }
}

/// `label` fills the paper row `paper` when equal, or when it names a variant: `"paper (…"`.
fn matches_row(label: &str, paper: &str) -> bool {
    label == paper
        || label
            .strip_prefix(paper)
            .is_some_and(|rest| rest.starts_with(" ("))
}

/// The rows a run gives: every stage with a `row`, or else its last stage with a headline,
/// labelled with that stage's attention.
fn run_contributions<'a>(
    spec: &TableSpec,
    run: &'a RunRecord,
    notes: &mut Vec<String>,
) -> Vec<Contribution<'a>> {
    let column = if spec.columns.len() == 1 {
        0
    } else {
        let task = run.summary.glue_task.as_deref();
        match task.and_then(|t| spec.columns.iter().position(|c| *c == t)) {
            Some(c) => c,
            None => {
                notes.push(format!(
                    "Skipped {}: its glue_task {:?} is not one of {}.",
                    run.name(),
                    task,
                    spec.columns.join(", ")
                ));
                return Vec::new();
            }
        }
    };
    let stages = &run.summary.stages;
    let chosen: Vec<(&StageSummary, String)> = if stages.iter().any(|s| s.row.is_some()) {
        stages
            .iter()
            .filter_map(|s| s.row.clone().map(|r| (s, r)))
            .collect()
    } else {
        stages
            .iter()
            .rev()
            .find(|s| s.headline.is_some())
            .map(|s| (s, s.attention.clone()))
            .into_iter()
            .collect()
    };
    if chosen.is_empty() {
        notes.push(format!(
            "Skipped {}: no stage has a row or a headline metric.",
            run.name()
        ));
    }
    let mut out = Vec::new();
    for (stage, label) in chosen {
        let headline = stage.headline.as_deref();
        match headline.and_then(|h| stage.metrics.get(h).copied().flatten()) {
            Some(value) if value.is_finite() => out.push(Contribution {
                label,
                column,
                value,
                run,
            }),
            _ => notes.push(format!(
                "Skipped {} stage `{}` (row {label}): its headline metric {headline:?} has no \
                 finite value.",
                run.name(),
                stage.label
            )),
        }
    }
    out
}

/// The relative column: mean(row) / mean(softmax) × 100 over the columns both have, per source.
fn fill_relative(rows: &mut [TableRow], spec: &TableSpec, header: &str, notes: &mut Vec<String>) {
    let Some(softmax) = rows.iter().position(|r| matches_row(&r.label, "softmax")) else {
        return;
    };
    let (paper_base, ours_base) = (rows[softmax].paper.clone(), rows[softmax].ours.clone());
    let ratio = |values: &[Option<f64>], base: &[Option<f64>]| {
        let both: Vec<(f64, f64)> = values
            .iter()
            .zip(base)
            .filter_map(|(v, b)| v.zip(*b))
            .collect();
        let (sum_v, sum_b) = both
            .iter()
            .fold((0.0, 0.0), |(sv, sb), (v, b)| (sv + v, sb + b));
        (!both.is_empty() && sum_b != 0.0).then(|| (sum_v / sum_b * 100.0, both.len()))
    };
    for row in rows.iter_mut() {
        row.paper_relative = ratio(&row.paper, &paper_base).map(|(r, _)| r);
        if let Some((r, used)) = ratio(&row.ours, &ours_base) {
            row.ours_relative = Some(r);
            if used < spec.columns.len() {
                let tasks: Vec<&str> = (0..spec.columns.len())
                    .filter(|&c| row.ours[c].is_some() && ours_base[c].is_some())
                    .map(|c| spec.columns[c])
                    .collect();
                notes.push(format!(
                    "Ours {header} for {} covers only {}.",
                    row.label,
                    tasks.join(", ")
                ));
            }
        }
    }
}

impl PaperTable {
    fn format(&self, value: Option<f64>, decimals: usize) -> String {
        value.map_or_else(|| NOT_AVAILABLE.to_string(), |v| format!("{v:.decimals$}"))
    }

    /// Column headers after the label: `paper`/`ours` per column (prefixed with the column's name
    /// when there are several), then the relative pair.
    pub fn headers(&self) -> Vec<String> {
        let mut headers = Vec::new();
        for c in &self.columns {
            for side in ["paper", "ours"] {
                headers.push(if self.columns.len() == 1 {
                    side.to_string()
                } else {
                    format!("{c} {side}")
                });
            }
        }
        if let Some(rel) = &self.relative {
            headers.push(format!("paper {rel}"));
            headers.push(format!("ours {rel}"));
        }
        headers
    }

    /// Each row as its label followed by formatted cells in [`Self::headers`] order.
    pub fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.label.clone()];
                for (p, o) in row.paper.iter().zip(&row.ours) {
                    cells.push(self.format(*p, self.decimals));
                    cells.push(self.format(*o, self.decimals));
                }
                if self.relative.is_some() {
                    cells.push(self.format(row.paper_relative, 1));
                    cells.push(self.format(row.ours_relative, 1));
                }
                cells
            })
            .collect()
    }

    /// A markdown section: caption, the settings of "ours", the table, and the notes.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("### {} (`{}`)\n\n{}.\n\n", self.title, self.id, self.metric);
        for s in &self.settings {
            md.push_str(&format!("Ours: {s}.\n"));
        }
        md.push('\n');
        let headers = self.headers();
        md.push_str(&format!("| attention | {} |\n", headers.join(" | ")));
        md.push_str(&format!("|---|{}\n", "---:|".repeat(headers.len())));
        for cells in self.cells() {
            md.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if !self.notes.is_empty() {
            md.push('\n');
            for n in &self.notes {
                md.push_str(&format!("- {n}\n"));
            }
        }
        md
    }

    /// The table as a polars frame of formatted strings (what the markdown shows).
    pub fn to_dataframe(&self) -> Result<DataFrame, AnalysisError> {
        let cells = self.cells();
        let names = std::iter::once("attention".to_string()).chain(self.headers());
        let columns: Vec<Column> = names
            .enumerate()
            .map(|(i, name)| {
                let values: Vec<String> = cells.iter().map(|row| row[i].clone()).collect();
                Column::new(name.into(), values)
            })
            .collect();
        DataFrame::new(cells.len(), columns).map_err(|e| self.polars_error(e))
    }

    /// The table as CSV text (through polars), with the same cells as the markdown.
    pub fn to_csv(&self) -> Result<String, AnalysisError> {
        csv_text(&mut self.to_dataframe()?, &self.id)
    }

    fn polars_error(&self, e: polars::error::PolarsError) -> AnalysisError {
        table_error(&self.id, e)
    }
}

fn table_error(table: &str, e: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Table {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// A frame as CSV text, through polars.
fn csv_text(frame: &mut DataFrame, table: &str) -> Result<String, AnalysisError> {
    let mut buffer = Cursor::new(Vec::new());
    CsvWriter::new(&mut buffer)
        .finish(frame)
        .map_err(|e| table_error(table, e))?;
    String::from_utf8(buffer.into_inner()).map_err(|e| table_error(table, e))
}

/// Runs whose `report_table` is not one of [`TABLE_IDS`] (a typo in a spec, or a table newer
/// than this crate), as `(spec/run-id, table id)`.
pub fn unknown_table_runs(runs: &[RunRecord]) -> Vec<(String, String)> {
    runs.iter()
        .filter_map(|r| {
            let table = r.summary.report_table.as_deref()?;
            (!TABLE_IDS.contains(&table)).then(|| (r.name(), table.to_string()))
        })
        .collect()
}

/// The id (file stem) of the attention-measures table that [`write_tables`] writes beside the
/// paper tables.
pub const MEASURES_TABLE_ID: &str = "attention_measures";

/// The means over layers and heads of every analyze stage of every finished run: softmax and
/// map entropy (nats), KL(softmax ‖ map) and the map's Spearman ρ against q·k; as markdown and
/// as CSV (through polars). ρ is taken within each row, where softmax's is 1 by construction
/// and the raw kernel's equals the weights' (a row's normaliser does not change ranks), so
/// those two are left out. The figures show the same reports per layer and head.
pub fn measures_table(runs: &[RunRecord]) -> Result<(String, String), AnalysisError> {
    const HEADERS: [&str; 7] = [
        "run",
        "stage",
        "attention",
        "softmax entropy",
        "map entropy",
        "KL(softmax ‖ map)",
        "map ρ",
    ];
    let mut text: [Vec<String>; 3] = Default::default();
    let mut values: [Vec<Option<f64>>; 4] = Default::default();
    for run in runs.iter().filter(|r| r.summary.finished) {
        for stage in &run.summary.stages {
            let (StageKind::Analyze, Some(relative)) = (stage.kind, &stage.analysis) else {
                continue;
            };
            let report = crate::AttentionReport::load(&run.dir.join(relative))?;
            let s = report.summary();
            for (column, v) in
                text.iter_mut()
                    .zip([run.name(), stage.label.clone(), report.attention.clone()])
            {
                column.push(v);
            }
            let numbers = [
                s.teacher_entropy,
                s.student_entropy,
                s.kl,
                s.student_spearman,
            ];
            for (column, v) in values.iter_mut().zip(numbers) {
                column.push(v);
            }
        }
    }
    let rows = text[0].len();
    let format =
        |v: &Option<f64>| v.map_or_else(|| NOT_AVAILABLE.to_string(), |v| format!("{v:.3}"));
    let mut md = String::from(
        "### Attention measures of every analyze stage (`attention_measures`)\n\n\
         Means over layers and heads; entropy and KL in nats; map ρ is Spearman's rank \
         correlation of the map's weights with q·k within each row (softmax's is 1). Softmax is \
         the teacher on the same queries and keys. Per layer and head: the run's \
         `analysis/*.json` and `just plots`.\n\n",
    );
    md.push_str(&format!("| {} |\n", HEADERS.join(" | ")));
    md.push_str(&format!("|---|---|---|{}\n", "---:|".repeat(values.len())));
    for i in 0..rows {
        let cells: Vec<String> = text
            .iter()
            .map(|c| c[i].clone())
            .chain(values.iter().map(|c| format(&c[i])))
            .collect();
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if rows == 0 {
        md.push_str("\nNo finished run has an analyze stage yet.\n");
    }
    let columns: Vec<Column> = HEADERS
        .iter()
        .zip(text.iter())
        .map(|(name, c)| Column::new((*name).into(), c.clone()))
        .chain(
            HEADERS[3..]
                .iter()
                .zip(values.iter())
                .map(|(name, c)| Column::new((*name).into(), c.clone())),
        )
        .collect();
    let mut frame = DataFrame::new(rows, columns).map_err(|e| table_error(MEASURES_TABLE_ID, e))?;
    Ok((md, csv_text(&mut frame, MEASURES_TABLE_ID)?))
}

/// Builds every table from `results_dir`, writes `<out_dir>/<id>.md` and `<out_dir>/<id>.csv`
/// (the paper tables, then [`MEASURES_TABLE_ID`]), and returns all of the markdown, followed by
/// a line on any run that reports to an unknown table.
pub fn write_tables(results_dir: &Path, out_dir: &Path) -> Result<String, AnalysisError> {
    let runs = collect_runs(results_dir)?;
    std::fs::create_dir_all(out_dir).map_err(AnalysisError::io(out_dir))?;
    let mut all = Vec::new();
    for table in paper_tables(&runs) {
        let md = table.to_markdown();
        let md_path = out_dir.join(format!("{}.md", table.id));
        std::fs::write(&md_path, &md).map_err(AnalysisError::io(&md_path))?;
        let csv_path = out_dir.join(format!("{}.csv", table.id));
        std::fs::write(&csv_path, table.to_csv()?).map_err(AnalysisError::io(&csv_path))?;
        all.push(md);
    }
    let (md, csv) = measures_table(&runs)?;
    for (ext, text) in [("md", &md), ("csv", &csv)] {
        let path = out_dir.join(format!("{MEASURES_TABLE_ID}.{ext}"));
        std::fs::write(&path, text).map_err(AnalysisError::io(&path))?;
    }
    all.push(md);
    let unknown = unknown_table_runs(&runs);
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|(run, t)| format!("{run} (`{t}`)"))
            .collect();
        all.push(format!(
            "Runs reporting to no known table (known: {}): {}.\n",
            TABLE_IDS.join(", "),
            list.join(", ")
        ));
    }
    Ok(all.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ids_follow_the_specs() {
        let ids: Vec<&str> = TABLES.iter().map(|t| t.id).collect();
        assert_eq!(ids, TABLE_IDS);
        for t in TABLES {
            for r in t.rows {
                assert_eq!(r.values.len(), t.columns.len(), "{} {}", t.id, r.label);
            }
        }
    }

    #[test]
    fn row_matching() {
        assert!(matches_row("Hedgehog", "Hedgehog"));
        assert!(matches_row("Hedgehog (softmax_split)", "Hedgehog"));
        assert!(!matches_row("Hedgehogs", "Hedgehog"));
        assert!(!matches_row("exp(t=1)", "exp(t=2)"));
    }
}
