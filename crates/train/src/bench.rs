//! Training throughput of a spec's train stage, for `hedgehog bench-train`: the stage's model,
//! data order, optimiser (AdamW with the stage's clipping) and loss, stepped by the training
//! stages' own step ([`crate::stage::optimizer_step`]), timed without evaluation, checkpoints or
//! run folders.
//! `tools/bench_train_compare.py` sets it beside the same model trained by PyTorch.

use std::time::Instant;

use burn::tensor::backend::AutodiffBackend;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use serde::Serialize;

use crate::error::{RunError, file_error};
use crate::memory::{peak_rss_mib, reset_peak_rss};
use crate::optim::FusedAdamW;
use crate::seeds::derived_seed;
use crate::spec::{Family, Spec, StageKind, StageSpec, TaskSpec};
use crate::stage::{Context, Learner, Objective, Step, StepAt, convert, optimizer_step};
use crate::summary::model_attention_label;
use crate::task::lm::LmTask;
use crate::task::{EpochSampler, Task};

/// What a benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    pub model_parameters: usize,
    pub batch_size: usize,
    pub tokens_per_step: usize,
    /// Each timed step's wall time, ms (warm-up steps excluded).
    pub step_ms: Vec<f64>,
    /// Tokens over the timed steps' total time.
    pub tokens_per_second: f64,
    /// The process's resident-set high-water mark over the timed steps, MiB (Linux; `None`
    /// elsewhere).
    pub peak_rss_mib: Option<f64>,
    pub attention: String,
}

/// Times `steps` optimiser steps of stage `stage` (a `train` or `finetune` stage of a
/// language-modelling spec) after `warmup` untimed ones.
pub fn bench_train<B: AutodiffBackend>(
    spec: &Spec,
    stage: usize,
    steps: usize,
    warmup: usize,
    device: &B::Device,
) -> Result<TrainBench, RunError> {
    match (&spec.task, spec.model.family) {
        (TaskSpec::LanguageModeling { .. }, Family::Gpt2) => bench_task::<B, _>(
            spec,
            &LmTask::<Gpt2<B>>::new(spec)?,
            stage,
            steps,
            warmup,
            device,
        ),
        (TaskSpec::LanguageModeling { .. }, Family::Llama) => bench_task::<B, _>(
            spec,
            &LmTask::<Llama<B>>::new(spec)?,
            stage,
            steps,
            warmup,
            device,
        ),
        _ => Err(RunError::Config(
            "bench-train measures language-modelling specs (GPT-2 or Llama)".into(),
        )),
    }
}

fn bench_task<B: AutodiffBackend, T: Task<B>>(
    spec: &Spec,
    task: &T,
    stage_index: usize,
    steps: usize,
    warmup: usize,
    device: &B::Device,
) -> Result<TrainBench, RunError> {
    let stage = timed_stage(spec, stage_index, steps)?;
    // Nothing is written to a run folder; a conversion goes through a scratch folder.
    let ctx = Context {
        spec,
        task,
        info: task.info(),
        dir: std::env::temp_dir().join(format!("hedgehog-bench-{}", std::process::id())),
        devices: std::slice::from_ref(device),
        peer: None,
    };
    B::seed(device, spec.seed);
    let mut model = task.build_model(device)?;
    if let Some(attention) = &stage.attention {
        std::fs::create_dir_all(&ctx.dir).map_err(file_error(&ctx.dir))?;
        model = convert::<B, T::Model>(model, attention, &ctx.dir, device)?;
        let _ = std::fs::remove_dir_all(&ctx.dir);
    }
    let attention = model_attention_label::<B, _>(&model);
    let model_parameters = burn::module::Module::num_params(&model);
    let mut optimizer = FusedAdamW::of_stage(stage).init::<B, T::Model>();
    let sampler = EpochSampler::new(
        ctx.info.train_examples,
        derived_seed(spec.seed, stage_index, usize::MAX, 0),
    );
    let mut step_ms = Vec::with_capacity(steps);
    let peak_reset = reset_peak_rss();
    let mut timed_start = Instant::now();
    for step in 0..warmup + steps {
        if step == warmup {
            timed_start = Instant::now();
        }
        let started = Instant::now();
        let at = StepAt {
            stage: stage_index,
            step,
            total: warmup + steps,
        };
        let learner = Learner {
            optimizer: &mut optimizer,
            sampler: &sampler,
            keep: None,
            objective: Objective::Task,
        };
        model = match optimizer_step(&ctx, stage, at, model, learner)? {
            Step::Taken { model, .. } => model,
            Step::Diverged(value) => {
                return Err(RunError::Diverged(format!(
                    "bench-train: the loss became {value} at step {step}"
                )));
            }
        };
        if step >= warmup {
            step_ms.push(started.elapsed().as_secs_f64() * 1e3);
        }
    }
    let elapsed = timed_start.elapsed().as_secs_f64();
    let tokens_per_step = stage.grad_accumulation * stage.batch_size * ctx.info.tokens_per_example;
    Ok(TrainBench {
        model_parameters,
        batch_size: stage.batch_size,
        tokens_per_step,
        tokens_per_second: (steps * tokens_per_step) as f64 / elapsed.max(1e-9),
        step_ms,
        peak_rss_mib: peak_reset.then(peak_rss_mib).flatten(),
        attention,
    })
}

/// The stage `bench-train` times: a `train` or `finetune` stage, with at least one step.
fn timed_stage(spec: &Spec, stage_index: usize, steps: usize) -> Result<&StageSpec, RunError> {
    let stage = spec.stages.get(stage_index).ok_or_else(|| {
        RunError::Config(format!(
            "the spec has {} stages; --stage {stage_index} does not exist",
            spec.stages.len()
        ))
    })?;
    if !matches!(stage.kind, StageKind::Train | StageKind::Finetune) {
        return Err(RunError::Config(format!(
            "stage {stage_index} is a {:?} stage; bench-train times train or finetune stages",
            stage.kind
        )));
    }
    if steps == 0 {
        return Err(RunError::Config("--steps must be at least 1".into()));
    }
    Ok(stage)
}
