//! The sliding window of a [`LinearAttention`] layer: its factors `γ`, and the layer's forms
//! dispatched to `window.rs` when `window > 0`.

use burn::module::Param;
use burn::tensor::{Bool, Tensor, activation, backend::Backend};

use super::LinearAttention;
use crate::error::{AttentionError, config_error};
use crate::feature_map::Role;
use crate::window::{self, WindowInputs, WindowPrefix, WindowState, WindowToken};

impl<B: Backend> LinearAttention<B> {
    /// Adds a sliding softmax window of the last `window` keys (0: none, the layer unchanged),
    /// every head's factor starting at `initial_factor` `= γ = sigmoid(w)`, in (0, 1):
    /// `w = ln(γ / (1 − γ))`, trainable, one per head.
    pub fn with_window(
        mut self,
        window: usize,
        initial_factor: f64,
        num_heads: usize,
        device: &B::Device,
    ) -> Result<Self, AttentionError> {
        if !(initial_factor > 0.0 && initial_factor < 1.0) {
            return Err(config_error(
                "linear attention",
                format!(
                    "window_factor must be in (0, 1) (it is γ = sigmoid(w)), got {initial_factor}"
                ),
            ));
        }
        self.window = window;
        self.window_factors = (window > 0).then(|| {
            let logit = (initial_factor / (1.0 - initial_factor)).ln();
            Param::from_tensor(Tensor::full([num_heads], logit, device))
        });
        Ok(self)
    }

    /// The per-head window factors `γ_h = sigmoid(w_h)`, `[H]`; `None` without a window.
    pub fn window_gammas(&self) -> Option<Tensor<B, 1>> {
        self.window_factors
            .as_ref()
            .map(|w| activation::sigmoid(w.val()))
    }

    /// Refuses the methods whose state is a `LinearState` on a layer with a window.
    pub(super) fn check_no_window(&self, method: &str) -> Result<(), AttentionError> {
        if self.window == 0 {
            return Ok(());
        }
        Err(config_error(
            "linear attention",
            format!(
                "this layer has a sliding window of {} keys, so its decoding state is a \
                 WindowState: call {method}_window instead of {method}",
                self.window
            ),
        ))
    }

    fn gammas_for(&self, what: &str, causal: bool) -> Result<Tensor<B, 1>, AttentionError> {
        if self.window == 0 {
            return Err(config_error(
                "linear attention",
                format!("{what} needs a sliding window; this layer has none (window 0)"),
            ));
        }
        if !causal {
            return Err(config_error(
                "linear attention",
                format!(
                    "a sliding window (window {}) is causal only: non-causal sliding windows are \
                     not defined here; use window 0 for non-causal layers",
                    self.window
                ),
            ));
        }
        self.window_gammas().ok_or_else(|| {
            config_error(
                "linear attention",
                format!(
                    "window {} without window factors; build the layer with with_window",
                    self.window
                ),
            )
        })
    }

