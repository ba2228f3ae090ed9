//! The pipeline behind `hedgehog run`: every point of a spec's sweep, each a run folder whose
//! stages ([`crate::stage`]) run in turn over one model, with checkpoints and exact resume.
//!
//! The loop is our own rather than burn-train's `Learner`: distillation trains on per-layer
//! attention weights with the base frozen, stages switch the model's attention in the middle of
//! a run, and exact resume needs the data order and dropout seeds to be pure functions of
//! (seed, stage, step), which a hand-written loop makes plain. It is built from burn's own
//! pieces: `OptimizerAdaptor`, `GradientsAccumulator`, and `GradientsParams::to_device` for
//! data parallelism over a device list.

mod folder;
mod preflight;

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;

use crate::checkpoint::{self, AdamRecord, EarlyState, Progress};
use crate::distributed::{Peer, rank_results, spec_fingerprint, weights_checksum};
use crate::error::write_atomic;
use crate::metrics::MetricsLog;
use crate::progress::Reporter;
use crate::spec::{Family, Spec, SweepPoint, TaskSpec, Trainable};
use crate::stage::{self, Context, StageRun};
use crate::summary::attention_label;
use crate::task::Task;
use crate::task::glue::GlueTask;
use crate::task::images::ImageTask;
use crate::task::lm::LmTask;
use crate::task::recall::RecallTask;

pub use crate::error::RunError;
pub use crate::summary::{LayerLosses, RunSummary, StageResult, summary_from_json};
use folder::Destination;

/// How `run` is asked to behave.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `results/` by default.
    pub results_dir: PathBuf,
    /// Continue the newest run with the same resolved spec from its last checkpoint.
    pub resume: bool,
    /// Print progress.
    pub verbose: bool,
    /// Start a fresh run even when its cost estimate passes a day (`hedgehog run --yes`).
    pub confirmed: bool,
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
    with_peer(spec, options, |options, peer| {
        let mut summaries = Vec::with_capacity(total);
        for (i, point) in points.iter().enumerate() {
            if total > 1 && options.verbose {
                println!("== sweep point {}/{total}: {}", i + 1, point.describe());
            }
            summaries.push(run_point_as::<B>(point, options, devices, peer)?);
        }
        Ok(summaries)
    })
}

/// Runs one spec (one sweep point).
pub fn run_point<B: AutodiffBackend>(
    point: &SweepPoint,
    options: &RunOptions,
    devices: &[B::Device],
) -> Result<RunSummary, RunError> {
    with_peer(&point.spec, options, |options, peer| {
        run_point_as::<B>(point, options, devices, peer)
    })
}

/// Calls `body` as this process's rank of a distributed run when `spec` has `distributed:`
/// (joined before; rank N > 0 writes under `<results>/.rank-N`), else alone.
fn with_peer<R, F>(spec: &Spec, options: &RunOptions, body: F) -> Result<R, RunError>
where
    F: FnOnce(&RunOptions, Option<&Peer>) -> Result<R, RunError>,
{
    let Some(distributed) = &spec.distributed else {
        return body(options, None);
    };
    if options.verbose {
        let (rank, nodes, address) = (distributed.rank, distributed.nodes, &distributed.address);
        match rank {
            0 => println!("rank 0 of {nodes}: waiting at {address} for the other ranks"),
            _ => println!("rank {rank} of {nodes}: connecting to rank 0 at {address}"),
        }
    }
    let peer = Peer::join(distributed)?;
    let options = RunOptions {
        results_dir: rank_results(&options.results_dir, distributed.rank),
        ..options.clone()
    };
    let outcome = body(&options, Some(&peer));
    if options.verbose {
        println!("{}", peer.sum_report());
    }
    outcome
}

