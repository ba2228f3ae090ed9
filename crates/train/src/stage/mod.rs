//! The stage kinds of a run behind one small interface, [`Stage`]: `train` and `finetune`
//! ([`train`]), `distill` ([`distill`]), `eval` ([`eval`]), `analyze` ([`analyze`]) and `passkey` ([`passkey`]). A new
//! kind is a file implementing [`Stage`] plus its arm in [`run_stage`]; a new loss for the
//! training stages is an [`objective::Objective`].

mod analyze;
mod distill;
mod eval;
mod objective;
mod parallel;
mod passkey;
mod select;
mod step;
mod subset;
mod train;

pub(crate) use objective::Objective;
pub(crate) use step::{Learner, Step, StepAt, optimizer_step};
pub(crate) use train::stage_steps;

use std::path::{Path, PathBuf};

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::checkpoint::{self as model_checkpoint, Checkpoint};

use crate::checkpoint::{AdamRecord, Progress};
use crate::distributed::Peer;
use crate::error::RunError;
use crate::metrics::MetricsLog;
use crate::progress::Reporter;
use crate::spec::{Spec, StageKind, StageSpec};
use crate::summary::StageResult;
use crate::task::{Task, TaskInfo};

/// What every stage of a run shares.
pub(crate) struct Context<'a, B: AutodiffBackend, T: Task<B>> {
    pub spec: &'a Spec,
    pub task: &'a T,
    pub info: TaskInfo,
    pub dir: PathBuf,
    pub devices: &'a [B::Device],
    /// This process's rank when the run is split over processes (`distributed:`).
    pub peer: Option<&'a Peer>,
}

impl<B: AutodiffBackend, T: Task<B>> Context<'_, B, T> {
    /// The device that holds the model.
    pub fn device(&self) -> &B::Device {
        &self.devices[0]
    }
}

/// What a stage may change besides the model: the metrics log, the run's progress (the stage
/// and step it stands at, early-stopping state) and the reporter.
pub(crate) struct StageRun<'r, 'a, B: AutodiffBackend, T: Task<B>> {
    pub ctx: &'r Context<'a, B, T>,
    pub metrics: &'r mut MetricsLog,
    pub progress: &'r mut Progress,
    pub reporter: &'r mut Reporter,
}

/// One kind of stage.
pub(crate) trait Stage<B: AutodiffBackend, T: Task<B>> {
    /// Runs `stage` on `model` from the step `run.progress` stands at (`optimizer`: the state
    /// a checkpoint saved inside this stage, when resuming there); returns the model the next
    /// stage starts from and this stage's result.
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        optimizer: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError>;
}

/// The registry: each stage kind's implementation.
pub(crate) fn run_stage<B: AutodiffBackend, T: Task<B>>(
    run: &mut StageRun<'_, '_, B, T>,
    stage: &StageSpec,
    model: T::Model,
    optimizer: Option<AdamRecord<B, T::Model>>,
) -> Result<(T::Model, StageResult), RunError> {
    match stage.kind {
        StageKind::Train | StageKind::Finetune => train::Train.run(run, stage, model, optimizer),
        StageKind::Distill => distill::Distill.run(run, stage, model, optimizer),
        StageKind::Eval => eval::Eval.run(run, stage, model, optimizer),
        StageKind::Analyze => analyze::Analyze.run(run, stage, model, optimizer),
        StageKind::Passkey => passkey::Passkey.run(run, stage, model, optimizer),
    }
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
