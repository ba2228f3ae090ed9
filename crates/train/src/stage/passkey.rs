//! The `passkey` stage: what a fixed-size decoding state can and cannot recall. Passkey
//! retrieval (hedgehog-tasks' `passkey`: a five-digit key hidden at each depth of corpus text
//! of each length, answered by greedy decoding through the model's caches, exact match), then
//! at each length the decoding speed and the caches' size after a prompt of that length.
//! Writes `analysis/passkey-stage-N.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_tasks::DataError;
use hedgehog_tasks::passkey::{
    PasskeyCorpus, PasskeyGrid, PasskeyModel, PasskeyRequest, PasskeyResults, passkey_prompt,
    run_passkey, trial_seed,
};
use serde::Serialize;

use crate::checkpoint::AdamRecord;
use crate::error::{RunError, file_error};
use crate::memory::{peak_rss_mib, reset_peak_rss};
use crate::progress::Reporter;
use crate::spec::{PasskeySpec, StageSpec};
use crate::summary::{StageResult, model_attention_label};
use crate::task::{Task, TextGenerator};

use super::{Stage, StageRun};

pub(super) struct Passkey;

/// Decoding cost after a prompt of one length.
#[derive(Clone, Debug, Serialize)]
struct SpeedRow {
    length: usize,
    prompt_tokens: usize,
    prefill_ms: f64,
    decode_steps: usize,
    ms_per_token: Option<f64>,
    /// `LayerCache::bytes` summed over layers: from the cache tensors' shapes and dtypes.
    cache_bytes_after_prefill: usize,
    cache_bytes: usize,
    /// The process's resident high-water mark over this measurement (model weights included;
    /// `None` off Linux).
    peak_rss_mib: Option<f64>,
}

/// `analysis/passkey-stage-N.json`.
#[derive(Serialize)]
struct PasskeyReport<'a> {
    attention: &'a str,
    label: &'a str,
    lengths: &'a [usize],
    depths: &'a [f64],
    trials_per_cell: usize,
    seed: u64,
    /// Mean accuracy over the depths and trials of each length, as the summary's metrics.
    length_accuracy: BTreeMap<usize, f64>,
    cells: &'a [hedgehog_tasks::passkey::PasskeyCell],
    speed: &'a [SpeedRow],
    trials: &'a [hedgehog_tasks::passkey::PasskeyTrial],
}

