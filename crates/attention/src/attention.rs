//! A layer's attention: softmax, or linear attention with a feature map on queries and keys.
//!
//! Models hold one [`AttentionConfig`] per layer; YAML specs write it as
//! `{kind: softmax}` or `{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 64}}`;
//! a linear layer with `window: 64` adds a sliding softmax window over the last 64 keys
//! (`window.rs`).

mod window;

use burn::module::{Module, Param};
use burn::tensor::{Bool, Tensor, backend::Backend};
use serde::{Deserialize, Serialize};

use crate::error::AttentionError;
use crate::feature_map::{FeatureMap, FeatureMapConfig, Role};
use crate::linear::{self, DEFAULT_EPS, LinearState};

/// Default chunk length of the chunked causal form.
pub const DEFAULT_CHUNK_SIZE: usize = 64;

/// Default initial window factor `γ = sigmoid(w)`: LoLCATs initialises `w` at −2.197.
pub const DEFAULT_WINDOW_FACTOR: f64 = 0.1;

fn default_chunk_size() -> usize {
    DEFAULT_CHUNK_SIZE
}

fn default_eps() -> f64 {
    DEFAULT_EPS
}

fn default_window_factor() -> f64 {
    DEFAULT_WINDOW_FACTOR
}

// Window-less configs serialise as before the window existed, so resolved configs and the
// configs stored with checkpoints do not change.
fn is_no_window(window: &usize) -> bool {
    *window == 0
}

fn is_default_window_factor(factor: &f64) -> bool {
    *factor == DEFAULT_WINDOW_FACTOR
}

/// Which attention a layer uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttentionConfig {
    Softmax,
    Linear {
        feature_map: FeatureMapConfig,
        /// Use one map instance for queries and keys even when it is trainable. Hedgehog's paper
        /// setting is untied (per-head query and key maps); Performer and parameter-free maps
        /// are always shared.
        #[serde(default)]
        tie_query_key: bool,
        #[serde(default = "default_chunk_size")]
        chunk_size: usize,
        #[serde(default = "default_eps")]
        eps: f64,
        /// Sliding softmax window of the last `W` keys beside the linear part (causal only;
        /// `window.rs`); 0, the default, is plain linear attention.
        #[serde(default, skip_serializing_if = "is_no_window")]
        window: usize,
        /// Initial per-head factor `γ = sigmoid(w)` of the window's terms, in (0, 1).
        #[serde(
            default = "default_window_factor",
            skip_serializing_if = "is_default_window_factor"
        )]
        window_factor: f64,
    },
}

impl AttentionConfig {
    /// A linear attention with the given map, default chunk size and `ε`, and no window.
    pub fn linear(feature_map: FeatureMapConfig) -> Self {
        Self::Linear {
            feature_map,
            tie_query_key: false,
            chunk_size: DEFAULT_CHUNK_SIZE,
            eps: DEFAULT_EPS,
            window: 0,
            window_factor: DEFAULT_WINDOW_FACTOR,
        }
    }

    /// The name in tables and plots: the map's label, or `"window 64 + Hedgehog (...)"`.
    ///
    /// The window comes first on purpose: hedgehog-analysis fills a paper row with every label
    /// that is the row's name or the name followed by `" ("` (`"Hedgehog (softmax_split)"`
    /// fills "Hedgehog"), and a windowed layer is not the paper's method.
    pub fn label(&self) -> String {
        match self {
            Self::Softmax => "softmax".into(),
            Self::Linear {
                feature_map,
                window: 0,
                ..
            } => feature_map.label(),
            Self::Linear {
                feature_map,
                window,
                ..
            } => format!("window {window} + {}", feature_map.label()),
        }
    }

    /// Builds the linear attention of this config; `None` for softmax, which has no state.
    pub fn init_linear<B: Backend>(
        &self,
        head_dim: usize,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<Option<LinearAttention<B>>, AttentionError> {
        match self {
            Self::Softmax => Ok(None),
            Self::Linear {
                feature_map,
                tie_query_key,
                chunk_size,
                eps,
                window,
                window_factor,
            } => {
                if *chunk_size == 0 {
                    return Err(crate::error::config_error(
                        "linear attention",
                        "chunk_size must be positive",
                    ));
                }
                if !(eps.is_finite() && *eps >= 0.0) {
                    return Err(crate::error::config_error(
                        "linear attention",
                        format!("eps must be finite and non-negative, got {eps}"),
                    ));
                }
                let query_map = feature_map.init(head_dim, num_heads, device)?;
                let key_map = if *tie_query_key || query_map.must_share_query_key() {
                    None
                } else {
                    Some(feature_map.init(head_dim, num_heads, device)?)
                };
                LinearAttention::new(query_map, key_map, *chunk_size, *eps)
                    .with_window(*window, *window_factor, num_heads, device)
                    .map(Some)
            }
        }
    }
}

/// Linear attention of one layer: the maps plus the form parameters.
#[derive(Module, Debug)]
pub struct LinearAttention<B: Backend> {
    pub query_map: FeatureMap<B>,
    /// `None`: the query map is used for keys too.
    pub key_map: Option<FeatureMap<B>>,
    pub chunk_size: usize,
    pub eps: f64,
    /// Sliding softmax window of the last `W` keys (`window.rs`); 0: none.
    pub window: usize,
    /// Per-head logits `w: [H]` of the window factors `γ = sigmoid(w)`; `None` without a
    /// window, so that a window-less layer has exactly the parameters it had before.
    pub window_factors: Option<Param<Tensor<B, 1>>>,
}

impl<B: Backend> LinearAttention<B> {
    /// From explicit maps (loading, fixtures), without a window
    /// ([`LinearAttention::with_window`] adds one).
    pub fn new(
        query_map: FeatureMap<B>,
        key_map: Option<FeatureMap<B>>,
        chunk_size: usize,
        eps: f64,
    ) -> Self {
        Self {
            query_map,
            key_map,
            chunk_size,
            eps,
            window: 0,
            window_factors: None,
        }
    }

