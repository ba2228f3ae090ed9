//! The decoders the causal tasks (language modelling, associative recall) train: what they
//! need of a model ([`LanguageModel`], [`Decoder`]) and its implementations for GPT-2 and
//! Llama, and a decoder as a [`TextGenerator`].

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor};
use hedgehog_models::generation::GenerationProfile;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::tokenizer::TextTokenizer;
use hedgehog_models::{AttentionCapture, AttentionMode, CausalLm, ModelError, ModelOutput};

use super::models;
use crate::error::RunError;
use crate::spec::Spec;

/// A model and its tokenizer, for evaluations that prompt it and read its answers.
pub struct TextGenerator<'m> {
    pub tokenizer: &'m TextTokenizer,
    /// The validation split's text, which prompts draw their distractors from.
    pub validation_text: String,
    /// Greedy continuation of a prompt by up to the given number of tokens, timed and with
    /// the decoding caches' size.
    #[allow(clippy::type_complexity)]
    pub generate:
        Box<dyn Fn(&[u32], usize) -> Result<(Vec<u32>, GenerationProfile), RunError> + 'm>,
}

/// What the language-modelling tasks need of a decoder (it also decodes with caches, for
/// generation).
pub trait LanguageModel<B: Backend>: CausalLm<B> {
    /// Logits `[B, T, V]` (and captured attention when asked).
    fn lm_forward(
        &self,
        tokens: Tensor<B, 2, Int>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<ModelOutput<B>, ModelError>;

    /// Each layer's captured attention in `mode`, without the head's logits (distillation).
    fn lm_captures(
        &self,
        tokens: Tensor<B, 2, Int>,
        mode: AttentionMode,
    ) -> Result<Vec<AttentionCapture<B>>, ModelError>;

    /// Mean cross-entropy against `targets` (row-major over `[B, T]`), through the fused head
    /// and loss (no `[B, T, V]` logits on the CPU backend).
    fn lm_loss(
        &self,
        tokens: Tensor<B, 2, Int>,
        targets: &[Option<usize>],
        mode: AttentionMode,
    ) -> Result<Tensor<B, 1>, ModelError>;

    /// Per-position negative log-likelihood of `targets` (0 where `None`), no gradient.
    fn token_nll(
        &self,
        tokens: Tensor<B, 2, Int>,
        targets: &[Option<usize>],
    ) -> Result<Vec<f32>, ModelError>;
}

/// The three methods for a decoder with `forward`, `lm_loss` and `token_nll` of its own.
macro_rules! language_model {
    ($model:ident) => {
        impl<B: Backend> LanguageModel<B> for $model<B> {
            fn lm_forward(
                &self,
                tokens: Tensor<B, 2, Int>,
                mode: AttentionMode,
                capture: bool,
            ) -> Result<ModelOutput<B>, ModelError> {
                self.forward(tokens, None, mode, capture)
            }

            fn lm_captures(
                &self,
                tokens: Tensor<B, 2, Int>,
                mode: AttentionMode,
            ) -> Result<Vec<AttentionCapture<B>>, ModelError> {
                self.captures(tokens, None, mode)
            }

            fn lm_loss(
                &self,
                tokens: Tensor<B, 2, Int>,
                targets: &[Option<usize>],
                mode: AttentionMode,
            ) -> Result<Tensor<B, 1>, ModelError> {
                $model::lm_loss(self, tokens, None, targets, mode)
            }

            fn token_nll(
                &self,
                tokens: Tensor<B, 2, Int>,
                targets: &[Option<usize>],
            ) -> Result<Vec<f32>, ModelError> {
                $model::token_nll(self, tokens, targets)
            }
        }
    };
}

language_model!(Gpt2);
language_model!(Llama);

/// A decoder family the causal tasks can build and train.
pub trait Decoder<B: AutodiffBackend>:
    LanguageModel<B>
    + burn::module::AutodiffModule<B, InnerModule: Sync>
    + hedgehog_models::checkpoint::Checkpoint<B>
    + hedgehog_models::AttentionLayers<B>
    + Send
    + 'static
{
    /// The model for a task of `context` tokens over `vocab` ids.
    fn build(
        spec: &Spec,
        context: usize,
        vocab: usize,
        device: &B::Device,
    ) -> Result<Self, RunError>;
}

impl<B: AutodiffBackend> Decoder<B> for Gpt2<B> {
    fn build(
        spec: &Spec,
        context: usize,
        vocab: usize,
        device: &B::Device,
    ) -> Result<Self, RunError> {
        models::gpt2(spec, context, vocab, device)
    }
}

impl<B: AutodiffBackend> Decoder<B> for Llama<B> {
    fn build(
        spec: &Spec,
        _context: usize,
        vocab: usize,
        device: &B::Device,
    ) -> Result<Self, RunError> {
        Ok(models::llama(spec, vocab, device)?.0)
    }
}
