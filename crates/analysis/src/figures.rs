//! `hedgehog plots`: every committed figure, regenerated from run folders as a YAML file of
//! figures (`experiments/figures/paper_figures.yaml`) says. Each figure names the runs it draws
//! on by spec name (and, for the attention measures, the label of the `analyze` stage), so a
//! figure is a pure function of `results/`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::AnalysisError;
use crate::measures::AttentionReport;
use crate::plots::{self, PlotFiles, Series};
use crate::tables::{PasskeyReport, RunRecord, StageKind, collect_runs, passkey_reports};

/// The analysis reports of one spec's runs: those of the `analyze` stage labelled `stage`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnalysisSource {
    pub spec: String,
    pub stage: String,
    /// Appended to each map's label (to tell apart two stages of one run, e.g. " (distilled)").
    #[serde(default)]
    pub suffix: String,
    /// Only the maps whose label starts with one of these (e.g. `[Hedgehog, T2R]`); empty = all.
    #[serde(default)]
    pub attention: Vec<String>,
}

/// One figure; `out` is the path stem (`.png` and `.svg` are written).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Figure {
    /// Mean attention entropy per map, softmax beside them.
    Entropy {
        out: PathBuf,
        sources: Vec<AnalysisSource>,
    },
    /// Per query row, each weight (and raw kernel) over the row's top key's, against the score
    /// minus the row's maximum; one panel per map.
    Monotonicity {
        out: PathBuf,
        sources: Vec<AnalysisSource>,
    },
    /// KL(softmax ‖ map) per layer and head, one panel per map.
    KlHeatmaps {
        out: PathBuf,
        sources: Vec<AnalysisSource>,
    },
    /// One head's attention on one example: softmax, then each map.
    AttentionMaps {
        out: PathBuf,
        sources: Vec<AnalysisSource>,
    },
    /// A `metrics.csv` column against the global step, one line per run of `spec`, taken from
    /// the stage labelled `stage` (all stages when absent).
    TrainingCurves {
        out: PathBuf,
        spec: String,
        column: String,
        #[serde(default)]
        stage: Option<String>,
        #[serde(default)]
        log_y: bool,
    },
    /// Passkey accuracy per context length × depth, one panel per attention of `spec`'s
    /// passkey stages (only those labelled `stage` when given).
    PasskeyHeatmaps {
        out: PathBuf,
        spec: String,
        #[serde(default)]
        stage: Option<String>,
    },
    /// Decoding-cache bytes after the prompt and ms per generated token against the context
    /// length, one line per attention of `spec`'s passkey stages (`stage` as above).
    GenerationMemory {
        out: PathBuf,
        spec: String,
        #[serde(default)]
        stage: Option<String>,
    },
}

impl Figure {
    pub fn out(&self) -> &Path {
        match self {
            Self::Entropy { out, .. }
            | Self::Monotonicity { out, .. }
            | Self::KlHeatmaps { out, .. }
            | Self::AttentionMaps { out, .. }
            | Self::TrainingCurves { out, .. }
            | Self::PasskeyHeatmaps { out, .. }
            | Self::GenerationMemory { out, .. } => out,
        }
    }
}

/// The contents of a figures file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FigureList {
    pub figures: Vec<Figure>,
}

impl FigureList {
    pub fn load(path: &Path) -> Result<Self, AnalysisError> {
        let text = std::fs::read_to_string(path).map_err(AnalysisError::io(path))?;
        serde_saphyr::from_str(&text)
            .map_err(|e| AnalysisError::Config(format!("{}: {e}", path.display())))
    }
}