    pub fn key_map(&self) -> &FeatureMap<B> {
        self.key_map.as_ref().unwrap_or(&self.query_map)
    }

    pub fn feature_dim(&self) -> usize {
        self.query_map.feature_dim()
    }

    /// `(φ(q), φ(k))` for tokens at `start_position..`, checking shapes and positions.
    pub fn features(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        start_position: usize,
    ) -> Result<(Tensor<B, 4>, Tensor<B, 4>), AttentionError> {
        self.query_map.check_input(q.dims(), start_position)?;
        self.key_map().check_input(k.dims(), start_position)?;
        Ok((
            self.query_map.forward(q, Role::Query, start_position),
            self.key_map().forward(k, Role::Key, start_position),
        ))
    }

    /// The fast path: parallel form when non-causal, chunked when causal; with a window, the
    /// chunked sliding-window form (causal only).
    pub fn forward(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        if self.window > 0 {
            return self.forward_window(q, k, v, causal, key_padding);
        }
        self.query_map.check_input(q.dims(), 0)?;
        self.key_map().check_input(k.dims(), 0)?;
        let fq = self.query_map.forward_for_output(q, Role::Query, 0);
        let fk = self.key_map().forward_for_output(k, Role::Key, 0);
        if causal {
            linear::chunked_output(fq, fk, v, self.chunk_size, key_padding, self.eps)
        } else {
            linear::parallel_output(fq, fk, v, key_padding, self.eps)
        }
    }

    /// The quadratic form's weights `[B, H, T, T]` (distillation, analysis); with a window,
    /// the combined window and linear weights.
    pub fn weights(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        if self.window > 0 {
            return self.weights_window(q, k, causal, key_padding);
        }
        let (fq, fk) = self.features(q, k.clone(), 0)?;
        let [b, h, t, _] = k.dims();
        // Values are not needed for the weights; a width-1 placeholder keeps one code path.
        let v = Tensor::zeros([b, h, t, 1], &fq.device());
        Ok(linear::quadratic(fq, fk, v, causal, key_padding, self.eps)?.1)
    }

    /// The unnormalised kernel `φ(q_i)·φ(k_j)`: `[B, H, T, T]`, 0 where query `i` may not
    /// attend to key `j` (causal `j > i`, padded keys) and on padded queries' rows; the rows of
    /// [`LinearAttention::weights`] are these divided by their sums `+ ε` (see [`linear::kernel`]).
    /// With a window, the window's entries are its terms `γ e^{s − m}` ([`crate::window::terms`]).
    pub fn kernel(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        if self.window > 0 {
            return self.kernel_window(q, k, causal, key_padding);
        }
        let (fq, fk) = self.features(q, k, 0)?;
        linear::kernel(fq, fk, causal, key_padding)
    }

    /// Causal prefill with the chunked form; the returned state continues with
    /// [`LinearAttention::decode_step`] at position `T`. A layer with a window decodes from a
    /// [`WindowState`](crate::window::WindowState) instead: [`LinearAttention::prefill_window`].
    pub fn prefill(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<(Tensor<B, 4>, LinearState<B>), AttentionError> {
        self.check_no_window("prefill")?;
        let (fq, fk) = self.features(q, k, 0)?;
        linear::chunked(fq, fk, v, self.chunk_size, key_padding, None, self.eps)
    }

    /// One decoding step for the token at `position`: `q, k: [B, H, 1, d]`, `v: [B, H, 1, dv]`.
    /// With a window: [`LinearAttention::decode_step_window`].
    pub fn decode_step(
        &self,
        state: LinearState<B>,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        position: usize,
    ) -> Result<(Tensor<B, 4>, LinearState<B>), AttentionError> {
        self.check_no_window("decode_step")?;
        let [b, h, t, dv] = v.dims();
        if t != 1 || q.dims()[2] != 1 || k.dims()[2] != 1 {
            return Err(AttentionError::Shape {
                what: "decode step query/key/value",
                expected: "one token: [B, H, 1, ·]".into(),
                got: q.dims().to_vec(),
            });
        }
        let (fq, fk) = self.features(q, k, position)?;
        let f = fq.dims()[3];
        let (y, state) = linear::recurrent_step(
            state,
            fq.reshape([b, h, f]),
            fk.reshape([b, h, f]),
            v.reshape([b, h, dv]),
            self.eps,
        );
        Ok((y.reshape([b, h, 1, dv]), state))
    }
}
