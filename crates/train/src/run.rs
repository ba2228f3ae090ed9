//! The pipeline behind `hedgehog run`: stages of training, distillation, finetuning,
//! evaluation and analysis over one model, with a run folder, checkpoints and exact resume.
//!
//! The loop is our own rather than burn-train's `Learner`: distillation trains on per-layer
//! attention weights with the base frozen, stages switch the model's attention in the middle of
//! a run, and exact resume needs the data order and dropout seeds to be pure functions of
//! (seed, stage, step), which a hand-written loop makes plain. It is built from burn's own
//! pieces: `OptimizerAdaptor<AdamW>`, `GradientsAccumulator`, gradient clipping, and
//! `GradientsParams::to_device` for data parallelism over a device list.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use hedgehog_attention::AttentionConfig;
use hedgehog_models::AttentionLayers;
use hedgehog_models::checkpoint::{self as model_checkpoint, Checkpoint};
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use serde::{Deserialize, Serialize};

use crate::analyze;
use crate::checkpoint::{self, Adam, AdamRecord, EarlyState, Progress, param_order};
use crate::metrics::{MetricsLog, MetricsRow};
use crate::optim::FusedAdamW;
use crate::progress::Reporter;
use crate::spec::{Family, Spec, StageKind, StageSpec, SweepPoint, TableId, TaskSpec, Trainable};
use crate::task::glue::GlueTask;
use crate::task::images::ImageTask;
use crate::task::lm::LmTask;
use crate::task::recall::RecallTask;
use crate::task::{EpochSampler, Evaluation, Task, TaskInfo};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] hedgehog_models::ModelError),
    #[error(transparent)]
    Data(#[from] hedgehog_tasks::DataError),
    #[error(transparent)]
    Attention(#[from] hedgehog_attention::AttentionError),
    #[error(transparent)]
    Analysis(#[from] hedgehog_analysis::AnalysisError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Diverged(String),
    #[error("{0}")]
    Resume(String),
}

pub(crate) fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// How `run` is asked to behave.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `results/` by default.
    pub results_dir: PathBuf,
    /// Continue the newest run with the same resolved spec from its last checkpoint.
    pub resume: bool,
    /// Print progress.
    pub verbose: bool,
}

/// One stage's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub label: String,
    pub kind: StageKind,
    pub steps: usize,
    pub final_loss: Option<f64>,
    pub attention: String,
    /// Validation metrics (for `analyze`: the layer-averaged measures).
    pub metrics: BTreeMap<String, f64>,
    /// The metric of `metrics` that tables report.
    pub headline: Option<String>,
    /// The row of the report table this stage fills.
    pub row: Option<String>,
    pub seconds: f64,
    pub stopped_early: bool,
    /// `analysis/stage-N.json`, relative to the run folder.
    pub analysis: Option<String>,
}

impl StageResult {
    pub fn headline_value(&self) -> Option<f64> {
        self.headline
            .as_ref()
            .and_then(|h| self.metrics.get(h).copied())
    }
}

/// `summary.json` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: PathBuf,
    pub setting: String,
    pub report_table: Option<TableId>,
    pub glue_task: Option<String>,
    /// The sweep point (dotted key → value), if the spec has a sweep.
    pub sweep: Option<BTreeMap<String, serde_json::Value>>,
    pub parameters: usize,
    pub finished: bool,
    pub stages: Vec<StageResult>,
}

/// Parses a `summary.json`.
pub fn summary_from_json(text: &str) -> Option<RunSummary> {
    serde_json::from_str(text).ok()
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(file_error(&partial))?;
    std::fs::rename(&partial, path).map_err(file_error(path))
}

/// The run folders of `name`, oldest first.
fn existing_runs(base: &Path) -> Result<Vec<(usize, PathBuf)>, RunError> {
    if !base.exists() {
        return Ok(Vec::new());
    }
    let mut runs: Vec<(usize, PathBuf)> = std::fs::read_dir(base)
        .map_err(file_error(base))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("run-")
                .and_then(|n| n.parse().ok())
                .map(|n| (n, e.path()))
        })
        .collect();
    runs.sort();
    Ok(runs)
}

