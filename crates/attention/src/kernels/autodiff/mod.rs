//! The fused kernels under `Autodiff<NdArray<f32>>`: each op runs its fused forward on the
//! inner primitives and registers a hand-written backward (burn-autodiff's `Backward`), so a
//! whole attention call is one node of the graph instead of dozens.

//!
//! `graph.rs` is the plumbing every op shares; the ops themselves are grouped as their fused
//! kernels are: linear attention, softmax attention, sliding-window + linear attention, the
//! feature maps, the LM head.

mod graph;
mod linear;
mod lm_head;
mod maps;
mod softmax;
mod window;

use burn::tensor::Tensor;

use super::host::CpuAutodiff;
use super::ops::{Fused, Kernels};
use crate::types::{HedgehogActivation, LinearInputs, LinearState, SoftmaxInputs, WindowInputs};
pub use linear::causal_linear_with_mask_offset;

impl Kernels<CpuAutodiff> for Fused {
    fn causal_linear(
        &self,
        inputs: LinearInputs<CpuAutodiff>,
        initial_state: Option<LinearState<CpuAutodiff>>,
        chunk_size: usize,
        with_state: bool,
    ) -> (Tensor<CpuAutodiff, 4>, Option<LinearState<CpuAutodiff>>) {
        let state = with_state.then(|| linear::composed_state(&inputs, initial_state.clone()));
        (
            linear::causal_linear(inputs, initial_state, chunk_size, 0),
            state,
        )
    }

    fn parallel_linear(
        &self,
        inputs: LinearInputs<CpuAutodiff>,
        with_state: bool,
    ) -> (Tensor<CpuAutodiff, 4>, Option<LinearState<CpuAutodiff>>) {
        let state = with_state.then(|| linear::composed_state(&inputs, None));
        (linear::parallel_linear(inputs), state)
    }

    fn hedgehog(
        &self,
        x: Tensor<CpuAutodiff, 4>,
        weight: Tensor<CpuAutodiff, 3>,
        bias: Tensor<CpuAutodiff, 3>,
        activation: HedgehogActivation,
    ) -> Tensor<CpuAutodiff, 4> {
        maps::hedgehog(x, weight, bias, activation)
    }

    fn elu_plus_one(&self, x: Tensor<CpuAutodiff, 4>) -> Tensor<CpuAutodiff, 4> {
        maps::elu_plus_one(x)
    }

    fn taylor(&self, x: Tensor<CpuAutodiff, 4>, compressed: bool) -> Tensor<CpuAutodiff, 4> {
        maps::taylor(x, compressed)
    }

    fn window_output(
        &self,
        inputs: WindowInputs<CpuAutodiff>,
        window: usize,
    ) -> Result<Tensor<CpuAutodiff, 4>, WindowInputs<CpuAutodiff>> {
        Ok(window::output(inputs, window))
    }

    fn softmax_attention(
        &self,
        inputs: SoftmaxInputs<CpuAutodiff>,
        dropout: f64,
    ) -> Tensor<CpuAutodiff, 4> {
        softmax::attention(inputs, dropout)
    }

    fn softmax_weights(&self, inputs: SoftmaxInputs<CpuAutodiff>) -> Tensor<CpuAutodiff, 4> {
        softmax::weights(inputs)
    }

    fn lm_head_loss(
        &self,
        hidden: Tensor<CpuAutodiff, 2>,
        weight: Tensor<CpuAutodiff, 2>,
        targets: &[Option<usize>],
    ) -> Tensor<CpuAutodiff, 1> {
        lm_head::loss(hidden, weight, targets)
    }

    fn lm_head_nll(
        &self,
        hidden: Tensor<CpuAutodiff, 2>,
        weight: Tensor<CpuAutodiff, 2>,
        targets: &[Option<usize>],
    ) -> Vec<f32> {
        lm_head::nll(hidden, weight, targets)
    }
}