fn run_point_as<B: AutodiffBackend>(
    point: &SweepPoint,
    options: &RunOptions,
    devices: &[B::Device],
    peer: Option<&Peer>,
) -> Result<RunSummary, RunError> {
    if devices.is_empty() {
        return Err(RunError::Config("no device to run on".into()));
    }
    let spec = &point.spec;
    match (&spec.task, spec.model.family) {
        (TaskSpec::LanguageModeling { .. }, Family::Gpt2) => run_task::<B, _>(
            point,
            options,
            &LmTask::<Gpt2<B>>::new(spec)?,
            devices,
            peer,
        ),
        (TaskSpec::LanguageModeling { .. }, Family::Llama) => run_task::<B, _>(
            point,
            options,
            &LmTask::<Llama<B>>::new(spec)?,
            devices,
            peer,
        ),
        (TaskSpec::AssociativeRecall { .. }, Family::Gpt2) => run_task::<B, _>(
            point,
            options,
            &RecallTask::<Gpt2<B>>::new(spec)?,
            devices,
            peer,
        ),
        (TaskSpec::AssociativeRecall { .. }, Family::Llama) => run_task::<B, _>(
            point,
            options,
            &RecallTask::<Llama<B>>::new(spec)?,
            devices,
            peer,
        ),
        (TaskSpec::Glue { .. }, Family::Bert) => {
            run_task::<B, _>(point, options, &GlueTask::new(spec)?, devices, peer)
        }
        (TaskSpec::Images { .. }, Family::Vit) => {
            run_task::<B, _>(point, options, &ImageTask::new(spec)?, devices, peer)
        }
        (task, family) => Err(RunError::Config(format!(
            "task {} cannot run on a {family:?} model (validated specs never get here)",
            task.kind()
        ))),
    }
}

/// Where a run starts: the model, the progress and the optimiser state of its last checkpoint,
/// or a fresh model at the beginning.
struct Start<B: AutodiffBackend, M: burn::module::AutodiffModule<B>> {
    model: M,
    progress: Progress,
    optimizer: Option<AdamRecord<B, M>>,
    /// Whether a checkpoint was loaded (the metrics log then continues after its step).
    restored: bool,
}