/// Where a point runs: a fresh folder, or (resuming) the newest folder whose saved spec equals
/// the point's resolved spec.
enum Destination {
    Fresh(PathBuf),
    Resume(PathBuf),
    Finished(RunSummary),
}

fn destination(point: &SweepPoint, options: &RunOptions) -> Result<Destination, RunError> {
    let spec = &point.spec;
    let base = options.results_dir.join(&spec.name);
    let runs = existing_runs(&base)?;
    if options.resume {
        let same = runs.iter().rev().find(|(_, dir)| {
            std::fs::read_to_string(dir.join("spec.yaml"))
                .ok()
                .and_then(|text| serde_saphyr::from_str::<Spec>(&text).ok())
                .is_some_and(|saved| &saved == spec)
        });
        match same {
            Some((_, dir)) => {
                let finished = std::fs::read_to_string(dir.join("summary.json"))
                    .ok()
                    .and_then(|t| summary_from_json(&t))
                    .filter(|s| s.finished);
                return Ok(match finished {
                    Some(summary) => Destination::Finished(summary),
                    None => Destination::Resume(dir.clone()),
                });
            }
            None if point.point.is_empty() => {
                let others = runs
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>();
                return Err(RunError::Resume(format!(
                    "--resume: no earlier run of `{}` with this resolved spec under {}{}",
                    spec.name,
                    base.display(),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (runs with other settings: {}; resume without changing the spec or --set values)",
                            others.join(", ")
                        )
                    }
                )));
            }
            // A sweep point never started before starts now.
            None => {}
        }
    }
    std::fs::create_dir_all(&base).map_err(file_error(&base))?;
    let next = runs.last().map_or(1, |(n, _)| n + 1);
    let dir = base.join(format!("run-{next:03}"));
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    Ok(Destination::Fresh(dir))
}

/// Runs every point of `spec` (its sweep, or itself) in turn on `devices` (the first one holds
/// the model; with several, each step's batch is split across them).
pub fn run<B: AutodiffBackend>(
    spec: &Spec,
    options: &RunOptions,
    devices: &[B::Device],
) -> Result<Vec<RunSummary>, RunError> {
    let points = spec.expand().map_err(RunError::Config)?;
    let total = points.len();
    let mut summaries = Vec::with_capacity(total);
    for (i, point) in points.iter().enumerate() {
        if total > 1 && options.verbose {
            println!("== sweep point {}/{total}: {}", i + 1, point.describe());
        }
        summaries.push(run_point::<B>(point, options, devices)?);
    }
    Ok(summaries)
}

/// Runs one spec (one sweep point).
pub fn run_point<B: AutodiffBackend>(
    point: &SweepPoint,
    options: &RunOptions,
    devices: &[B::Device],
) -> Result<RunSummary, RunError> {
    if devices.is_empty() {
        return Err(RunError::Config("no device to run on".into()));
    }
    let spec = &point.spec;
    match (&spec.task, spec.model.family) {
        (TaskSpec::LanguageModeling { .. }, Family::Gpt2) => {
            run_task::<B, _>(point, options, &LmTask::<Gpt2<B>>::new(spec)?, devices)
        }
        (TaskSpec::LanguageModeling { .. }, Family::Llama) => {
            run_task::<B, _>(point, options, &LmTask::<Llama<B>>::new(spec)?, devices)
        }
        (TaskSpec::AssociativeRecall { .. }, Family::Gpt2) => {
            run_task::<B, _>(point, options, &RecallTask::<Gpt2<B>>::new(spec)?, devices)
        }
        (TaskSpec::AssociativeRecall { .. }, Family::Llama) => {
            run_task::<B, _>(point, options, &RecallTask::<Llama<B>>::new(spec)?, devices)
        }
        (TaskSpec::Glue { .. }, Family::Bert) => {
            run_task::<B, _>(point, options, &GlueTask::new(spec)?, devices)
        }
        (TaskSpec::Images { .. }, Family::Vit) => {
            run_task::<B, _>(point, options, &ImageTask::new(spec)?, devices)
        }
        (task, family) => Err(RunError::Config(format!(
            "task {} cannot run on a {family:?} model (validated specs never get here)",
            task.kind()
        ))),
    }
}

