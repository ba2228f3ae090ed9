//! A distill stage's `keep_softmax:`: when its steps are done, every layer's distillation loss is
//! measured on fresh training batches, and the layers where the linear attention matches its
//! softmax worst get softmax back. The measurements and the choice are written to
//! `softmax_layers.json`, so what a later stage runs is traceable to numbers in the run folder.

use burn::module::Module;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_models::checkpoint::keep_softmax;
use serde::{Deserialize, Serialize};

use crate::error::{RunError, write_atomic};
use crate::seeds::derived_seed;
use crate::spec::{DistillLoss, KeepSoftmax, StageSpec};
use crate::summary::{StageResult, model_attention_label, row_label};
use crate::task::{EpochSampler, Inner, Task};

use super::StageRun;
use super::objective::Objective;

/// `softmax_layers.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SoftmaxLayers {
    /// The distill stage (index and label) that measured and chose.
    pub stage: usize,
    pub label: String,
    /// The losses measured: the stage's objective and its weights.
    pub loss: DistillLoss,
    pub batches: usize,
    pub batch_size: usize,
    /// Each distilled layer's mean loss over the batches, highest first.
    pub ranking: Vec<LayerLoss>,
    /// The layers given softmax back, ascending.
    pub softmax_layers: Vec<usize>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerLoss {
    pub layer: usize,
    pub loss: f64,
}

/// Measures, chooses, writes `softmax_layers.json`, switches the chosen layers, and records
/// them (and the new attention label and row) in the stage's result.
pub(super) fn keep_worst_layers<B: AutodiffBackend, T: Task<B>>(
    run: &mut StageRun<'_, '_, B, T>,
    stage: &StageSpec,
    keep: &KeepSoftmax,
    model: T::Model,
    mut result: StageResult,
) -> Result<(T::Model, StageResult), RunError> {
    let ranking = measure(run, stage, keep, &model)?;
    if keep.layers >= ranking.len() {
        return Err(RunError::Config(format!(
            "[{}] keep_softmax.layers is {} but only {} layers are linear: keeping all of them \
             softmax converts nothing; use at most {}",
            result.label,
            keep.layers,
            ranking.len(),
            ranking.len().saturating_sub(1)
        )));
    }
    let mut chosen: Vec<usize> = ranking[..keep.layers].iter().map(|l| l.layer).collect();
    chosen.sort_unstable();
    let record = SoftmaxLayers {
        stage: run.progress.stage,
        label: result.label.clone(),
        loss: stage.distill_loss(),
        batches: keep.batches,
        batch_size: stage.batch_size,
        ranking,
        softmax_layers: chosen.clone(),
    };
    write_atomic(
        &run.ctx.dir.join("softmax_layers.json"),
        &serde_json::to_vec_pretty(&record).expect("the record serialises"),
    )?;
    let model = keep_softmax(model, &chosen)?;
    let losses: Vec<String> = record.ranking[..keep.layers]
        .iter()
        .map(|l| format!("layer {} {:.4}", l.layer, l.loss))
        .collect();
    run.reporter.line(format!(
        "[{}] softmax kept in the {} layers with the highest distillation loss ({}): \
         softmax_layers.json",
        result.label,
        keep.layers,
        losses.join(", ")
    ));
    result.attention = model_attention_label::<B, _>(&model);
    result.row = row_label(stage, &result.attention);
    result.softmax_layers = Some(chosen);
    Ok((model, result))
}

/// Each distilled layer's stage loss, averaged over `keep.batches` training batches drawn in
/// an order of their own (not the training order), sorted highest first (ties by layer).
fn measure<B: AutodiffBackend, T: Task<B>>(
    run: &StageRun<'_, '_, B, T>,
    stage: &StageSpec,
    keep: &KeepSoftmax,
    model: &T::Model,
) -> Result<Vec<LayerLoss>, RunError> {
    let ctx = run.ctx;
    let at = run.progress.stage;
    let sampler = EpochSampler::new(
        ctx.info.train_examples,
        derived_seed(ctx.spec.seed, at, usize::MAX - 2, 0),
    );
    // Measured only: no parameter is tracked, so no autodiff graph is built.
    let frozen = model.clone().no_grad();
    let objective = Objective::<Inner<B, T::Model>>::Distillation(stage.distill_loss());
    let mut sums: Vec<(usize, f64)> = Vec::new();
    for batch in 0..keep.batches {
        let examples = sampler.take(batch * stage.batch_size, stage.batch_size);
        let seed = derived_seed(ctx.spec.seed, at, usize::MAX - 2, batch + 1);
        let (_, parts) = objective.loss(ctx.task, &frozen, &examples, seed, ctx.device())?;
        let layers = parts
            .expect("a distillation loss reports its layers")
            .layers;
        if sums.is_empty() {
            sums = layers.layers.iter().map(|&layer| (layer, 0.0)).collect();
        }
        for (sum, value) in sums.iter_mut().zip(&layers.loss) {
            sum.1 += value;
        }
    }
    let mut ranking: Vec<LayerLoss> = sums
        .into_iter()
        .map(|(layer, sum)| LayerLoss {
            layer,
            loss: sum / keep.batches as f64,
        })
        .collect();
    ranking.sort_by(|a, b| b.loss.total_cmp(&a.loss).then(a.layer.cmp(&b.layer)));
    Ok(ranking)
}
