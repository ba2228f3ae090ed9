//! The `eval` stage: the task metric on the validation split.

use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::AdamRecord;
use crate::error::RunError;
use crate::metrics::MetricsRow;
use crate::spec::StageSpec;
use crate::summary::{StageResult, model_attention_label};
use crate::task::Task;

use super::{Stage, StageRun};

pub(super) struct Eval;

impl<B: AutodiffBackend, T: Task<B>> Stage<B, T> for Eval {
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        _: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError> {
        let started = Instant::now();
        let label = stage.label();
        let attention = model_attention_label::<B, _>(&model);
        let evaluation = run.ctx.task.evaluate(&model.valid(), run.ctx.device())?;
        run.reporter.line(format!(
            "[{label}] {} {:.4} ({attention})",
            evaluation.headline,
            evaluation.headline_value()
        ));
        run.metrics.push(MetricsRow {
            stage: run.progress.stage,
            label: label.clone(),
            step: 0,
            global_step: run.progress.global_step,
            loss: None,
            lr: None,
            tokens_per_second: None,
            components: Default::default(),
            validation: evaluation.metrics.clone(),
        });
        run.metrics.flush()?;
        let result = StageResult {
            metrics: evaluation.metrics,
            headline: Some(evaluation.headline),
            seconds: started.elapsed().as_secs_f64(),
            ..StageResult::empty(stage, &label, attention)
        };
        Ok((model, result))
    }
}
