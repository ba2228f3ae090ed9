//! The activations the checkpoints name.

use burn::tensor::{Tensor, activation, backend::Backend};

/// GELU as the checkpoints define it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gelu {
    /// `x Φ(x)` with the exact error function (BERT, ViT: HF `gelu`).
    Exact,
    /// The tanh approximation (GPT-2: HF `gelu_new`).
    Tanh,
}

impl Gelu {
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Gelu::Exact => activation::gelu(x),
            Gelu::Tanh => activation::gelu_approximate(x),
        }
    }
}
