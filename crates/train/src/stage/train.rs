//! The stages that train: `train` and `finetune` (the task's loss, of the parameters
//! `trainable` selects), and the loop [`super::distill`] runs too. A step is
//! `grad_accumulation` micro-batches, each seeded by (run seed, stage, step, micro-batch), so a
//! run resumed from any checkpoint takes the same steps as one never stopped.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ParamId};
use burn::optim::Optimizer;
use burn::tensor::backend::AutodiffBackend;

use crate::checkpoint::{self, Adam, AdamRecord};
use crate::error::RunError;
use crate::metrics::MetricsRow;
use crate::optim::FusedAdamW;
use crate::seeds::derived_seed;
use crate::spec::{StageSpec, Trainable};
use crate::summary::{StageResult, model_attention_label};
use crate::task::{DistillParts, EpochSampler, Evaluation, Inner, Task};

use super::objective::Objective;
use super::step::{Learner, Step, StepAt, optimizer_step};
use super::subset::{RequireGrad, trained_subset};
use super::{Stage, StageRun};

pub(super) struct Train;

impl<B: AutodiffBackend, T: Task<B>> Stage<B, T> for Train {
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        optimizer: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError> {
        let Some(weights) = stage.logit_distillation else {
            return train(run, stage, model, optimizer, Objective::Task);
        };
        let teacher = run.ctx.task.teacher(run.ctx.device())?;
        run.reporter.line(format!(
            "[{}] logit distillation against the pretrained model with softmax attention \
             (kl {}, lm {})",
            stage.label(),
            weights.kl,
            weights.lm
        ));
        let objective = Objective::Logits {
            weights,
            teacher: &teacher,
        };
        train(run, stage, model, optimizer, objective)
    }
}

/// The steps a training stage runs: `steps`, or `epochs` over the task's training examples.
pub(crate) fn stage_steps(stage: &StageSpec, examples: usize) -> usize {
    match stage.epochs {
        Some(epochs) => {
            let per_step = (stage.batch_size * stage.grad_accumulation) as f64;
            ((epochs * examples as f64) / per_step).ceil().max(1.0) as usize
        }
        None => stage.steps,
    }
}

/// Trains `model` for the stage's steps from where `run.progress` stands.
pub(super) fn train<B: AutodiffBackend, T: Task<B>>(
    run: &mut StageRun<'_, '_, B, T>,
    stage: &StageSpec,
    model: T::Model,
    optimizer_record: Option<AdamRecord<B, T::Model>>,
    objective: Objective<'_, Inner<B, T::Model>>,
) -> Result<(T::Model, StageResult), RunError> {
    let label = stage.label();
    let mut optimizer: Adam<B, T::Model> = FusedAdamW::of_stage(stage).init();
    if let Some(record) = optimizer_record {
        optimizer = optimizer.load_record(record);
    }
    let mut model = attach_lora(run, stage, &label, model)?;
    let keep = trained_subset::<B, _>(&model, objective.distills(), &stage.trainable);
    if keep.as_ref().is_some_and(|k| k.is_empty()) {
        return Err(RunError::Config(format!(
            "[{label}] nothing to train: the model has no {} parameters",
            if matches!(stage.trainable, Trainable::Lora(_)) {
                "LoRA"
            } else {
                "feature-map"
            }
        )));
    }
    if let Some(keep) = &keep {
        // Frozen parameters stop being tracked for the stage (restored at its end): no autodiff
        // graph is built for what only they compute (e.g. the whole softmax teacher when
        // distilling), which burn would otherwise keep alive step after step, since that graph
        // never reaches backward. After the early returns above, so every path restores.
        model = model.map(&mut RequireGrad { keep: Some(keep) });
    }
    let ctx = run.ctx;
    let sampler = EpochSampler::new(
        ctx.info.train_examples,
        derived_seed(ctx.spec.seed, run.progress.stage, usize::MAX, 0),
    );
    let total = stage_steps(stage, ctx.info.train_examples);
    run.reporter.start(&label, total, run.progress.step);
    let mut training = Training {
        seconds_before: run.progress.stage_seconds,
        run,
        stage,
        label,
        objective,
        total,
        optimizer,
        keep,
        sampler,
        started: Instant::now(),
        tokens_seen: 0,
        last_loss: None,
        last_parts: None,
        last_evaluation: None,
        stopped_early: false,
    };
    while training.run.progress.step < total {
        let (stepped, loss, rate) = training.step(model)?;
        model = stepped;
        if training.after_step(&model, loss, rate)? {
            break;
        }
    }
    training.finish(model)
}

