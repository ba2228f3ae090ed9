//! Multi-head self-attention shared by every model, with any attention of `hedgehog-attention`
//! per layer, rotary embeddings and grouped-query heads for Llama-style models, conversion
//! modes that return the teacher's and the student's weights (and, asked, their outputs), and
//! optional LoRA adapters on the projections (see [`crate::lora`]).
//!
//! This file is the layer and its forward paths. Below it: what a forward is asked to run and
//! hands back, and how the captures are computed (`capture.rs`), the decoding cache
//! (`cache.rs`) and RoPE (`rotary.rs`). Above it, as further `impl` blocks of
//! [`SelfAttention`]: attaching and merging LoRA (`adapters.rs`) and the layer's weight table
//! (`weights.rs`).

mod adapters;
mod cache;
mod capture;
mod rotary;
mod weights;

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, backend::Backend};
use hedgehog_attention::linear::{self as linear_forms, LinearState};
use hedgehog_attention::{AttentionConfig, AttentionError, LinearAttention, softmax};

pub use self::cache::LayerCache;
use self::capture::CaptureInputs;
pub use self::capture::{AttentionCapture, AttentionMode};
pub use self::rotary::Rotary;
pub use crate::activation::Gelu;
use crate::lora_adapter::{LoraAdapters, LoraTarget};
pub use crate::nn_weights::map_linear;

/// Sizes and options of one self-attention layer.
#[derive(Clone, Debug)]
pub struct SelfAttentionConfig {
    pub model_dim: usize,
    pub num_heads: usize,
    /// Grouped-query attention: key/value heads (= `num_heads` for plain multi-head).
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub bias: bool,
    pub causal: bool,
    pub dropout: f64,
    pub rope_base: Option<f64>,
    pub attention: AttentionConfig,
    /// Initialiser of the projections (`None`: burn's default); GPT-2 uses N(0, 0.02).
    pub initializer: Option<burn::nn::Initializer>,
}

impl SelfAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SelfAttention<B>, AttentionError> {
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(AttentionError::Config {
                map: "self-attention",
                reason: format!(
                    "num_heads {} is not a multiple of num_kv_heads {}",
                    self.num_heads, self.num_kv_heads
                ),
            });
        }
        if let AttentionConfig::Linear { window, .. } = &self.attention
            && *window > 0
            && !self.causal
        {
            // Caught here, not at the first forward, for layers built outside the models.
            return Err(AttentionError::Config {
                map: "self-attention",
                reason: format!(
                    "window {window} on a bidirectional layer: sliding windows are causal only"
                ),
            });
        }
        let linear = |input: usize, out: usize| {
            let config = LinearConfig::new(input, out).with_bias(self.bias);
            match &self.initializer {
                Some(initializer) => config.with_initializer(initializer.clone()),
                None => config,
            }
            .init(device)
        };
        let projection = |out: usize| linear(self.model_dim, out);
        Ok(SelfAttention {
            query: projection(self.num_heads * self.head_dim),
            key: projection(self.num_kv_heads * self.head_dim),
            value: projection(self.num_kv_heads * self.head_dim),
            output: linear(self.num_heads * self.head_dim, self.model_dim),
            lora: None,
            linear: self
                .attention
                .init_linear(self.head_dim, self.num_heads, device)?,
            rotary: self.rope_base.map(|base| Rotary {
                base,
                head_dim: self.head_dim,
            }),
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
            causal: self.causal,
            dropout: DropoutConfig::new(self.dropout).init(),
        })
    }
}

/// Multi-head self-attention with pluggable attention.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    /// Low-rank updates of the projections (`None`: none attached, or merged).
    pub lora: Option<LoraAdapters<B>>,
    /// `None`: softmax attention.
    pub linear: Option<LinearAttention<B>>,
    pub rotary: Option<Rotary>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// On the softmax weights (as in GPT-2, BERT and ViT).
    pub dropout: Dropout,
}

impl<B: Backend> SelfAttention<B> {
    /// `[B, T, heads·d]` → `[B, heads, T, d]`.
    fn split_heads(&self, x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
        let [b, t, _] = x.dims();
        x.reshape([b, t, heads, self.head_dim]).swap_dims(1, 2)
    }

