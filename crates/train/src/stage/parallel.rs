//! One micro-batch's loss and gradients, on one device, split across several, or this
//! rank's share of it in a distributed run.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::distributed::shard;
use crate::error::RunError;
use crate::task::{DistillParts, Inner, Task};

use super::Context;
use super::objective::Objective;

/// One micro-batch's loss value, its distillation parts (for distillation) and gradients.
pub(super) struct MicroBatch {
    pub value: f64,
    pub parts: Option<DistillParts>,
    pub grads: Vec<GradientsParams>,
}

/// Loss value and gradients of one micro-batch, split across the devices.
pub(super) fn micro_batch_grads<B: AutodiffBackend, T: Task<B>>(
    ctx: &Context<'_, B, T>,
    model: &T::Model,
    examples: &[usize],
    objective: Objective<'_, Inner<B, T::Model>>,
    seed: u64,
    scale: f64,
) -> Result<MicroBatch, RunError> {
    let scalar = |loss: &Tensor<B, 1>| -> f64 {
        burn::tensor::ElementConversion::elem::<f64>(loss.clone().into_scalar())
    };
    if let Some(peer) = ctx.peer {
        // This rank's share, weighted by its size: the ranks' sum (`optimizer_step`) is the
        // whole micro-batch's gradient. A non-finite loss still gets its gradients, so that
        // every rank joins the same sum; the step is dropped after it.
        let share = shard(examples.len(), peer.rank(), peer.nodes());
        let weight = share.len() as f64 / examples.len() as f64;
        let (loss, parts) =
            objective.loss(ctx.task, model, &examples[share], seed, ctx.device())?;
        let value = scalar(&loss) * weight;
        let grads = GradientsParams::from_grads(loss.mul_scalar(scale * weight).backward(), model);
        return Ok(MicroBatch {
            value,
            parts: parts.map(|p| DistillParts::default().add_scaled(&p, weight)),
            grads: vec![grads],
        });
    }
    if ctx.devices.len() == 1 {
        let (loss, parts) = objective.loss(ctx.task, model, examples, seed, ctx.device())?;
        let value = scalar(&loss);
        if !value.is_finite() {
            return Ok(MicroBatch {
                value,
                parts,
                grads: Vec::new(),
            });
        }
        let grads = GradientsParams::from_grads(loss.mul_scalar(scale).backward(), model);
        return Ok(MicroBatch {
            value,
            parts,
            grads: vec![grads],
        });
    }
    // Contiguous, near-equal shards; each device computes its share's loss weighted by its
    // size, so the summed gradients equal those of the whole micro-batch.
    let shards = ctx.devices.len().min(examples.len());
    let per = examples.len().div_ceil(shards);
    let main = ctx.device().clone();
    type Shard = (f64, Option<DistillParts>, GradientsParams);
    let results: Vec<Result<Shard, RunError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = examples
            .chunks(per)
            .zip(ctx.devices)
            .map(|(shard, device)| {
                let replica = model.clone().fork(device);
                let weight = shard.len() as f64 / examples.len() as f64;
                let main = main.clone();
                scope.spawn(move || -> Result<Shard, RunError> {
                    let (loss, parts) = objective.loss(ctx.task, &replica, shard, seed, device)?;
                    let value = scalar(&loss);
                    let grads = loss.mul_scalar(scale * weight).backward();
                    let grads =
                        GradientsParams::from_grads(grads, &replica).to_device(&main, &replica);
                    let parts = parts.map(|p| DistillParts::default().add_scaled(&p, weight));
                    Ok((value * weight, parts, grads))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a device worker panicked"))
            .collect()
    });
    let mut total = MicroBatch {
        value: 0.0,
        parts: None,
        grads: Vec::with_capacity(results.len()),
    };
    for result in results {
        let (value, parts, grads) = result?;
        total.value += value;
        total.parts = match (total.parts, parts) {
            (Some(sum), Some(part)) => Some(sum.add_scaled(&part, 1.0)),
            (sum, part) => sum.or(part),
        };
        total.grads.push(grads);
    }
    Ok(total)
}
