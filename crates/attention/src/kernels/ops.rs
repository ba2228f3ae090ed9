//! The hot operations as a trait whose default bodies are the composed reference, and its two
//! implementations: [`Composed`] (those defaults, on every backend) and [`Fused`] (the CPU
//! kernels, implemented in `cpu.rs` and `autodiff/`).

use burn::tensor::{Tensor, backend::Backend};

use crate::reference;
use crate::types::{HedgehogActivation, LinearInputs, LinearState, SoftmaxInputs, WindowInputs};

/// The hot operations of the workspace; the defaults are the composed reference code.
pub trait Kernels<B: Backend>: Send + Sync {
    /// Chunked causal linear attention (method.md §1): the output and, with `with_state`, the
    /// state `(S, z)` after the last token.
    fn causal_linear(
        &self,
        inputs: LinearInputs<B>,
        initial_state: Option<LinearState<B>>,
        chunk_size: usize,
        with_state: bool,
    ) -> (Tensor<B, 4>, Option<LinearState<B>>) {
        let (y, state) = reference::linear::chunked(inputs, chunk_size, initial_state);
        (y, with_state.then_some(state))
    }

    /// Parallel non-causal linear attention; the state is the sum over all tokens.
    fn parallel_linear(
        &self,
        inputs: LinearInputs<B>,
        with_state: bool,
    ) -> (Tensor<B, 4>, Option<LinearState<B>>) {
        let (y, state) = reference::linear::parallel(inputs);
        (y, with_state.then_some(state))
    }

    /// One decoding step: `fq, fk: [B, H, F]`, `v: [B, H, dv]` → `[B, H, dv]` and the new state.
    fn recurrent_step(
        &self,
        state: LinearState<B>,
        fq: Tensor<B, 3>,
        fk: Tensor<B, 3>,
        v: Tensor<B, 3>,
        eps: f64,
    ) -> (Tensor<B, 3>, LinearState<B>) {
        reference::linear::recurrent_step(state, fq, fk, v, eps)
    }

    /// Hedgehog's `[σ(xW + b), σ(−(xW + b))]`: `x: [B, H, T, d]`, `weight: [H_w, d, d']`,
    /// `bias: [H_w, 1, d']` → `[B, H, T, 2d']`.
    fn hedgehog(
        &self,
        x: Tensor<B, 4>,
        weight: Tensor<B, 3>,
        bias: Tensor<B, 3>,
        activation: HedgehogActivation,
    ) -> Tensor<B, 4> {
        reference::maps::hedgehog(x, weight, bias, activation)
    }

    /// `elu(x) + 1`: `x + 1` for `x > 0`, `exp(x)` otherwise.
    fn elu_plus_one(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        reference::maps::elu_plus_one(x)
    }

    /// Taylor-2's `[1, x/d^{1/4}, x⊗x/(√2·√d)]` (`compressed`: the upper triangle of `x⊗x`
    /// with off-diagonal terms scaled by √2): `[B, H, T, d]` → `[B, H, T, F]`.
    fn taylor(&self, x: Tensor<B, 4>, compressed: bool) -> Tensor<B, 4> {
        reference::maps::taylor(x, compressed)
    }

    /// Sliding-window + linear attention's causal output `[B, H, T, dv]` from an empty state
    /// (`window ≥ 1`; inputs checked). Its composed form is the chunked code of `window/`,
    /// above this module, so the default hands the inputs back for it to run.
    fn window_output(
        &self,
        inputs: WindowInputs<B>,
        window: usize,
    ) -> Result<Tensor<B, 4>, WindowInputs<B>> {
        let _ = window;
        Err(inputs)
    }

    /// Softmax attention's output `[B, H, Tq, dv]`, with dropout of probability
    /// `dropout` on the weights when the backend tracks gradients (training).
    fn softmax_attention(&self, inputs: SoftmaxInputs<B>, dropout: f64) -> Tensor<B, 4> {
        reference::softmax::attention(inputs, dropout)
    }

    /// Softmax attention's weights `[B, H, Tq, Tk]`.
    fn softmax_weights(&self, inputs: SoftmaxInputs<B>) -> Tensor<B, 4> {
        reference::softmax::weights(inputs)
    }

    /// Mean cross-entropy of the tied or untied LM head `logits = hidden · weightᵀ`
    /// (`hidden: [N, d]`, `weight: [V, d]`) over the tokens whose target is `Some`.
    fn lm_head_loss(
        &self,
        hidden: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        targets: &[Option<usize>],
    ) -> Tensor<B, 1> {
        reference::lm_head::loss(hidden, weight, targets)
    }

    /// Per-token negative log-likelihood of the LM head, `[N]` (0 where the target is `None`);
    /// no gradient.
    fn lm_head_nll(
        &self,
        hidden: Tensor<B, 2>,
        weight: Tensor<B, 2>,
        targets: &[Option<usize>],
    ) -> Vec<f32> {
        reference::lm_head::nll(hidden, weight, targets)
    }
}

/// The composed reference implementation, for every backend.
#[derive(Clone, Copy, Debug, Default)]
pub struct Composed;

impl<B: Backend> Kernels<B> for Composed {}

/// The fused CPU kernels, for `NdArray<f32>` and `Autodiff<NdArray<f32>>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Fused;