/// The per-layer attention stored in a model's config (`hedgehog_attention`).
pub(crate) fn model_attention<B: Backend, M: Checkpoint<B>>(model: &M) -> Vec<AttentionConfig> {
    serde_json::to_value(model.checkpoint_config())
        .ok()
        .and_then(|config| config.get("hedgehog_attention").cloned())
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default()
}

/// "softmax", "Hedgehog (softmax_split)", or the per-layer labels joined by " | ".
pub fn attention_label(attention: &[AttentionConfig]) -> String {
    match attention.first() {
        None => "softmax".into(),
        Some(first) if attention.iter().all(|a| a == first) => first.label(),
        _ => attention
            .iter()
            .map(AttentionConfig::label)
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// The stage's table row, with `{attention}` replaced by the attention's label (so one row
/// spec serves every point of a sweep over maps).
fn row_label(stage: &StageSpec, attention: &str) -> Option<String> {
    stage
        .row
        .as_ref()
        .map(|row| row.replace("{attention}", attention))
}

/// A deterministic seed for (run seed, stage, step, micro-batch).
pub(crate) fn derived_seed(seed: u64, stage: usize, step: usize, micro: usize) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [stage as u64, step as u64, micro as u64] {
        h = (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(17);
    }
    h
}

/// What every stage of a run shares.
struct Context<'a, B: AutodiffBackend, T: Task<B>> {
    spec: &'a Spec,
    task: &'a T,
    info: TaskInfo,
    dir: PathBuf,
    devices: &'a [B::Device],
}

impl<B: AutodiffBackend, T: Task<B>> Context<'_, B, T> {
    fn device(&self) -> &B::Device {
        &self.devices[0]
    }
}

