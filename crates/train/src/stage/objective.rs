//! What a training stage's loss measures, and that loss on a batch: below the step
//! ([`super::step`]) and the device split ([`super::parallel`]) that both compute it.

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;

use crate::error::RunError;
use crate::spec::{DistillLoss, StageSpec};
use crate::task::distill::distill_mode;
use crate::task::{DistillParts, Task, distillation_loss};

/// What a training stage's loss measures.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Objective {
    /// The task's own loss.
    Task,
    /// Each layer's attention against its softmax teacher's, weighed by the stage's `loss:`.
    Distillation(DistillLoss),
}

impl Objective {
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
    pub(super) fn loss<B: AutodiffBackend, T: Task<B>>(
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
        }
    }
}
