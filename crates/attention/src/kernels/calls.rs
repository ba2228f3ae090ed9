//! The bundles of primitives each fused call reads its slices from. A bundle keeps the tensors
//! alive (burn-ndarray primitives are reference counted: cloning is free), so the autodiff ops
//! store the same bundle as their backward state.

use std::sync::Arc;

use burn_ndarray::NdArrayTensor;

use super::host;
use super::{hedgehog, linear, lm_head, softmax, window};
use crate::types::HedgehogActivation;

/// The primitives of a linear-attention call.
#[derive(Clone, Debug)]
pub(super) struct LinearCall {
    pub fq: NdArrayTensor,
    pub fk: NdArrayTensor,
    pub v: NdArrayTensor,
    pub s0: Option<NdArrayTensor>,
    pub z0: Option<NdArrayTensor>,
    pub keep: Option<Arc<[bool]>>,
    pub dims: linear::Dims,
    pub eps: f32,
}

impl LinearCall {
    pub fn new(
        fq: NdArrayTensor,
        fk: NdArrayTensor,
        v: NdArrayTensor,
        state: Option<(NdArrayTensor, NdArrayTensor)>,
        keep: Option<Vec<bool>>,
        eps: f64,
    ) -> Self {
        let [batch, heads, len, features]: [usize; 4] =
            host::dims(&fq).try_into().expect("rank-4 features");
        let value_dim = host::dims(&v)[3];
        let (s0, z0) = state.unzip();
        Self {
            fq,
            fk,
            v,
            s0,
            z0,
            keep: keep.map(Arc::from),
            dims: linear::Dims {
                batch,
                heads,
                len,
                features,
                value_dim,
            },
            eps: eps as f32,
        }
    }