impl<B: AutodiffBackend, T: Task<B>> Stage<B, T> for Passkey {
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        _: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError> {
        let started = Instant::now();
        let label = stage.label();
        let attention = model_attention_label::<B, _>(&model);
        let settings = stage.passkey.clone().ok_or_else(|| {
            RunError::Config(format!("stage `{label}`: a passkey stage needs `passkey:`"))
        })?;
        let grid = PasskeyGrid {
            lengths: settings.lengths.clone(),
            depths: settings.depths.clone(),
            trials: settings.trials,
            seed: settings.seed.unwrap_or(run.ctx.spec.seed),
        };
        let inner = model.valid();
        let generator = run.ctx.task.text_generator(&inner, run.ctx.device())?;
        let encode = |text: &str| -> Result<Vec<u32>, DataError> {
            (generator.tokenizer.encode(text))
                .map(|e| e.ids)
                .map_err(|e| DataError::Tokenizer(e.to_string()))
        };
        let corpus = PasskeyCorpus::new(&generator.validation_text, &encode)?;
        run.reporter.line(format!(
            "[{label}] passkey ({attention}): {} lengths × {} depths × {} trials over {} \
             validation sentences ({} tokens)",
            grid.lengths.len(),
            grid.depths.len(),
            grid.trials,
            corpus.sentences.len(),
            corpus.tokens()
        ));
        let results = retrieve(&generator, &corpus, &grid, &encode, run.reporter, &label)?;
        let speed = measure_speed(
            &generator,
            &corpus,
            &grid,
            &settings,
            &encode,
            run.reporter,
            &label,
        )?;
        let report = PasskeyReport {
            attention: &attention,
            label: &label,
            lengths: &grid.lengths,
            depths: &grid.depths,
            trials_per_cell: grid.trials,
            seed: grid.seed,
            length_accuracy: length_accuracy(&grid, &results),
            cells: &results.cells,
            speed: &speed,
            trials: &results.trials,
        };
        let relative = save(&report, &run.ctx.dir, run.progress.stage)?;
        let metrics = summary_metrics(&report);
        run.reporter.line(format!(
            "[{label}] passkey accuracy ({attention}): {} → {relative}",
            report
                .length_accuracy
                .iter()
                .map(|(l, a)| format!("{l} tokens {a:.2}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let result = StageResult {
            metrics,
            seconds: started.elapsed().as_secs_f64(),
            analysis: Some(relative),
            ..StageResult::empty(stage, &label, attention)
        };
        Ok((model, result))
    }
}

fn length_accuracy(grid: &PasskeyGrid, results: &PasskeyResults) -> BTreeMap<usize, f64> {
    (grid.lengths.iter())
        .filter_map(|&l| results.length_accuracy(l).map(|a| (l, a)))
        .collect()
}

/// Every trial of the grid, a progress line per finished (length, depth) cell.
fn retrieve(
    generator: &TextGenerator<'_>,
    corpus: &PasskeyCorpus,
    grid: &PasskeyGrid,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    reporter: &Reporter,
    label: &str,
) -> Result<PasskeyResults, RunError> {
    let decode = |ids: &[u32]| -> Result<String, DataError> {
        (generator.tokenizer.decode(ids)).map_err(|e| DataError::Tokenizer(e.to_string()))
    };
    let mut answer = |prompt: &[u32], budget: usize| -> Result<Vec<u32>, RunError> {
        Ok((generator.generate)(prompt, budget)?.0)
    };
    let model = PasskeyModel {
        encode,
        decode: &decode,
        answer: &mut answer,
    };
    run_passkey(corpus, grid, model, &mut |cell, done, total| {
        reporter.line(format!(
            "[{label}] passkey {done}/{total}: length {}, depth {:.2}: {}/{} correct",
            cell.length, cell.depth, cell.correct, cell.trials
        ));
    })
}

/// Per length: a prompt of that length (key at mid depth), then `speed_tokens` decoded.
fn measure_speed(
    generator: &TextGenerator<'_>,
    corpus: &PasskeyCorpus,
    grid: &PasskeyGrid,
    settings: &PasskeySpec,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    reporter: &Reporter,
    label: &str,
) -> Result<Vec<SpeedRow>, RunError> {
    let mut rows = Vec::new();
    if settings.speed_tokens == 0 {
        return Ok(rows);
    }
    for &length in &grid.lengths {
        let request = PasskeyRequest {
            length,
            depth: 0.5,
            seed: trial_seed(grid.seed, length, usize::MAX, 0),
        };
        let prompt = passkey_prompt(corpus, encode, request)?;
        let rss_reset = reset_peak_rss();
        let (_, profile) = (generator.generate)(&prompt.tokens, settings.speed_tokens)?;
        let row = SpeedRow {
            length,
            prompt_tokens: profile.prompt_tokens,
            prefill_ms: profile.prefill_seconds * 1e3,
            decode_steps: profile.decode_steps,
            ms_per_token: profile.ms_per_token(),
            cache_bytes_after_prefill: profile.cache_bytes_after_prefill,
            cache_bytes: profile.cache_bytes,
            peak_rss_mib: rss_reset.then(peak_rss_mib).flatten(),
        };
        reporter.line(format!(
            "[{label}] generation at {length} tokens: prefill {:.0} ms, {} per token, cache {} bytes",
            row.prefill_ms,
            row.ms_per_token.map_or("-".into(), |ms| format!("{ms:.1} ms")),
            row.cache_bytes
        ));
        rows.push(row);
    }
    Ok(rows)
}

/// `passkey_accuracy` (mean over every length) and per length `passkey_accuracy_<L>`,
/// `ms_per_token_<L>`, `cache_bytes_<L>`.
fn summary_metrics(report: &PasskeyReport<'_>) -> BTreeMap<String, f64> {
    let mut metrics = BTreeMap::new();
    let accuracies: Vec<f64> = report.length_accuracy.values().copied().collect();
    if !accuracies.is_empty() {
        let mean = accuracies.iter().sum::<f64>() / accuracies.len() as f64;
        metrics.insert("passkey_accuracy".to_string(), mean);
    }
    for (length, accuracy) in &report.length_accuracy {
        metrics.insert(format!("passkey_accuracy_{length}"), *accuracy);
    }
    for row in report.speed {
        if let Some(ms) = row.ms_per_token {
            metrics.insert(format!("ms_per_token_{}", row.length), ms);
        }
        metrics.insert(
            format!("cache_bytes_{}", row.length),
            row.cache_bytes as f64,
        );
    }
    metrics
}

/// Writes `report` to `analysis/passkey-stage-<stage>.json` in `run_dir` (through a temporary
/// name); returns the path relative to `run_dir`.
fn save(report: &PasskeyReport<'_>, run_dir: &Path, stage: usize) -> Result<String, RunError> {
    let folder = run_dir.join("analysis");
    std::fs::create_dir_all(&folder).map_err(file_error(&folder))?;
    let relative = format!("analysis/passkey-stage-{stage}.json");
    let path = run_dir.join(&relative);
    let partial = path.with_extension("json.partial");
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| RunError::Config(format!("passkey report: {e}")))?;
    std::fs::write(&partial, json).map_err(file_error(&partial))?;
    std::fs::rename(&partial, &path).map_err(file_error(&path))?;
    Ok(relative)
}
