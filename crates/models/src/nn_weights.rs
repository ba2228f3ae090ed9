//! Checkpoint names of burn's `nn` building blocks: a `Linear`'s, a `LayerNorm`'s and an
//! `Embedding`'s tensors under `name.weight` and `name.bias`.

use burn::nn::{Embedding, LayerNorm, Linear};
use burn::tensor::backend::Backend;

use crate::error::WeightError;
use crate::weights::{Layout, WeightVisitor};

/// A `Linear`'s weight and optional bias under `name.weight`, `name.bias`.
pub fn map_linear<B: Backend, V: WeightVisitor<B>>(
    mut linear: Linear<B>,
    visitor: &mut V,
    name: &str,
    layout: Layout,
) -> Result<Linear<B>, WeightError> {
    linear.weight = visitor.param(&format!("{name}.weight"), linear.weight, layout)?;
    if let Some(bias) = linear.bias.take() {
        linear.bias = Some(visitor.param(&format!("{name}.bias"), bias, Layout::AsIs)?);
    }
    Ok(linear)
}

/// `name.weight` → γ, `name.bias` → β.
pub fn map_layer_norm<B: Backend, V: WeightVisitor<B>>(
    mut norm: LayerNorm<B>,
    visitor: &mut V,
    name: &str,
) -> Result<LayerNorm<B>, WeightError> {
    norm.gamma = visitor.param(&format!("{name}.weight"), norm.gamma, Layout::AsIs)?;
    if let Some(beta) = norm.beta.take() {
        norm.beta = Some(visitor.param(&format!("{name}.bias"), beta, Layout::AsIs)?);
    }
    Ok(norm)
}

pub fn map_embedding<B: Backend, V: WeightVisitor<B>>(
    mut embedding: Embedding<B>,
    visitor: &mut V,
    name: &str,
) -> Result<Embedding<B>, WeightError> {
    embedding.weight = visitor.param(&format!("{name}.weight"), embedding.weight, Layout::AsIs)?;
    Ok(embedding)
}