    /// Repeats each key/value head for its group of query heads (HF `repeat_kv`).
    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let groups = self.num_heads / self.num_kv_heads;
        if groups == 1 {
            return x;
        }
        let [b, kv, t, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv, groups, t, d])
            .reshape([b, kv * groups, t, d]) // [B, H, T, d]
    }

    /// `x W + b`, plus the LoRA update `(α / r) · (x A) B` when `target` has an adapter.
    fn projection(&self, linear: &Linear<B>, target: LoraTarget, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.lora.as_ref().and_then(|lora| lora.get(target)) {
            Some(adapter) => linear.forward(x.clone()) + adapter.forward(x),
            None => linear.forward(x),
        }
    }

    /// `q, k, v: [B, H, T, d]` for tokens at `start..`, rotated when the layer has RoPE.
    fn project(&self, x: Tensor<B, 3>, start: usize) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let q = self.projection(&self.query, LoraTarget::Query, x.clone()); // [B, T, H·d]
        let k = self.projection(&self.key, LoraTarget::Key, x.clone()); // [B, T, H_kv·d]
        let v = self.projection(&self.value, LoraTarget::Value, x);
        let mut q = self.split_heads(q, self.num_heads);
        let mut k = self.split_heads(k, self.num_kv_heads);
        let v = self.split_heads(v, self.num_kv_heads);
        if let Some(rotary) = &self.rotary {
            q = rotary.apply(q, start);
            k = rotary.apply(k, start);
        }
        (q, self.repeat_kv(k), self.repeat_kv(v))
    }

    fn merge(&self, y: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, h, t, d] = y.dims();
        let y = y.swap_dims(1, 2).reshape([b, t, h * d]); // [B, T, H·d]
        self.projection(&self.output, LoraTarget::Output, y)
    }

    /// Full-sequence forward: `x: [B, T, D]`, `key_padding: [B, T]` (true = padding).
    ///
    /// With `capture`, also returns the teacher's and student's weights and the student's
    /// kernel (quadratic cost); the distilling modes always capture
    /// ([`AttentionMode::DistillOutputs`] adds both outputs,
    /// [`AttentionMode::DistillOutputsOnly`] keeps the outputs and drops the student's weights).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<(Tensor<B, 3>, Option<AttentionCapture<B>>), AttentionError> {
        let (q, k, v) = self.project(x, 0);
        let use_softmax = self.linear.is_none() || mode.distills();
        let inputs = |q: &Tensor<B, 4>, k: &Tensor<B, 4>, v: &Tensor<B, 4>| CaptureInputs {
            q: q.clone(),
            k: k.clone(),
            v: v.clone(),
            causal: self.causal,
            key_padding,
            linear: self.linear.as_ref(),
        };
        let mut captured = None;
        let y = if use_softmax && !capture && mode == AttentionMode::Configured {
            // The training and inference path: one fused pass on the CPU backend, no T × T
            // weights; dropout on the weights as `self.dropout` would apply it.
            softmax::output(q, k, v, self.causal, key_padding, self.dropout.prob)?
        } else if use_softmax {
            let weights = softmax::weights(q.clone(), k.clone(), self.causal, key_padding)?;
            if capture || mode.distills() {
                captured = Some(AttentionCapture::teacher_forced(
                    inputs(&q, &k, &v),
                    weights.clone(),
                    mode,
                )?);
            }
            self.dropout.forward(weights).matmul(v)
        } else {
            let linear = self.linear.as_ref().expect("linear layer");
            if capture {
                captured = Some(AttentionCapture::as_run(inputs(&q, &k, &v), linear)?);
            }
            linear.forward(q, k, v, self.causal, key_padding)?
        };
        Ok((self.merge(y), captured))
    }

    /// Incremental causal forward for generation: `x: [B, t, D]` are the tokens at
    /// `start..start+t`; `cache` holds what came before and is returned extended.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: LayerCache<B>,
        start: usize,
    ) -> Result<(Tensor<B, 3>, LayerCache<B>), AttentionError> {
        let (q, k, v) = self.project(x, start);
        let (y, cache) = match &self.linear {
            None => Self::cached_softmax(q, k, v, cache)?,
            Some(linear) if linear.window > 0 => {
                Self::cached_window(linear, q, k, v, cache, start)?
            }
            Some(linear) => Self::cached_linear(linear, q, k, v, cache, start)?,
        };
        Ok((self.merge(y), cache))
    }

    /// Softmax decoding: the cache grows by the new keys and values.
    fn cached_softmax(
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        cache: LayerCache<B>,
    ) -> Result<(Tensor<B, 4>, LayerCache<B>), AttentionError> {
        let (keys, values) = match cache {
            LayerCache::Softmax { keys, values } => (
                Tensor::cat(vec![keys, k], 2),
                Tensor::cat(vec![values, v], 2),
            ),
            _ => (k, v),
        };
        let y = softmax::output(q, keys.clone(), values.clone(), true, None, 0.0)?;
        Ok((y, LayerCache::Softmax { keys, values }))
    }

    /// Linear decoding: one token is a recurrent step, several the chunked form; either way
    /// the cache is `(S, z)` alone.
    fn cached_linear(
        linear: &LinearAttention<B>,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        cache: LayerCache<B>,
        start: usize,
    ) -> Result<(Tensor<B, 4>, LayerCache<B>), AttentionError> {
        let state = match cache {
            LayerCache::Linear(state) => Some(state),
            _ => None,
        };
        let (fq, fk) = linear.features(q, k, start)?;
        let t = fq.dims()[2];
        let (y, state) = if t == 1 {
            let [b, h, _, f] = fq.dims();
            let dv = v.dims()[3];
            let state = state.unwrap_or_else(|| LinearState::zeros(b, h, f, dv, &fq.device()));
            let (y, state) = linear_forms::recurrent_step(
                state,
                fq.reshape([b, h, f]),
                fk.reshape([b, h, f]),
                v.reshape([b, h, dv]),
                linear.eps,
            );
            (y.reshape([b, h, 1, dv]), state)
        } else {
            linear_forms::chunked(fq, fk, v, linear.chunk_size, None, state, linear.eps)?
        };
        Ok((y, LayerCache::Linear(state)))
    }

    /// Sliding-window decoding: one token after a filled cache is a decoding step, anything
    /// else (the prompt, or several tokens continuing a cache) the chunked prefill. The cache
    /// keeps at most `W` raw keys and values plus `(S, z)`: constant memory in the context.
    fn cached_window(
        linear: &LinearAttention<B>,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        cache: LayerCache<B>,
        start: usize,
    ) -> Result<(Tensor<B, 4>, LayerCache<B>), AttentionError> {
        let previous = match cache {
            LayerCache::Empty if start == 0 => None,
            LayerCache::Window(state) if state.position == start => Some(state),
            other => return Err(window_cache_mismatch(&other, start, linear.window)),
        };
        let (y, state) = match previous {
            Some(state) if q.dims()[2] == 1 => linear.decode_step_window(state, q, k, v)?,
            previous => linear.prefill_window(q, k, v, None, previous)?,
        };
        Ok((y, LayerCache::Window(state)))
    }
}

/// Why a windowed layer cannot continue from `cache` at `start`: a cache of another kind, or
/// one at another position (the window's keys and cosFormer's features depend on positions).
fn window_cache_mismatch<B: Backend>(
    cache: &LayerCache<B>,
    start: usize,
    window: usize,
) -> AttentionError {
    let found = match cache {
        LayerCache::Empty => "an empty cache (which starts at position 0)".to_string(),
        LayerCache::Window(state) => {
            format!("a window cache at position {}", state.position)
        }
        LayerCache::Softmax { .. } => "a softmax key/value cache".to_string(),
        LayerCache::Linear(_) => "a linear (S, z) cache".to_string(),
    };
    AttentionError::Config {
        map: "sliding-window decoding",
        reason: format!(
            "a layer with window {window} continues at position {start} from {found}; pass \
             each layer the cache its previous call returned, with start = the tokens seen so \
             far"
        ),
    }
}