/// LoRA adapters on the attention projections when a LoRA stage starts.
fn attach_lora<B: AutodiffBackend, T: Task<B>>(
    run: &mut StageRun<'_, '_, B, T>,
    stage: &StageSpec,
    label: &str,
    model: T::Model,
) -> Result<T::Model, RunError> {
    let Trainable::Lora(lora) = &stage.trainable else {
        return Ok(model);
    };
    if run.progress.step != 0 {
        return Ok(model);
    }
    // Adapters draw their initial values from the backend RNG: seeded per stage.
    let device = run.ctx.device();
    B::seed(
        device,
        derived_seed(run.ctx.spec.seed, run.progress.stage, usize::MAX - 1, 0),
    );
    let model = hedgehog_models::attach_lora(model, lora, device)?;
    run.reporter.line(format!(
        "[{label}] LoRA rank {} alpha {} on {:?}",
        lora.rank, lora.alpha, lora.targets
    ));
    Ok(model)
}

/// A training stage under way.
struct Training<'s, 'r, 'a, B: AutodiffBackend, T: Task<B>> {
    run: &'s mut StageRun<'r, 'a, B, T>,
    stage: &'s StageSpec,
    label: String,
    objective: Objective<'s, Inner<B, T::Model>>,
    total: usize,
    optimizer: Adam<B, T::Model>,
    /// The trained parameters, when not all of them.
    keep: Option<HashSet<ParamId>>,
    sampler: EpochSampler,
    started: Instant,
    /// Seconds spent in this stage before the checkpoint it resumed from.
    seconds_before: f64,
    tokens_seen: usize,
    last_loss: Option<f64>,
    /// What the last distill step's loss was made of.
    last_parts: Option<DistillParts>,
    last_evaluation: Option<Evaluation>,
    stopped_early: bool,
}

