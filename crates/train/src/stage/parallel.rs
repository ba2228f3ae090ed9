//! One micro-batch's loss and gradients, on one device or split across several.

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::RunError;
use crate::task::Task;

use super::Context;

/// Loss value and gradients of one micro-batch, split across the devices.
pub(super) fn micro_batch_grads<B: AutodiffBackend, T: Task<B>>(
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