    fn window_inputs(
        &self,
        factors: Tensor<B, 1>,
        [q, k, fq, fk, v]: [Tensor<B, 4>; 5],
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> WindowInputs<B> {
        WindowInputs {
            q,
            k,
            fq,
            fk,
            v,
            factors,
            key_padding: key_padding.cloned(),
            eps: self.eps,
        }
    }

    pub(super) fn forward_window(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        let factors = self.gammas_for("the window form", causal)?;
        self.query_map.check_input(q.dims(), 0)?;
        self.key_map().check_input(k.dims(), 0)?;
        let fq = self.query_map.forward_for_output(q.clone(), Role::Query, 0);
        let fk = self.key_map().forward_for_output(k.clone(), Role::Key, 0);
        let inputs = self.window_inputs(factors, [q, k, fq, fk, v], key_padding);
        window::chunked_output(inputs, self.window, self.chunk_size)
    }

    pub(super) fn weights_window(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        let factors = self.gammas_for("the window form", causal)?;
        let (fq, fk) = self.features(q.clone(), k.clone(), 0)?;
        let [b, h, t, _] = k.dims();
        // Values are not needed for the weights; a width-1 placeholder keeps one code path.
        let v = Tensor::zeros([b, h, t, 1], &fq.device());
        let inputs = self.window_inputs(factors, [q, k, fq, fk, v], key_padding);
        Ok(window::quadratic(inputs, self.window)?.1)
    }

    pub(super) fn kernel_window(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        causal: bool,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        let factors = self.gammas_for("the window form", causal)?;
        let (fq, fk) = self.features(q.clone(), k.clone(), 0)?;
        let [b, h, t, _] = k.dims();
        let v = Tensor::zeros([b, h, t, 1], &fq.device());
        let inputs = self.window_inputs(factors, [q, k, fq, fk, v], key_padding);
        window::terms(inputs, self.window)
    }

    /// Causal prefill with the chunked window form, continuing `previous` when given (at its
    /// position; `key_padding: [B, T]` covers the new tokens). The returned state continues
    /// with [`LinearAttention::decode_step_window`] or another prefill.
    pub fn prefill_window(
        &self,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        previous: Option<WindowState<B>>,
    ) -> Result<(Tensor<B, 4>, WindowState<B>), AttentionError> {
        let factors = self.gammas_for("prefill_window", true)?;
        let start = previous.as_ref().map_or(0, |state| state.position);
        let (fq, fk) = self.features(q.clone(), k.clone(), start)?;
        let prefix = match previous {
            None => None,
            Some(state) => {
                // The cached keys' features, at their own positions, for the ones that leave
                // the window during this call.
                let first = start.checked_sub(state.cached()).ok_or_else(|| {
                    config_error(
                        "sliding-window prefill",
                        format!(
                            "the state caches {} tokens but has seen only {start}",
                            state.cached()
                        ),
                    )
                })?;
                self.key_map().check_input(state.keys.dims(), first)?;
                let key_features = self.key_map().forward(state.keys.clone(), Role::Key, first);
                Some(WindowPrefix {
                    state,
                    key_features,
                })
            }
        };
        let inputs = self.window_inputs(factors, [q, k, fq, fk, v], key_padding);
        window::chunked(inputs, self.window, self.chunk_size, prefix)
    }

    /// One decoding step for the token at `state.position`: `q, k: [B, H, 1, d]`,
    /// `v: [B, H, 1, dv]`; returns `y: [B, H, 1, dv]` and the state after the token.
    pub fn decode_step_window(
        &self,
        state: WindowState<B>,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> Result<(Tensor<B, 4>, WindowState<B>), AttentionError> {
        let factors = self.gammas_for("decode_step_window", true)?;
        let [b, h, _, d] = q.dims();
        let [dv, position] = [v.dims()[3], state.position];
        for (what, x, width) in [("query", &q, d), ("key", &k, d), ("value", &v, dv)] {
            if x.dims() != [b, h, 1, width] {
                return Err(AttentionError::Shape {
                    what: "decode step query/key/value",
                    expected: format!("one token: [{b}, {h}, 1, {width}] ({what})"),
                    got: x.dims().to_vec(),
                });
            }
        }
        self.query_map.check_input(q.dims(), position)?;
        self.key_map().check_input(k.dims(), position)?;
        let fq = self.query_map.forward(q.clone(), Role::Query, position);
        let f = fq.dims()[3];
        state.check([b, h, d, f, dv], self.window)?;
        let leaving_features = state.leaving_key(self.window).map(|(key, at)| {
            self.key_map()
                .forward(key, Role::Key, at)
                .reshape([b, h, f])
        });
        let token = WindowToken {
            q: q.reshape([b, h, d]),
            k: k.reshape([b, h, d]),
            v: v.reshape([b, h, dv]),
            fq: fq.reshape([b, h, f]),
            leaving_features,
        };
        let (y, state) = window::decode_step(state, token, factors, self.window, self.eps)?;
        Ok((y.reshape([b, h, 1, dv]), state))
    }
}