fn run_task<B: AutodiffBackend, T: Task<B>>(
    point: &SweepPoint,
    options: &RunOptions,
    task: &T,
    devices: &[B::Device],
) -> Result<RunSummary, RunError> {
    let spec = &point.spec;
    let mut reporter = Reporter::new(options.verbose);
    let (dir, resuming) = match destination(point, options)? {
        Destination::Finished(summary) => {
            reporter.line(format!(
                "{} already finished: {}",
                spec.name,
                summary.run_dir.display()
            ));
            return Ok(summary);
        }
        Destination::Fresh(dir) => (dir, false),
        Destination::Resume(dir) => (dir, true),
    };
    reporter.log_to(dir.join("log.txt"));
    let ctx = Context {
        spec,
        task,
        info: task.info(),
        dir,
        devices,
    };
    let device = ctx.device();
    let resume_from = if resuming {
        checkpoint::checkpoints(&ctx.dir).pop()
    } else {
        None
    };
    let (mut model, mut progress, mut optimizer_record) = match &resume_from {
        Some((step, path)) => {
            let stage_lora = std::fs::read_to_string(path.join("progress.json"))
                .ok()
                .and_then(|t| serde_json::from_str::<Progress>(&t).ok())
                .and_then(|p| spec.stages.get(p.stage))
                .and_then(|stage| match &stage.trainable {
                    Trainable::Lora(config) => Some(config.clone()),
                    _ => None,
                });
            let restored = checkpoint::load::<B, T::Model>(path, stage_lora.as_ref(), device)?;
            reporter.line(format!(
                "resuming {} from checkpoint step {step} (stage {}, step {})",
                ctx.dir.display(),
                restored.progress.stage,
                restored.progress.step
            ));
            (restored.model, restored.progress, restored.optimizer)
        }
        None => {
            if resuming {
                reporter.line(format!(
                    "no checkpoint in {}: starting from the beginning",
                    ctx.dir.display()
                ));
            }
            // burn's initialisers draw from the backend's RNG: seed it so runs repeat.
            B::seed(device, spec.seed);
            (task.build_model(device)?, Progress::default(), None)
        }
    };
    let resolved = serde_saphyr::to_string(spec).map_err(|e| RunError::File {
        path: ctx.dir.join("spec.yaml"),
        message: e.to_string(),
    })?;
    write_atomic(&ctx.dir.join("spec.yaml"), resolved.as_bytes())?;
    let mut metrics =
        MetricsLog::open(&ctx.dir, resume_from.as_ref().map(|_| progress.global_step))?;
    let parameters = model.num_params();
    reporter.line(format!(
        "run {} · {} · {parameters} parameters",
        ctx.dir.display(),
        ctx.info.describe
    ));
    let summary = |progress: &Progress, finished: bool| RunSummary {
        name: spec.name.clone(),
        run_dir: ctx.dir.clone(),
        setting: spec
            .setting
            .clone()
            .unwrap_or_else(|| ctx.info.setting.clone()),
        report_table: spec.report.as_ref().map(|r| r.table),
        glue_task: ctx.info.glue_task.clone(),
        sweep: (!point.point.is_empty()).then(|| point.point.clone()),
        parameters,
        finished,
        stages: progress.results.clone(),
    };

    while progress.stage < spec.stages.len() {
        let s = progress.stage;
        let stage = &spec.stages[s];
        let label = stage.label();
        // Switch attention when a stage starts (not when resuming inside it: the checkpoint
        // already holds the switched model).
        if progress.step == 0
            && let Some(attention) = &stage.attention
        {
            model = convert::<B, T::Model>(model, attention, &ctx.dir, device)?;
            reporter.line(format!(
                "[{label}] attention → {}",
                attention_label(attention)
            ));
        }
        let attention = attention_label(&model_attention::<B, _>(&model));
        let started = Instant::now();
        let result = match stage.kind {
            StageKind::Eval => {
                let evaluation = ctx.task.evaluate(&model.valid(), device)?;
                reporter.line(format!(
                    "[{label}] {} {:.4} ({attention})",
                    evaluation.headline,
                    evaluation.headline_value()
                ));
                metrics.push(MetricsRow {
                    stage: s,
                    label: label.clone(),
                    step: 0,
                    global_step: progress.global_step,
                    loss: None,
                    lr: None,
                    tokens_per_second: None,
                    validation: evaluation.metrics.clone(),
                });
                metrics.flush()?;
                StageResult {
                    label,
                    kind: stage.kind,
                    steps: 0,
                    final_loss: None,
                    row: row_label(stage, &attention),
                    attention,
                    metrics: evaluation.metrics,
                    headline: Some(evaluation.headline),
                    seconds: started.elapsed().as_secs_f64(),
                    stopped_early: false,
                    analysis: None,
                }
            }
            StageKind::Analyze => {
                let settings = stage.analysis.clone().unwrap_or_default();
                let (relative, measures) = analyze::analyze_stage::<B, T>(
                    ctx.task,
                    &model.valid(),
                    &settings,
                    stage.batch_size,
                    ctx.info.eval_examples,
                    &attention,
                    &ctx.dir,
                    s,
                    device,
                )?;
                reporter.line(format!(
                    "[{label}] attention measures ({attention}): {} → {relative}",
                    measures
                        .iter()
                        .map(|(k, v)| format!("{k} {v:.4}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
                StageResult {
                    label,
                    kind: stage.kind,
                    steps: 0,
                    final_loss: None,
                    row: row_label(stage, &attention),
                    attention,
                    metrics: measures,
                    headline: None,
                    seconds: started.elapsed().as_secs_f64(),
                    stopped_early: false,
                    analysis: Some(relative),
                }
            }
            StageKind::Train | StageKind::Distill | StageKind::Finetune => {
                let (trained, result) = train_stage(
                    &ctx,
                    stage,
                    &label,
                    model,
                    optimizer_record.take(),
                    &mut metrics,
                    &mut progress,
                    &mut reporter,
                )?;
                model = trained;
                result
            }
        };
        progress.results.push(result);
        progress.stage += 1;
        progress.step = 0;
        progress.stage_seconds = 0.0;
        progress.early = EarlyState::default();
        checkpoint::save::<B, T::Model>(&ctx.dir, &model, None, &progress, spec.checkpoint.keep)?;
        write_atomic(
            &ctx.dir.join("summary.json"),
            &serde_json::to_vec_pretty(&summary(&progress, false)).expect("summary serialises"),
        )?;
    }
    export_final(&ctx.dir, spec.model.pretrained.as_deref())?;
    let done = summary(&progress, true);
    write_atomic(
        &ctx.dir.join("summary.json"),
        &serde_json::to_vec_pretty(&done).expect("summary serialises"),
    )?;
    Ok(done)
}

/// Tokenizer files a pretrained directory may hold; `final/` keeps them so that a spec starting
/// from it reads text the same way.
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
];

/// Copies the last checkpoint's model to `<run>/final/` (an HF-layout directory that a later
/// spec can name as `model.pretrained`), with the tokenizer files of the directory the run
/// started from, and points `results/<name>/latest` at the run.
fn export_final(dir: &Path, pretrained: Option<&Path>) -> Result<(), RunError> {
    let (_, last) = checkpoint::checkpoints(dir)
        .pop()
        .ok_or_else(|| RunError::Config(format!("{}: no checkpoint to export", dir.display())))?;
    let partial = dir.join("final.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(file_error(&partial))?;
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(last.join(file), partial.join(file)).map_err(file_error(&last.join(file)))?;
    }
    for file in TOKENIZER_FILES {
        if let Some(source) = pretrained.map(|p| p.join(file)).filter(|p| p.is_file()) {
            std::fs::copy(&source, partial.join(file)).map_err(file_error(&source))?;
        }
    }
    let target = dir.join("final");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target).map_err(file_error(&target))?;
    let (Some(parent), Some(run)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let link = parent.join("latest");
    let fresh = parent.join("latest.partial");
    let _ = std::fs::remove_file(&fresh);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(run, &fresh).map_err(file_error(&fresh))?;
        std::fs::rename(&fresh, &link).map_err(file_error(&link))?;
    }
    #[cfg(not(unix))]
    let _ = (run, link, fresh);
    Ok(())
}

/// Gives the model a new attention: its weights go through a checkpoint and come back with
/// fresh feature maps (every other weight kept).
pub(crate) fn convert<B, M>(
    model: M,
    attention: &[AttentionConfig],
    dir: &Path,
    device: &B::Device,
) -> Result<M, RunError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Checkpoint<B>,
{
    let tmp = dir.join("converting");
    model_checkpoint::save(&model, &tmp)?;
    let converted = model_checkpoint::load(&tmp, Some(attention.to_vec()), device)?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(converted)
}

/// The steps a training stage runs: `steps`, or `epochs` over the task's training examples.
fn stage_steps(stage: &StageSpec, examples: usize) -> usize {
    match stage.epochs {
        Some(epochs) => {
            let per_step = (stage.batch_size * stage.grad_accumulation) as f64;
            ((epochs * examples as f64) / per_step).ceil().max(1.0) as usize
        }
        None => stage.steps,
    }
}

/// Moves the gradients of the parameters in `keep` from `grads` to a new set.
struct KeepGrads<'a> {
    keep: &'a HashSet<ParamId>,
    from: &'a mut GradientsParams,
    to: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for KeepGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.keep.contains(&param.id)
            && let Some(grad) = self.from.remove::<B::InnerBackend, D>(param.id)
        {
            self.to.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

/// Sets which parameters are tracked by autodiff: those in `keep`, or all of them for `None`.
struct RequireGrad<'a> {
    keep: Option<&'a HashSet<ParamId>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for RequireGrad<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tracked = self.keep.is_none_or(|keep| keep.contains(&id));
        Param::from_mapped_value(id, tensor.set_require_grad(tracked), mapper)
    }
}

/// The parameters a stage trains, when not all of them.
fn trained_subset<B: AutodiffBackend, M: AttentionLayers<B>>(
    model: &M,
    distill: bool,
    trainable: &Trainable,
) -> Option<HashSet<ParamId>> {
    let layers = model.attention_layers();
    match (distill, trainable) {
        (true, _) | (false, Trainable::FeatureMaps) => Some(
            layers
                .iter()
                .filter_map(|layer| layer.linear.as_ref())
                .flat_map(|linear| param_order::<B, _>(linear))
                .collect(),
        ),
        (false, Trainable::Lora(_)) => Some(
            layers
                .iter()
                .filter_map(|layer| layer.lora.as_ref())
                .flat_map(|lora| param_order::<B, _>(lora))
                .collect(),
        ),
        (false, Trainable::All) => None,
    }
}

/// Loss value and gradients of one micro-batch, split across the devices.
fn micro_batch_grads<B: AutodiffBackend, T: Task<B>>(
    ctx: &Context<'_, B, T>,
    model: &T::Model,
    examples: &[usize],
    distill: bool,
    seed: u64,
    scale: f64,
) -> Result<(f64, Vec<GradientsParams>), RunError> {
    let scalar = |loss: &Tensor<B, 1>| -> f64 {
        burn::tensor::ElementConversion::elem::<f64>(loss.clone().into_scalar())
    };
    if ctx.devices.len() == 1 {
        let loss = ctx
            .task
            .loss(model, examples, distill, seed, ctx.device())?;
        let value = scalar(&loss);
        if !value.is_finite() {
            return Ok((value, Vec::new()));
        }
        let grads = GradientsParams::from_grads(loss.mul_scalar(scale).backward(), model);
        return Ok((value, vec![grads]));
    }
    // Contiguous, near-equal shards; each device computes its share's loss weighted by its
    // size, so the summed gradients equal those of the whole micro-batch.
    let shards = ctx.devices.len().min(examples.len());
    let per = examples.len().div_ceil(shards);
    let main = ctx.device().clone();
    let results: Vec<Result<(f64, GradientsParams), RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = examples
            .chunks(per)
            .zip(ctx.devices)
            .map(|(shard, device)| {
                let replica = model.clone().fork(device);
                let weight = shard.len() as f64 / examples.len() as f64;
                let main = main.clone();
                scope.spawn(move || -> Result<(f64, GradientsParams), RunError> {
                    let loss = ctx.task.loss(&replica, shard, distill, seed, device)?;
                    let value = scalar(&loss);
                    let grads = loss.mul_scalar(scale * weight).backward();
                    let grads =
                        GradientsParams::from_grads(grads, &replica).to_device(&main, &replica);
                    Ok((value * weight, grads))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a device worker panicked"))
            .collect()
    });
    let mut total = 0.0;
    let mut all = Vec::with_capacity(results.len());
    for result in results {
        let (value, grads) = result?;
        total += value;
        all.push(grads);
    }
    Ok((total, all))
}

#[allow(clippy::too_many_arguments)]
fn train_stage<B: AutodiffBackend, T: Task<B>>(
    ctx: &Context<'_, B, T>,
    stage: &StageSpec,
    label: &str,
    model: T::Model,
    optimizer_record: Option<AdamRecord<B, T::Model>>,
    metrics: &mut MetricsLog,
    progress: &mut Progress,
    reporter: &mut Reporter,
) -> Result<(T::Model, StageResult), RunError> {
    let spec = ctx.spec;
    let device = ctx.device();
    let s = progress.stage;
    let total = stage_steps(stage, ctx.info.train_examples);
    let lr = stage.optimizer.lr();
    let mut optimizer: Adam<B, T::Model> = FusedAdamW::of_stage(stage).init();
    if let Some(record) = optimizer_record {
        optimizer = optimizer.load_record(record);
    }
    let distill = stage.kind == StageKind::Distill;
    let mut model = model;
    if progress.step == 0
        && let Trainable::Lora(lora) = &stage.trainable
    {
        // Adapters draw their initial values from the backend RNG: seeded per stage.
        B::seed(device, derived_seed(spec.seed, s, usize::MAX - 1, 0));
        model = hedgehog_models::attach_lora(model, lora, device)?;
        reporter.line(format!(
            "[{label}] LoRA rank {} alpha {} on {:?}",
            lora.rank, lora.alpha, lora.targets
        ));
    }
    let keep = trained_subset::<B, _>(&model, distill, &stage.trainable);
    let attention = attention_label(&model_attention::<B, _>(&model));
    if distill && keep.as_ref().is_some_and(|k| k.is_empty()) {
        // A sweep over maps runs one recipe for all: a map without parameters has nothing to
        // learn from the teacher, and its stage is recorded as zero steps.
        reporter.line(format!(
            "[{label}] {attention} has no trainable feature-map parameters: nothing to distil"
        ));
        let result = StageResult {
            label: label.to_string(),
            kind: stage.kind,
            steps: 0,
            final_loss: None,
            row: row_label(stage, &attention),
            attention,
            metrics: BTreeMap::new(),
            headline: None,
            seconds: 0.0,
            stopped_early: false,
            analysis: None,
        };
        return Ok((model, result));
    }
    if keep.as_ref().is_some_and(|k| k.is_empty()) {
        return Err(RunError::Config(format!(
            "[{label}] nothing to train: the model has no {} parameters",
            if matches!(stage.trainable, Trainable::Lora(_)) {
                "LoRA"
            } else {
                "feature-map"
            }
        )));
    }
    if let Some(keep) = &keep {
        // Frozen parameters stop being tracked for the stage (restored at its end): no autodiff
        // graph is built for what only they compute (e.g. the whole softmax teacher when
        // distilling), which burn would otherwise keep alive step after step, since that graph
        // never reaches backward. After the early returns above, so every path restores.
        model = model.map(&mut RequireGrad { keep: Some(keep) });
    }
    let sampler = EpochSampler::new(
        ctx.info.train_examples,
        derived_seed(spec.seed, s, usize::MAX, 0),
    );
    let mut last_loss = None;
    let mut last_evaluation: Option<Evaluation> = None;
    let mut stopped_early = false;
    let started = Instant::now();
    let seconds_before = progress.stage_seconds;
    let mut tokens_seen = 0usize;
    reporter.start(label, total, progress.step);
    while progress.step < total {
        let step = progress.step;
        let mut accumulator = GradientsAccumulator::<T::Model>::new();
        let mut loss_sum = 0.0;
        for micro in 0..stage.grad_accumulation {
            let position = (step * stage.grad_accumulation + micro) * stage.batch_size;
            let examples = sampler.take(position, stage.batch_size);
            let seed = derived_seed(spec.seed, s, step, micro);
            B::seed(device, seed);
            let (value, grads) = micro_batch_grads(
                ctx,
                &model,
                &examples,
                distill,
                seed,
                1.0 / stage.grad_accumulation as f64,
            )?;
            if !value.is_finite() {
                reporter.finish();
                let last = checkpoint::checkpoints(&ctx.dir)
                    .pop()
                    .map_or("none".into(), |(_, p)| p.display().to_string());
                return Err(RunError::Diverged(format!(
                    "[{label}] loss became {value} at step {step}: stopping; the last good checkpoint is {last}. \
                     Lower optimizer.lr or set clip."
                )));
            }
            loss_sum += value;
            for grads in grads {
                accumulator.accumulate(&model, grads);
            }
            tokens_seen += stage.batch_size * ctx.info.tokens_per_example;
        }
        let mut grads = accumulator.grads();
        if let Some(keep) = &keep {
            let mut visitor = KeepGrads {
                keep,
                from: &mut grads,
                to: GradientsParams::new(),
            };
            model.visit(&mut visitor);
            grads = visitor.to;
        }
        let rate = lr * stage.schedule.factor(step, total);
        model = optimizer.step(rate, model, grads);
        progress.step += 1;
        progress.global_step += 1;
        let loss = loss_sum / stage.grad_accumulation as f64;
        last_loss = Some(loss);
        let done = progress.step == total;
        let periodic = stage.eval_every > 0 && progress.step.is_multiple_of(stage.eval_every);
        // Distillation leaves the task metric alone unless asked (`eval_every`).
        let evaluate = periodic || (done && (!distill || stage.eval_every > 0));
        let evaluation = if evaluate {
            Some(ctx.task.evaluate(&model.valid(), device)?)
        } else {
            None
        };
        if let (Some(evaluation), Some(rule)) = (&evaluation, &stage.early_stopping) {
            let value = evaluation.headline_value();
            let improved = progress.early.best.is_none_or(|best| {
                Evaluation::improves(&evaluation.headline, value, best, rule.min_delta)
            });
            if improved {
                progress.early.best = Some(value);
                progress.early.since_best = 0;
            } else {
                progress.early.since_best += 1;
                if progress.early.since_best >= rule.patience {
                    stopped_early = true;
                }
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        let tps = tokens_seen as f64 / elapsed.max(1e-9);
        metrics.push(MetricsRow {
            stage: s,
            label: label.to_string(),
            step: progress.step,
            global_step: progress.global_step,
            loss: Some(loss),
            lr: Some(rate),
            tokens_per_second: Some(tps),
            validation: evaluation
                .as_ref()
                .map(|e| e.metrics.clone())
                .unwrap_or_default(),
        });
        let validation = evaluation.as_ref().map_or(String::new(), |e| {
            format!("  val {} {:.4}", e.headline, e.headline_value())
        });
        reporter.step(
            progress.step,
            format!("loss {loss:.4}  {tps:.0} tok/s{validation}"),
        );
        if progress.step.is_multiple_of(stage.log_every.max(1)) || done || evaluation.is_some() {
            reporter.line(format!(
                "[{label}] step {}/{total}  loss {loss:.4}  lr {rate:.2e}  {tps:.0} tok/s{validation}",
                progress.step
            ));
            metrics.flush()?;
        }
        if evaluation.is_some() {
            last_evaluation = evaluation;
        }
        if stopped_early {
            reporter.line(format!(
                "[{label}] early stop at step {}: no improvement in {} evaluations",
                progress.step, progress.early.since_best
            ));
            break;
        }
        if progress.step.is_multiple_of(spec.checkpoint.every) && !done {
            progress.stage_seconds = seconds_before + started.elapsed().as_secs_f64();
            metrics.flush()?;
            checkpoint::save(
                &ctx.dir,
                &model,
                Some(&optimizer),
                progress,
                spec.checkpoint.keep,
            )?;
        }
    }
    reporter.finish();
    metrics.flush()?;
    if matches!(stage.trainable, Trainable::Lora(_)) {
        model = hedgehog_models::merge_lora(model);
    }
    let (metrics_map, headline) = match last_evaluation {
        Some(evaluation) => (evaluation.metrics, Some(evaluation.headline)),
        None => (BTreeMap::new(), None),
    };
    let attention = attention_label(&model_attention::<B, _>(&model));
    let result = StageResult {
        label: label.to_string(),
        kind: stage.kind,
        steps: progress.step,
        final_loss: last_loss,
        row: row_label(stage, &attention),
        attention,
        metrics: metrics_map,
        headline,
        seconds: seconds_before + started.elapsed().as_secs_f64(),
        stopped_early,
        analysis: None,
    };
    // Every parameter is trainable again for the stages that follow.
    let model = if keep.is_some() {
        model.map(&mut RequireGrad { keep: None })
    } else {
        model
    };
    Ok((model, result))
}

#[cfg(test)]
mod tests {
    use super::*;

    type B = burn::backend::Autodiff<burn::backend::NdArray>;

    #[test]
    fn require_grad_tracks_only_the_kept_parameters_then_all_again() {
        let device = Default::default();
        let model = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        let keep: HashSet<ParamId> = [model.weight.id].into();
        let frozen = model.map(&mut RequireGrad { keep: Some(&keep) });
        assert!(frozen.weight.val().is_require_grad());
        let bias = |m: &burn::nn::Linear<B>| m.bias.as_ref().expect("bias").val();
        assert!(!bias(&frozen).is_require_grad());
        let restored = frozen.map(&mut RequireGrad { keep: None });
        assert!(restored.weight.val().is_require_grad());
        assert!(bias(&restored).is_require_grad());
    }
}