impl<B: AutodiffBackend, T: Task<B>> Training<'_, '_, '_, B, T> {
    /// One optimiser step ([`optimizer_step`]) at the step `run.progress` stands at.
    fn step(&mut self, model: T::Model) -> Result<(T::Model, f64, f64), RunError> {
        let (ctx, stage) = (self.run.ctx, self.stage);
        let at = StepAt {
            stage: self.run.progress.stage,
            step: self.run.progress.step,
            total: self.total,
        };
        let learner = Learner {
            optimizer: &mut self.optimizer,
            sampler: &self.sampler,
            keep: self.keep.as_ref(),
            objective: self.objective,
        };
        let (model, loss, rate) = match optimizer_step(ctx, stage, at, model, learner)? {
            Step::Taken {
                model,
                loss,
                parts,
                rate,
            } => {
                self.last_parts = parts;
                (model, loss, rate)
            }
            Step::Diverged(value) => return Err(self.diverged(value, at.step)),
        };
        self.tokens_seen +=
            stage.grad_accumulation * stage.batch_size * ctx.info.tokens_per_example;
        self.run.progress.step += 1;
        self.run.progress.global_step += 1;
        self.last_loss = Some(loss);
        Ok((model, loss, rate))
    }

    /// The error a non-finite loss stops the run with, naming the last good checkpoint.
    fn diverged(&mut self, value: f64, step: usize) -> RunError {
        self.run.reporter.finish();
        let last = checkpoint::checkpoints(&self.run.ctx.dir)
            .pop()
            .map_or("none".into(), |(_, p)| p.display().to_string());
        RunError::Diverged(format!(
            "[{}] loss became {value} at step {step}: stopping; the last good checkpoint is {last}. \
             Lower optimizer.lr or set clip.",
            self.label
        ))
    }

    /// Evaluates when due, watches early stopping, logs the step and checkpoints when due;
    /// returns whether the stage stops early.
    fn after_step(&mut self, model: &T::Model, loss: f64, rate: f64) -> Result<bool, RunError> {
        let step = self.run.progress.step;
        let done = step == self.total;
        let evaluation = if self.objective.evaluates(self.stage, step, done) {
            Some(
                self.run
                    .ctx
                    .task
                    .evaluate(&model.valid(), self.run.ctx.device())?,
            )
        } else {
            None
        };
        if let Some(evaluation) = &evaluation {
            self.watch(evaluation);
        }
        self.log(loss, rate, evaluation.as_ref(), done)?;
        if evaluation.is_some() {
            self.last_evaluation = evaluation;
        }
        if self.stopped_early {
            self.run.reporter.line(format!(
                "[{}] early stop at step {step}: no improvement in {} evaluations",
                self.label, self.run.progress.early.since_best
            ));
            return Ok(true);
        }
        let spec = self.run.ctx.spec;
        if step.is_multiple_of(spec.checkpoint.every) && !done {
            let progress = &mut *self.run.progress;
            progress.stage_seconds = self.seconds_before + self.started.elapsed().as_secs_f64();
            self.run.metrics.flush()?;
            checkpoint::save(
                &self.run.ctx.dir,
                model,
                Some(&self.optimizer),
                progress,
                spec.checkpoint.keep,
            )?;
        }
        Ok(false)
    }

    /// Early stopping: counts evaluations since the best headline.
    fn watch(&mut self, evaluation: &Evaluation) {
        let Some(rule) = &self.stage.early_stopping else {
            return;
        };
        let early = &mut self.run.progress.early;
        let value = evaluation.headline_value();
        let improved = early.best.is_none_or(|best| {
            Evaluation::improves(&evaluation.headline, value, best, rule.min_delta)
        });
        if improved {
            early.best = Some(value);
            early.since_best = 0;
        } else {
            early.since_best += 1;
            if early.since_best >= rule.patience {
                self.stopped_early = true;
            }
        }
    }

    /// The step's metrics row, its progress line and (every `log_every` steps, at the end or
    /// after an evaluation) its log line.
    fn log(
        &mut self,
        loss: f64,
        rate: f64,
        evaluation: Option<&Evaluation>,
        done: bool,
    ) -> Result<(), RunError> {
        let progress = &*self.run.progress;
        let elapsed = self.started.elapsed().as_secs_f64();
        let tps = self.tokens_seen as f64 / elapsed.max(1e-9);
        let row = MetricsRow {
            stage: progress.stage,
            label: self.label.clone(),
            step: progress.step,
            global_step: progress.global_step,
            loss: Some(loss),
            lr: Some(rate),
            tokens_per_second: Some(tps),
            components: (self.last_parts.as_ref())
                .map_or_else(Default::default, |p| p.components.clone()),
            validation: evaluation.map(|e| e.metrics.clone()).unwrap_or_default(),
        };
        let validation = evaluation.map_or(String::new(), |e| {
            format!("  val {} {:.4}", e.headline, e.headline_value())
        });
        self.run.reporter.step(
            progress.step,
            format!("loss {loss:.4}  {tps:.0} tok/s{validation}"),
        );
        let step = progress.step;
        let logged = step.is_multiple_of(self.stage.log_every.max(1)) || done;
        if let Some(parts) = self.last_parts.as_ref().filter(|_| logged) {
            self.run.metrics.push_layers(&row, &parts.layers);
        }
        self.run.metrics.push(row);
        if logged || evaluation.is_some() {
            self.run.reporter.line(format!(
                "[{}] step {step}/{}  loss {loss:.4}{}  lr {rate:.2e}  {tps:.0} tok/s{validation}",
                self.label,
                self.total,
                components_text(self.last_parts.as_ref().filter(
                    |_| self.stage.loss.is_some() || self.stage.logit_distillation.is_some()
                )),
            ));
            self.run.metrics.flush()?;
        }
        Ok(())
    }

    /// Merges LoRA adapters, makes every parameter trainable again for the stages that follow,
    /// and returns the stage's result.
    fn finish(self, model: T::Model) -> Result<(T::Model, StageResult), RunError> {
        self.run.reporter.finish();
        self.run.metrics.flush()?;
        let mut model = model;
        if matches!(self.stage.trainable, Trainable::Lora(_)) {
            model = hedgehog_models::merge_lora(model);
        }
        let (metrics, headline) = match self.last_evaluation {
            Some(evaluation) => (evaluation.metrics, Some(evaluation.headline)),
            None => (BTreeMap::new(), None),
        };
        let attention = model_attention_label::<B, _>(&model);
        let result = StageResult {
            steps: self.run.progress.step,
            final_loss: self.last_loss,
            metrics,
            headline,
            seconds: self.seconds_before + self.started.elapsed().as_secs_f64(),
            stopped_early: self.stopped_early,
            layer_losses: self.last_parts.map(|parts| parts.layers),
            ..StageResult::empty(self.stage, &self.label, attention)
        };
        let model = if self.keep.is_some() {
            model.map(&mut RequireGrad { keep: None })
        } else {
            model
        };
        Ok((model, result))
    }
}

/// A distill step's components for its log line, `" (output_mse 0.0123, weight_ce 1.2345)"`;
/// nothing without `loss:` (the loss is then the soft cross-entropy alone, as it always was).
fn components_text(parts: Option<&DistillParts>) -> String {
    match parts {
        Some(parts) => format!(
            " ({})",
            parts
                .components
                .iter()
                .map(|(name, value)| format!("{name} {value:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}
