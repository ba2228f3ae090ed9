//! The `distill` stage (Hedgehog's stage 1): the feature maps alone learn to match each layer's
//! softmax attention (the stage's `loss:`, by default the weights' soft cross-entropy),
//! everything else frozen; with `keep_softmax:`, the layers it matches worst then get softmax
//! back ([`super::select`]).

use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::AdamRecord;
use crate::error::RunError;
use crate::spec::StageSpec;
use crate::summary::{StageResult, model_attention_label};
use crate::task::Task;

use super::objective::Objective;
use super::select::keep_worst_layers;
use super::subset::trained_subset;
use super::train::train;
use super::{Stage, StageRun};

pub(super) struct Distill;

impl<B: AutodiffBackend, T: Task<B>> Stage<B, T> for Distill {
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        optimizer: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError> {
        let trained = trained_subset::<B, _>(&model, true, &stage.trainable);
        if trained.is_some_and(|k| k.is_empty()) {
            // A sweep over maps runs one recipe for all: a map without parameters has nothing to
            // learn from the teacher, and its stage is recorded as zero steps.
            let label = stage.label();
            let attention = model_attention_label::<B, _>(&model);
            run.reporter.line(format!(
                "[{label}] {attention} has no trainable feature-map parameters: nothing to distil"
            ));
            return Ok((model, StageResult::empty(stage, &label, attention)));
        }
        let objective = Objective::Distillation(stage.distill_loss());
        let (model, result) = train(run, stage, model, optimizer, objective)?;
        match &stage.keep_softmax {
            Some(keep) => keep_worst_layers(run, stage, keep, model, result),
            None => Ok((model, result)),
        }
    }
}
