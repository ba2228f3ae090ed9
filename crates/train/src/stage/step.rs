//! One optimiser step, shared by the training stages ([`super::train`]) and
//! `hedgehog bench-train`; the loss it descends is an [`Objective`].

use std::collections::HashSet;

use burn::module::{AutodiffModule, Module, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::Adam;
use crate::error::RunError;
use crate::seeds::derived_seed;
use crate::spec::StageSpec;
use crate::task::{DistillParts, EpochSampler, Task};

use super::Context;
use super::objective::Objective;
use super::parallel::{MicroBatch, micro_batch_grads};
use super::subset::KeepGrads;

/// Which step of which stage: `step` of `total` in stage `stage`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepAt {
    pub stage: usize,
    pub step: usize,
    pub total: usize,
}

/// What a step updates and reads besides the model: the optimiser, the data order, the
/// trained subset (`None`: every parameter) and the loss.
pub(crate) struct Learner<'l, B: AutodiffBackend, M: AutodiffModule<B>> {
    pub optimizer: &'l mut Adam<B, M>,
    pub sampler: &'l EpochSampler,
    pub keep: Option<&'l HashSet<ParamId>>,
    pub objective: Objective<'l, M::InnerModule>,
}

/// The outcome of [`optimizer_step`].
pub(crate) enum Step<M> {
    /// The stepped model, the mean loss over the micro-batches, what a distillation loss is
    /// made of (also the mean over the micro-batches) and the learning rate used.
    Taken {
        model: M,
        loss: f64,
        parts: Option<DistillParts>,
        rate: f64,
    },
    /// A micro-batch's loss was not finite (this value); nothing was stepped.
    Diverged(f64),
}

/// One optimiser step of `stage` over `grad_accumulation` micro-batches, each seeded by (run
/// seed, stage, step, micro-batch): the loss and gradients (split across the devices), only the
/// trained subset's gradients kept, then the update at the scheduled learning rate. The
/// training stages and `hedgehog bench-train` both step through here.
pub(crate) fn optimizer_step<B: AutodiffBackend, T: Task<B>>(
    ctx: &Context<'_, B, T>,
    stage: &StageSpec,
    at: StepAt,
    model: T::Model,
    learner: Learner<'_, B, T::Model>,
) -> Result<Step<T::Model>, RunError> {
    let mut accumulator = GradientsAccumulator::<T::Model>::new();
    let mut loss_sum = 0.0;
    let mut parts_sum: Option<DistillParts> = None;
    for micro in 0..stage.grad_accumulation {
        let position = (at.step * stage.grad_accumulation + micro) * stage.batch_size;
        let examples = learner.sampler.take(position, stage.batch_size);
        let seed = derived_seed(ctx.spec.seed, at.stage, at.step, micro);
        B::seed(ctx.device(), seed);
        let MicroBatch {
            value,
            parts,
            grads,
        } = micro_batch_grads(
            ctx,
            &model,
            &examples,
            learner.objective,
            seed,
            1.0 / stage.grad_accumulation as f64,
        )?;
        if !value.is_finite() {
            return Ok(Step::Diverged(value));
        }
        loss_sum += value;
        if let Some(parts) = parts {
            parts_sum = Some(parts_sum.unwrap_or_default().add_scaled(&parts, 1.0));
        }
        for grads in grads {
            accumulator.accumulate(&model, grads);
        }
    }
    let mut grads = accumulator.grads();
    if let Some(keep) = learner.keep {
        let mut visitor = KeepGrads {
            keep,
            from: &mut grads,
            to: GradientsParams::new(),
        };
        model.visit(&mut visitor);
        grads = visitor.to;
    }
    let rate = stage.optimizer.lr() * stage.schedule.factor(at.step, at.total);
    let model = learner.optimizer.step(rate, model, grads);
    let micro_batches = stage.grad_accumulation as f64;
    Ok(Step::Taken {
        model,
        loss: loss_sum / micro_batches,
        parts: parts_sum.map(|parts| parts.divided(micro_batches)),
        rate,
    })
}
