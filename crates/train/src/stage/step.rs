//! One optimiser step, shared by the training stages ([`super::train`]) and
//! `hedgehog bench-train`; the loss it descends is an [`Objective`].

use std::collections::HashSet;

use burn::module::{AutodiffModule, Module, ParamId};
use burn::optim::{GradientsAccumulator, GradientsParams, Optimizer};
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::{Tensor, TensorData};

use crate::checkpoint::Adam;
use crate::distributed::{Peer, flatten_grads, trained_ids, unflatten_grads};
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
        // A distributed rank decides after the sum over the ranks, which all must join.
        if !value.is_finite() && ctx.peer.is_none() {
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
    if let Some(peer) = ctx.peer {
        grads = sum_over_ranks::<B, T::Model>(
            peer,
            &model,
            grads,
            (&mut loss_sum, &mut parts_sum),
            ctx.device(),
        )?;
        if !loss_sum.is_finite() {
            return Ok(Step::Diverged(loss_sum));
        }
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

/// The gradients, loss and distillation parts of this step summed over the ranks, in one
/// all-reduce (the loss and parts travel as f32 after the gradients).
fn sum_over_ranks<B: AutodiffBackend, M: AutodiffModule<B>>(
    peer: &Peer,
    model: &M,
    mut grads: GradientsParams,
    (loss, parts): (&mut f64, &mut Option<DistillParts>),
    device: &B::Device,
) -> Result<GradientsParams, RunError> {
    let trained = trained_ids::<B, M>(model, &grads);
    let mut numbers = vec![*loss as f32];
    if let Some(parts) = parts.as_mut() {
        numbers.extend(parts.numbers_mut().map(|v| *v as f32));
    }
    let count = numbers.len();
    let extra = Tensor::from_data(TensorData::new(numbers, [count]), device);
    let flat = flatten_grads::<B, M>(model, &mut grads, extra);
    let summed = peer.sum::<B::InnerBackend>(flat, "summing a step's gradients")?;
    let (grads, extra) = unflatten_grads::<B, M>(model, &trained, summed);
    let numbers: Vec<f32> = extra
        .into_data()
        .to_vec()
        .map_err(|e| RunError::Distributed(format!("reading the summed loss: {e:?}")))?;
    *loss = f64::from(numbers[0]);
    if let Some(parts) = parts.as_mut() {
        for (value, summed) in parts.numbers_mut().zip(&numbers[1..]) {
            *value = f64::from(*summed);
        }
    }
    Ok(grads)
}