/// The reports one source names: of the analyze stage `stage` of the finished runs of `spec`,
/// per attention label the newest run's (in sweep order, oldest run first), filtered by
/// `attention`, with `suffix` appended to every label but softmax's.
pub fn source_reports(
    runs: &[RunRecord],
    source: &AnalysisSource,
) -> Result<Vec<AttentionReport>, AnalysisError> {
    let mut found: Vec<(String, PathBuf)> = Vec::new();
    let mut candidates: Vec<&RunRecord> = runs
        .iter()
        .filter(|r| r.spec == source.spec && r.summary.finished)
        .collect();
    candidates.sort_by_key(|r| run_number(&r.run_id));
    for run in candidates {
        for stage in &run.summary.stages {
            if stage.kind == StageKind::Analyze
                && stage.label == source.stage
                && let Some(relative) = &stage.analysis
                && (source.attention.is_empty()
                    || source
                        .attention
                        .iter()
                        .any(|prefix| stage.attention.starts_with(prefix.as_str())))
            {
                let path = run.dir.join(relative);
                match found
                    .iter_mut()
                    .find(|(label, _)| *label == stage.attention)
                {
                    Some(slot) => slot.1 = path,
                    None => found.push((stage.attention.clone(), path)),
                }
            }
        }
    }
    if found.is_empty() {
        let maps = if source.attention.is_empty() {
            String::new()
        } else {
            format!(" for the maps {:?}", source.attention)
        };
        return Err(AnalysisError::Data(format!(
            "no finished run of `{}` has an analyze stage labelled `{}`{maps}; run `hedgehog run experiments/{}.yaml` first",
            source.spec, source.stage, source.spec
        )));
    }
    found
        .iter()
        .map(|(_, path)| {
            let mut report = AttentionReport::load(path)?;
            if report.attention != "softmax" {
                report.attention.push_str(&source.suffix);
            }
            Ok(report)
        })
        .collect()
}

fn run_number(run_id: &str) -> u64 {
    run_id
        .chars()
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or(0)
}

fn all_reports(
    runs: &[RunRecord],
    sources: &[AnalysisSource],
) -> Result<Vec<AttentionReport>, AnalysisError> {
    let mut out = Vec::new();
    for source in sources {
        out.extend(source_reports(runs, source)?);
    }
    Ok(out)
}

/// The reports of a monotonicity figure. One written before the curve was measured per query
/// row is an error that names the spec to re-run, rather than old numbers under the new axes;
/// the other figures still read such reports.
fn monotonicity_reports(
    runs: &[RunRecord],
    sources: &[AnalysisSource],
) -> Result<Vec<AttentionReport>, AnalysisError> {
    let mut out = Vec::new();
    for source in sources {
        for report in source_reports(runs, source)? {
            if report.row_curve.is_none() {
                return Err(AnalysisError::Data(format!(
                    "{}; re-run the analyze stage `{}` of `{}`: `hedgehog run experiments/{}.yaml`",
                    plots::stale_report(&report.attention),
                    source.stage,
                    source.spec,
                    source.spec
                )));
            }
            out.push(report);
        }
    }
    Ok(out)
}

/// Draws one figure from the runs under `results_dir`.
pub fn draw(figure: &Figure, runs: &[RunRecord]) -> Result<PlotFiles, AnalysisError> {
    if let Some(parent) = figure.out().parent() {
        std::fs::create_dir_all(parent).map_err(AnalysisError::io(parent))?;
    }
    match figure {
        Figure::Entropy { out, sources } => entropy_figure(&all_reports(runs, sources)?, out),
        Figure::Monotonicity { out, sources } => {
            plots::monotonicity_panels(&monotonicity_reports(runs, sources)?, out)
        }
        Figure::KlHeatmaps { out, sources } => {
            let reports: Vec<AttentionReport> = all_reports(runs, sources)?
                .into_iter()
                .filter(|r| r.attention != "softmax")
                .collect();
            plots::kl_heatmaps(&reports, out)
        }
        Figure::AttentionMaps { out, sources } => {
            // Each example holds softmax (teacher) and the map (student) on the same tokens;
            // the plot draws the first teacher, then every student.
            let maps: Vec<_> = all_reports(runs, sources)?
                .into_iter()
                .filter_map(|r| r.example.map(|example| (r.attention, example)))
                .collect();
            plots::attention_maps(&maps, out)
        }
        Figure::TrainingCurves {
            out,
            spec,
            column,
            stage,
            log_y,
        } => {
            let series = metrics_of_runs(runs, spec, column, stage.as_deref())?;
            plots::training_curves(&series, column, *log_y, out)
        }
        Figure::PasskeyHeatmaps { out, spec, stage } => {
            plots::passkey_heatmaps(&passkey_figure_reports(runs, spec, stage.as_deref())?, out)
        }
        Figure::GenerationMemory { out, spec, stage } => {
            plots::generation_memory(&passkey_figure_reports(runs, spec, stage.as_deref())?, out)
        }
    }
}

