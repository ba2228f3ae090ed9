//! What a forward pass is asked to run in each layer, and the attention it hands back on
//! request: the weights (and, for an output loss, the outputs) of the softmax teacher and of
//! the layer's linear student.

use burn::tensor::{Bool, Tensor, backend::Backend};
use hedgehog_attention::{AttentionError, LinearAttention, softmax};

/// What a forward pass runs in each attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionMode {
    /// The layer's configured attention (softmax or its linear map).
    #[default]
    Configured,
    /// Conversion: the layer's output is the frozen softmax teacher's, and the student's linear
    /// weights are computed beside it for the distillation loss (Hedgehog stage 1).
    Distill,
    /// [`AttentionMode::Distill`], and each capture also holds the teacher's and the student's
    /// attention outputs (an output loss, LoLCATs' stage 1). A mode of its own so that weight
    /// distillation and the analysis do not pay for the student's extra forward.
    DistillOutputs,
    /// [`AttentionMode::DistillOutputs`] without the student's weights and kernel (`None` in
    /// every capture): an output loss that weighs no weights needs neither, and each is
    /// a `T × T` tensor per head (with a window, built by the composed reference code).
    DistillOutputsOnly,
}

impl AttentionMode {
    /// Whether each layer outputs the softmax teacher's result and captures its student.
    pub fn distills(self) -> bool {
        matches!(
            self,
            Self::Distill | Self::DistillOutputs | Self::DistillOutputsOnly
        )
    }

    /// Whether the captures carry the attention outputs.
    pub fn captures_outputs(self) -> bool {
        matches!(self, Self::DistillOutputs | Self::DistillOutputsOnly)
    }

    /// Whether the captures of linear layers carry the student's weights and kernel.
    pub fn captures_student_weights(self) -> bool {
        self != Self::DistillOutputsOnly
    }
}

/// Attention of one layer, returned on request: weights `[B, H, T, T]`, outputs
/// `[B, H, T, dv]` (per head, before the output projection).
#[derive(Clone, Debug)]
pub struct AttentionCapture<B: Backend> {
    /// Softmax weights (detached).
    pub teacher: Tensor<B, 4>,
    /// The linear map's weights (`None` for a softmax layer, and in
    /// [`AttentionMode::DistillOutputsOnly`]), with gradients to the maps; with a window, the
    /// combined window and linear weights.
    pub student: Option<Tensor<B, 4>>,
    /// Raw scaled scores `q·k/√d` of the teacher (detached).
    pub scores: Tensor<B, 4>,
    /// The linear map's unnormalised kernel `φ(q_i)·φ(k_j)` (`None` where `student` is),
    /// 0 where the student's weights are masked; detached. The student's weights are its rows
    /// divided by their sums `+ ε`.
    pub kernel: Option<Tensor<B, 4>>,
    /// The softmax output `a v` without dropout (detached); only in the modes that
    /// [capture outputs](AttentionMode::captures_outputs).
    pub teacher_output: Option<Tensor<B, 4>>,
    /// The layer's own output on the same (detached) `q, k, v`: its linear form, or with a
    /// window the window form; gradients reach the maps and the window factors. Only in the
    /// modes that [capture outputs](AttentionMode::captures_outputs), and `None` for a
    /// softmax layer.
    pub student_output: Option<Tensor<B, 4>>,
}

/// What a layer's capture is computed from: its heads' `q, k, v: [B, H, T, ·]` (after RoPE and
/// repeated to the query heads), its mask and its linear attention, if any.
pub(super) struct CaptureInputs<'a, B: Backend> {
    pub q: Tensor<B, 4>,
    pub k: Tensor<B, 4>,
    pub v: Tensor<B, 4>,
    pub causal: bool,
    pub key_padding: Option<&'a Tensor<B, 2, Bool>>,
    pub linear: Option<&'a LinearAttention<B>>,
}

impl<B: Backend> AttentionCapture<B> {
    /// The capture of a layer that outputs softmax's `teacher` weights (conversion, or a
    /// softmax layer asked to capture): the student sees detached q and k, so its gradients
    /// reach only the maps.
    pub(super) fn teacher_forced(
        x: CaptureInputs<'_, B>,
        teacher: Tensor<B, 4>,
        mode: AttentionMode,
    ) -> Result<Self, AttentionError> {
        let (q, k, v) = (x.q.detach(), x.k.detach(), x.v.detach());
        let (student, kernel, student_output) = match x.linear {
            Some(linear) => {
                let (student, kernel) = match mode.captures_student_weights() {
                    true => (
                        Some(linear.weights(q.clone(), k.clone(), x.causal, x.key_padding)?),
                        Some(kernel(
                            linear,
                            q.clone(),
                            k.clone(),
                            x.causal,
                            x.key_padding,
                        )?),
                    ),
                    false => (None, None),
                };
                let output = match mode.captures_outputs() {
                    true => Some(linear.forward(
                        q.clone(),
                        k.clone(),
                        v.clone(),
                        x.causal,
                        x.key_padding,
                    )?),
                    false => None,
                };
                (student, kernel, output)
            }
            None => (None, None, None),
        };
        let teacher = teacher.detach();
        Ok(Self {
            teacher_output: mode
                .captures_outputs()
                .then(|| teacher.clone().matmul(v).detach()),
            teacher,
            student,
            scores: softmax::scores(q, k),
            kernel,
            student_output,
        })
    }

    /// The capture of a linear layer run as configured (the analysis): the student's weights
    /// keep their gradients to q and k; no outputs.
    pub(super) fn as_run(
        x: CaptureInputs<'_, B>,
        linear: &LinearAttention<B>,
    ) -> Result<Self, AttentionError> {
        let (q, k) = (x.q, x.k);
        Ok(Self {
            teacher: softmax::weights(q.clone(), k.clone(), x.causal, x.key_padding)?.detach(),
            student: Some(linear.weights(q.clone(), k.clone(), x.causal, x.key_padding)?),
            scores: softmax::scores(q.clone().detach(), k.clone().detach()),
            kernel: Some(kernel(linear, q, k, x.causal, x.key_padding)?),
            teacher_output: None,
            student_output: None,
        })
    }
}

/// The detached kernel `φ(q_i)·φ(k_j)` of the capture: analysis only, no gradient.
fn kernel<B: Backend>(
    linear: &LinearAttention<B>,
    q: Tensor<B, 4>,
    k: Tensor<B, 4>,
    causal: bool,
    key_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<Tensor<B, 4>, AttentionError> {
    Ok(linear
        .kernel(q.detach(), k.detach(), causal, key_padding)?
        .detach())
}
