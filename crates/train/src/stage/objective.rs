//! What a training stage's loss measures, and that loss on a batch: below the step
//! ([`super::step`]) and the device split ([`super::parallel`]) that both compute it.

use burn::module::AutodiffModule;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::RunError;
use crate::spec::{DistillLoss, LogitDistillation, StageSpec};
use crate::task::distill::distill_mode;
use crate::task::{DistillParts, Task, distillation_loss};

/// What a training stage's loss measures; `M` is the teacher of logit distillation (the
/// task model's inference twin).
pub(crate) enum Objective<'t, M> {
    /// The task's own loss.
    Task,
    /// Each layer's attention against its softmax teacher's, weighed by the stage's `loss:`.
    Distillation(DistillLoss),
    /// The next-token distributions against a frozen teacher's, with the task's loss mixed in
    /// as the stage's `logit_distillation:` weighs them.
    Logits {
        weights: LogitDistillation,
        teacher: &'t M,
    },
}

// By hand: derived, they would ask `M: Copy` of the teacher, which is only borrowed.
impl<M> Clone for Objective<'_, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<M> Copy for Objective<'_, M> {}

impl<M> Objective<'_, M> {
    pub(super) fn distills(self) -> bool {
        matches!(self, Self::Distillation(_))
    }

    /// Evaluate every `eval_every` steps and at the end; distillation leaves the task metric
    /// alone unless asked (`eval_every`).
    pub(super) fn evaluates(self, stage: &StageSpec, step: usize, done: bool) -> bool {
        let periodic = stage.eval_every > 0 && step.is_multiple_of(stage.eval_every);
        periodic || (done && (!self.distills() || stage.eval_every > 0))
    }

    /// The loss on `examples` and, for distillation, what it is made of.
    pub(super) fn loss<
        B: AutodiffBackend,
        T: Task<B, Model: AutodiffModule<B, InnerModule = M>>,
    >(
        self,
        task: &T,
        model: &T::Model,
        examples: &[usize],
        seed: u64,
        device: &B::Device,
    ) -> Result<(Tensor<B, 1>, Option<DistillParts>), RunError> {
        match self {
            Self::Task => Ok((task.loss(model, examples, seed, device)?, None)),
            Self::Distillation(loss) => {
                let batch =
                    task.distill_batch(model, examples, distill_mode(&loss), seed, device)?;
                let value = distillation_loss(batch, &loss)?;
                Ok((value.total, Some(value.parts)))
            }
            Self::Logits { weights, teacher } => {
                let value =
                    task.logit_distillation_loss(model, teacher, examples, &weights, device)?;
                Ok((value.total, Some(value.parts)))
            }
        }
    }
}
