//! What a forward pass is asked to run in each layer, and the attention weights it hands back
//! on request.

use burn::tensor::{Tensor, backend::Backend};

/// What a forward pass runs in each attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionMode {
    /// The layer's configured attention (softmax or its linear map).
    #[default]
    Configured,
    /// Conversion: the layer's output is the frozen softmax teacher's, and the student's linear
    /// weights are computed beside it for the distillation loss (Hedgehog stage 1).
    Distill,
}

/// Attention weights of one layer, returned on request: `[B, H, T, T]` each.
#[derive(Clone, Debug)]
pub struct AttentionCapture<B: Backend> {
    /// Softmax weights (detached).
    pub teacher: Tensor<B, 4>,
    /// The linear map's weights (`None` for a softmax layer), with gradients to the maps.
    pub student: Option<Tensor<B, 4>>,
    /// Raw scaled scores `q·k/√d` of the teacher (detached).
    pub scores: Tensor<B, 4>,
    /// The linear map's unnormalised kernel `φ(q_i)·φ(k_j)` (`None` for a softmax layer),
    /// 0 where the student's weights are masked; detached. The student's weights are its rows
    /// divided by their sums `+ ε`.
    pub kernel: Option<Tensor<B, 4>>,
}