/// The passkey reports of `spec`'s finished runs (only stages labelled `stage` when given),
/// one per attention and stage label, the newest run's, each titled with its attention (and
/// its stage label when several stage labels are drawn).
fn passkey_figure_reports(
    runs: &[RunRecord],
    spec: &str,
    stage: Option<&str>,
) -> Result<Vec<PasskeyReport>, AnalysisError> {
    let mut chosen: Vec<PasskeyReport> = Vec::new();
    for (_, report) in passkey_reports(runs, Some(spec))? {
        if stage.is_some_and(|label| report.label != label) {
            continue;
        }
        // Runs come oldest first, so a later run with the same attention and stage replaces
        // the earlier one, in its place.
        match chosen
            .iter_mut()
            .find(|r| r.attention == report.attention && r.label == report.label)
        {
            Some(slot) => *slot = report,
            None => chosen.push(report),
        }
    }
    if chosen.is_empty() {
        let labelled = stage.map_or_else(String::new, |l| format!(" labelled `{l}`"));
        return Err(AnalysisError::Data(format!(
            "no finished run of `{spec}` has a passkey stage{labelled}; run `hedgehog run experiments/{spec}.yaml` first"
        )));
    }
    let several_stages = chosen.iter().any(|r| r.label != chosen[0].label);
    if several_stages {
        for report in &mut chosen {
            report.attention = format!("{} ({})", report.attention, report.label);
        }
    }
    Ok(chosen)
}

/// The entropy bars of the maps among `reports`, against softmax's entropy.
fn entropy_figure(reports: &[AttentionReport], out: &Path) -> Result<PlotFiles, AnalysisError> {
    // A softmax run measures softmax itself; otherwise every report's teacher is the
    // softmax of the same model, and their mean is the reference.
    let softmax = reports
        .iter()
        .find(|r| r.attention == "softmax")
        .and_then(|r| r.summary().teacher_entropy)
        .or_else(|| mean(reports.iter().filter_map(|r| r.summary().teacher_entropy)))
        .ok_or_else(|| AnalysisError::Data("no softmax entropy in the reports".into()))?;
    let rows: Vec<(String, f64)> = reports
        .iter()
        .filter(|r| r.attention != "softmax")
        .filter_map(|r| {
            r.summary()
                .student_entropy
                .map(|e| (r.attention.clone(), e))
        })
        .collect();
    plots::entropy_bars(&rows, softmax, out)
}

/// `column` of the `metrics.csv` of every run of `spec`, oldest run first: one series per run
/// labelled with its attention, or per run and stage when `stage` is None.
fn metrics_of_runs(
    runs: &[RunRecord],
    spec: &str,
    column: &str,
    stage: Option<&str>,
) -> Result<Vec<Series>, AnalysisError> {
    let mut chosen: Vec<&RunRecord> = runs.iter().filter(|r| r.spec == spec).collect();
    chosen.sort_by_key(|r| run_number(&r.run_id));
    let mut series: Vec<Series> = Vec::new();
    for run in chosen {
        let label = run
            .summary
            .stages
            .iter()
            .find(|s| stage.is_none_or(|l| s.label == l))
            .map_or_else(|| run.run_id.clone(), |s| s.attention.clone());
        for (stage_label, points) in plots::metrics_series(&run.dir.join("metrics.csv"), column)? {
            if stage.is_some_and(|l| l != stage_label) || points.is_empty() {
                continue;
            }
            let name = if stage.is_some() {
                label.clone()
            } else {
                format!("{label}: {stage_label}")
            };
            // A later run with the same label replaces the earlier one.
            series.retain(|(n, _)| n != &name);
            series.push((name, points));
        }
    }
    if series.is_empty() {
        return Err(AnalysisError::Data(format!(
            "no run of `{spec}` has values in column `{column}`"
        )));
    }
    Ok(series)
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let values: Vec<f64> = values.collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

/// What `draw_all` did: the files written, and each figure skipped with the reason.
pub type Drawn = (Vec<PlotFiles>, Vec<(PathBuf, String)>);

/// Draws every figure of `list` from `results_dir`; a figure whose runs are missing is
/// reported and skipped, so the others still come out.
pub fn draw_all(list: &FigureList, results_dir: &Path) -> Result<Drawn, AnalysisError> {
    let runs = collect_runs(results_dir)?;
    let (mut written, mut skipped) = (Vec::new(), Vec::new());
    for figure in &list.figures {
        match draw(figure, &runs) {
            Ok(files) => written.push(files),
            Err(e) => skipped.push((figure.out().to_path_buf(), e.to_string())),
        }
    }
    Ok((written, skipped))
}