    /// Runs `f` on the call's slices.
    pub fn with<R>(&self, f: impl FnOnce(linear::Inputs<'_>) -> R) -> R {
        let (q, k, v) = (
            host::values(&self.fq),
            host::values(&self.fk),
            host::values(&self.v),
        );
        let s0 = self.s0.as_ref().map(host::values);
        let z0 = self.z0.as_ref().map(host::values);
        f(linear::Inputs {
            q: &q,
            k: &k,
            v: &v,
            keep: self.keep.as_deref(),
            s0: s0.as_deref(),
            z0: z0.as_deref(),
            eps: self.eps,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.len, d.value_dim]
    }

    pub fn state_shapes(&self) -> ([usize; 4], [usize; 3]) {
        let d = self.dims;
        (
            [d.batch, d.heads, d.features, d.value_dim],
            [d.batch, d.heads, d.features],
        )
    }
}

/// The primitives of a Hedgehog feature-map call.
#[derive(Clone, Debug)]
pub(super) struct HedgehogCall {
    pub x: NdArrayTensor,
    pub weight: NdArrayTensor,
    pub bias: NdArrayTensor,
    pub dims: hedgehog::Dims,
    pub activation: HedgehogActivation,
}

impl HedgehogCall {
    pub fn new(
        x: NdArrayTensor,
        weight: NdArrayTensor,
        bias: NdArrayTensor,
        activation: HedgehogActivation,
    ) -> Self {
        let [batch, heads, len, head_dim]: [usize; 4] =
            host::dims(&x).try_into().expect("rank-4 input");
        let [weight_heads, _, out_dim]: [usize; 3] =
            host::dims(&weight).try_into().expect("rank-3 weight");
        Self {
            x,
            weight,
            bias,
            dims: hedgehog::Dims {
                batch,
                heads,
                len,
                head_dim,
                out_dim,
                weight_heads,
            },
            activation,
        }
    }

    pub fn forward(&self) -> Vec<f32> {
        hedgehog::forward(
            self.dims,
            &host::values(&self.x),
            &host::values(&self.weight),
            &host::values(&self.bias),
            self.activation,
        )
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.len, 2 * d.out_dim]
    }
}

/// The primitives of a softmax-attention call.
#[derive(Clone, Debug)]
pub(super) struct SoftmaxCall {
    pub q: NdArrayTensor,
    pub k: NdArrayTensor,
    pub v: Option<NdArrayTensor>,
    pub causal: bool,
    pub keep: Option<Arc<[bool]>>,
    pub dropout: Option<softmax::Dropout>,
    pub dims: softmax::Dims,
}

impl SoftmaxCall {
    pub fn new(
        q: NdArrayTensor,
        k: NdArrayTensor,
        v: Option<NdArrayTensor>,
        causal: bool,
        keep: Option<Vec<bool>>,
        dropout: Option<softmax::Dropout>,
    ) -> Self {
        let [batch, heads, query_len, head_dim]: [usize; 4] =
            host::dims(&q).try_into().expect("rank-4 queries");
        let key_len = host::dims(&k)[2];
        let value_dim = v.as_ref().map_or(0, |v| host::dims(v)[3]);
        Self {
            q,
            k,
            v,
            causal,
            keep: keep.map(Arc::from),
            dropout,
            dims: softmax::Dims {
                batch,
                heads,
                query_len,
                key_len,
                head_dim,
                value_dim,
            },
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(softmax::Inputs<'_>) -> R) -> R {
        let (q, k) = (host::values(&self.q), host::values(&self.k));
        let v = self.v.as_ref().map(host::values);
        f(softmax::Inputs {
            q: &q,
            k: &k,
            v: v.as_deref().unwrap_or(&[]),
            causal: self.causal,
            keep: self.keep.as_deref(),
            dropout: self.dropout,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.query_len, d.value_dim]
    }

    pub fn weights_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.query_len, d.key_len]
    }
}

/// The primitives of a sliding-window + linear attention call (`factors`: `γ`, `[H]`).
#[derive(Clone, Debug)]
pub(super) struct WindowCall {
    pub q: NdArrayTensor,
    pub k: NdArrayTensor,
    pub fq: NdArrayTensor,
    pub fk: NdArrayTensor,
    pub v: NdArrayTensor,
    pub factors: NdArrayTensor,
    pub keep: Option<Arc<[bool]>>,
    pub dims: window::Dims,
    pub eps: f32,
}

impl WindowCall {
    /// `[q, k, φ(q), φ(k), v]`, `γ`, the keep flags, `ε` and `W`.
    pub fn new(
        [q, k, fq, fk, v]: [NdArrayTensor; 5],
        factors: NdArrayTensor,
        keep: Option<Vec<bool>>,
        eps: f64,
        window: usize,
    ) -> Self {
        let [batch, heads, len, head_dim]: [usize; 4] =
            host::dims(&q).try_into().expect("rank-4 queries");
        let (features, value_dim) = (host::dims(&fq)[3], host::dims(&v)[3]);
        Self {
            q,
            k,
            fq,
            fk,
            v,
            factors,
            keep: keep.map(Arc::from),
            dims: window::Dims {
                batch,
                heads,
                len,
                head_dim,
                features,
                value_dim,
                window,
            },
            eps: eps as f32,
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(window::Inputs<'_>) -> R) -> R {
        let [q, k, fq, fk, v, factors] =
            [&self.q, &self.k, &self.fq, &self.fk, &self.v, &self.factors].map(host::values);
        f(window::Inputs {
            q: &q,
            k: &k,
            fq: &fq,
            fk: &fk,
            v: &v,
            factors: &factors,
            keep: self.keep.as_deref(),
            eps: self.eps,
        })
    }

    pub fn output_shape(&self) -> [usize; 4] {
        let d = self.dims;
        [d.batch, d.heads, d.len, d.value_dim]
    }
}

/// The LM head's call sizes.
pub(super) fn lm_head_dims(hidden: &NdArrayTensor, weight: &NdArrayTensor) -> lm_head::Dims {
    let [tokens, model_dim]: [usize; 2] = host::dims(hidden).try_into().expect("rank-2 hidden");
    lm_head::Dims {
        tokens,
        model_dim,
        vocab: host::dims(weight)[0],
    }
}