fn run_task<B: AutodiffBackend, T: Task<B>>(
    point: &SweepPoint,
    options: &RunOptions,
    task: &T,
    devices: &[B::Device],
    peer: Option<&Peer>,
) -> Result<RunSummary, RunError> {
    let spec = &point.spec;
    let mut reporter = Reporter::new(options.verbose);
    let (dir, resuming) = match folder::destination(point, options)? {
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
        peer,
    };
    let start = start::<B, T>(&ctx, resuming, &reporter).and_then(|start| {
        let cost =
            preflight::estimate::<B>(spec, &ctx.info, start.model.num_params(), ctx.device());
        reporter.line(format!("cost of {}'s training stages:", spec.name));
        for line in &cost.lines {
            reporter.line(line);
        }
        // Rank 0 decides for all: the others would wait for it at the first sum anyway.
        if !resuming && peer.is_none_or(|p| p.rank() == 0) {
            preflight::check(&cost, spec, options.confirmed)?;
        }
        if let Some(peer) = peer {
            let [a, b, c] = spec_fingerprint(spec);
            let progress = &start.progress;
            peer.agree::<B::InnerBackend>(
                &[
                    ("the spec (fingerprint, part 1)", a),
                    ("the spec (fingerprint, part 2)", b),
                    ("the spec (fingerprint, part 3)", c),
                    ("the stage", progress.stage as f32),
                    ("the step", progress.global_step as f32),
                    ("the weights (sum)", weights_checksum::<B, _>(&start.model)),
                ],
                ctx.device(),
            )?;
        }
        Ok(start)
    });
    let start = match start {
        Ok(start) => start,
        Err(err) => {
            // A fresh folder holds nothing but this start's log yet: a failed start (corrupt
            // weights, say, or a cost left unconfirmed) leaves no empty run-NNN behind to be
            // taken for a run.
            if !resuming {
                let _ = std::fs::remove_dir_all(&ctx.dir);
            }
            return Err(err);
        }
    };
    let resolved = serde_saphyr::to_string(spec).map_err(|e| RunError::File {
        path: ctx.dir.join("spec.yaml"),
        message: e.to_string(),
    })?;
    write_atomic(&ctx.dir.join("spec.yaml"), resolved.as_bytes())?;
    let mut metrics = MetricsLog::open(
        &ctx.dir,
        start.restored.then_some(start.progress.global_step),
        &spec.distill_components(),
    )?;
    reporter.line(format!(
        "run {} · {} · {} parameters",
        ctx.dir.display(),
        ctx.info.describe,
        start.model.num_params()
    ));
    // The summary counts the model as the last finished stage left it, so that a run resumed
    // in a later stage (whose checkpoint already has that stage's feature maps) reports what
    // an uninterrupted one does.
    let summary = |progress: &Progress, parameters: usize, finished: bool| RunSummary {
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
    let Start {
        mut model,
        mut progress,
        mut optimizer,
        ..
    } = start;
    while progress.stage < spec.stages.len() {
        let mut run = StageRun {
            ctx: &ctx,
            metrics: &mut metrics,
            progress: &mut progress,
            reporter: &mut reporter,
        };
        model = run_next_stage(&mut run, model, optimizer.take())?;
        if let Some(peer) = peer {
            peer.agree::<B::InnerBackend>(
                &[
                    ("the stage", progress.stage as f32),
                    ("the weights (sum)", weights_checksum::<B, _>(&model)),
                ],
                ctx.device(),
            )?;
        }
        write_summary(&ctx.dir, &summary(&progress, model.num_params(), false))?;
    }
    folder::export_final(&ctx.dir, spec.model.pretrained.as_deref())?;
    let done = summary(&progress, model.num_params(), true);
    write_summary(&ctx.dir, &done)?;
    Ok(done)
}

/// The last checkpoint's state when resuming (a run folder without one starts over), else a
/// freshly initialised model.
fn start<B: AutodiffBackend, T: Task<B>>(
    ctx: &Context<'_, B, T>,
    resuming: bool,
    reporter: &Reporter,
) -> Result<Start<B, T::Model>, RunError> {
    let (spec, device) = (ctx.spec, ctx.device());
    let resume_from = if resuming {
        checkpoint::checkpoints(&ctx.dir).pop()
    } else {
        None
    };
    let Some((step, path)) = resume_from else {
        if resuming {
            reporter.line(format!(
                "no checkpoint in {}: starting from the beginning",
                ctx.dir.display()
            ));
        }
        // burn's initialisers draw from the backend's RNG: seed it so runs repeat.
        B::seed(device, spec.seed);
        return Ok(Start {
            model: ctx.task.build_model(device)?,
            progress: Progress::default(),
            optimizer: None,
            restored: false,
        });
    };
    let stage_lora = std::fs::read_to_string(path.join("progress.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Progress>(&t).ok())
        .and_then(|p| spec.stages.get(p.stage))
        .and_then(|stage| match &stage.trainable {
            Trainable::Lora(config) => Some(config.clone()),
            _ => None,
        });
    let restored = checkpoint::load::<B, T::Model>(&path, stage_lora.as_ref(), device)?;
    reporter.line(format!(
        "resuming {} from checkpoint step {step} (stage {}, step {})",
        ctx.dir.display(),
        restored.progress.stage,
        restored.progress.step
    ));
    Ok(Start {
        model: restored.model,
        progress: restored.progress,
        optimizer: restored.optimizer,
        restored: true,
    })
}

/// Runs the stage `run.progress` stands at, from its start or from inside it (resuming), and
/// checkpoints the model at its end.
fn run_next_stage<B: AutodiffBackend, T: Task<B>>(
    run: &mut StageRun<'_, '_, B, T>,
    model: T::Model,
    optimizer: Option<AdamRecord<B, T::Model>>,
) -> Result<T::Model, RunError> {
    let spec = run.ctx.spec;
    let stage = &spec.stages[run.progress.stage];
    let mut model = model;
    // Switch attention when a stage starts (not when resuming inside it: the checkpoint
    // already holds the switched model).
    if run.progress.step == 0
        && let Some(attention) = &stage.attention
    {
        model = stage::convert::<B, T::Model>(model, attention, &run.ctx.dir, run.ctx.device())?;
        run.reporter.line(format!(
            "[{}] attention → {}",
            stage.label(),
            attention_label(attention)
        ));
    }
    let (model, result) = stage::run_stage(run, stage, model, optimizer)?;
    let progress = &mut *run.progress;
    progress.results.push(result);
    progress.stage += 1;
    progress.step = 0;
    progress.stage_seconds = 0.0;
    progress.early = EarlyState::default();
    checkpoint::save::<B, T::Model>(&run.ctx.dir, &model, None, progress, spec.checkpoint.keep)?;
    Ok(model)
}

fn write_summary(dir: &Path, summary: &RunSummary) -> Result<(), RunError> {
    write_atomic(
        &dir.join("summary.json"),
        &serde_json::to_vec_pretty(summary).expect("summary serialises"),
    )
}
