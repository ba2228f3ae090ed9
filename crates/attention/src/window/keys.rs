//! The keys a chunked sliding-window call works on: the prefix's cached tokens then the call's
//! own, and the frame in which every chunk's band of keys starts at a multiple of `C`.

use burn::tensor::{Bool, Tensor, backend::Backend};

use super::state::{WindowPrefix, WindowState};
use crate::types::{LinearState, WindowInputs};

/// The keys a call's queries may see: the prefix's cached tokens, then the call's own.
pub(super) struct KeySequence<B: Backend> {
    /// `[B, H, Tk, d]`, `Tk = n + T`.
    keys: Tensor<B, 4>,
    /// `φ(k)`, zero for padding: `[B, H, Tk, F]`.
    features: Tensor<B, 4>,
    /// `[B, H, Tk, dv]`.
    values: Tensor<B, 4>,
    /// 1 for a real token, 0 for padding: `[B, Tk]`.
    pub(super) keep: Tensor<B, 2>,
    /// Whether any token (cached or new) may be padding.
    padded: bool,
    /// `(S, z)` of the tokens before the cached ones.
    linear: LinearState<B>,
    /// Position of the first query.
    start: usize,
    /// Cached tokens `n` in front of the call's own.
    pub(super) cached: usize,
}

fn keep_of<B: Backend>(
    padding: Option<&Tensor<B, 2, Bool>>,
    shape: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 2> {
    padding.map_or_else(
        || Tensor::ones(shape, device),
        |p| p.clone().bool_not().float(),
    )
}

impl<B: Backend> KeySequence<B> {
    pub(super) fn new(inputs: WindowInputs<B>, prefix: Option<WindowPrefix<B>>) -> Self {
        let WindowInputs {
            k,
            fk,
            v,
            key_padding,
            ..
        } = inputs;
        let [b, h, t, _] = k.dims();
        let [f, dv] = [fk.dims()[3], v.dims()[3]];
        let device = k.device();
        let keep = keep_of(key_padding.as_ref(), [b, t], &device);
        let sequence = match prefix {
            None => Self {
                keys: k,
                features: fk,
                values: v,
                keep,
                padded: key_padding.is_some(),
                linear: LinearState::zeros(b, h, f, dv, &device),
                start: 0,
                cached: 0,
            },
            Some(WindowPrefix {
                state,
                key_features,
            }) => {
                let n = state.cached();
                let cached_keep = keep_of(state.padding.as_ref(), [b, n], &device);
                Self {
                    keys: Tensor::cat(vec![state.keys, k], 2),
                    features: Tensor::cat(vec![key_features, fk], 2),
                    values: Tensor::cat(vec![state.values, v], 2),
                    keep: Tensor::cat(vec![cached_keep, keep], 1),
                    padded: key_padding.is_some() || state.padding.is_some(),
                    linear: state.linear,
                    start: state.position,
                    cached: n,
                }
            }
        };
        sequence.with_padded_features_zeroed()
    }

    /// Padded keys get zero features, so that they add nothing to the linear part.
    fn with_padded_features_zeroed(mut self) -> Self {
        if self.padded {
            let [b, _, tk, _] = self.features.dims();
            self.features = self.features * self.keep.clone().reshape([b, 1, tk, 1]);
        }
        self
    }

    /// The keys in the frame where chunk `c`'s band starts at `c·C`, padded with absent keys
    /// to `query_len + W − 1`, and the linear state of the keys before that frame.
    pub(super) fn align(&self, window: usize, query_len: usize) -> (Band<B>, LinearState<B>) {
        let tk = self.keys.dims()[2];
        let (mut band, mut linear) = (self.band(), self.linear.clone());
        // The first query, key `n`, sees keys from `n + 1 − W`; a full cache's oldest key is
        // already behind every query's window and goes straight into the linear state.
        let (behind, front) = match (self.cached + 1).checked_sub(window) {
            Some(behind) => (behind, 0),
            None => (0, window - 1 - self.cached),
        };
        if behind > 0 {
            let [b, h, _, _] = self.keys.dims();
            let head = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, 0..behind]);
            let folded = LinearState::from_features(head(&band.features), head(&band.values));
            linear = add_states(linear, folded);
            band = band.tokens(behind, tk);
        }
        let back = query_len + window - 1 - (front + tk - behind);
        (band.padded(front, back), linear)
    }

    fn band(&self) -> Band<B> {
        Band {
            keys: self.keys.clone(),
            features: self.features.clone(),
            values: self.values.clone(),
            keep: self.keep.clone(),
        }
    }

    /// The state decoding continues from after the call's `t` tokens: the last `min(W, Tk)`
    /// tokens cached, and `linear` plus every aligned key more than `W` behind the last token
    /// (the first `t − 1` aligned keys).
    pub(super) fn final_state(
        &self,
        aligned: &Band<B>,
        linear: LinearState<B>,
        window: usize,
    ) -> WindowState<B> {
        let [b, h, tk, _] = self.keys.dims();
        let t = tk - self.cached;
        let linear = if t > 1 {
            let head = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, 0..t - 1]);
            add_states(
                linear,
                LinearState::from_features(head(&aligned.features), head(&aligned.values)),
            )
        } else {
            linear
        };
        let kept = tk - window.min(tk);
        let tail = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, kept..tk]);
        WindowState {
            keys: tail(&self.keys),
            values: tail(&self.values),
            padding: self
                .padded
                .then(|| self.keep.clone().slice([0..b, kept..tk]).equal_elem(0.0)),
            linear,
            position: self.start + t,
        }
    }
}

fn add_states<B: Backend>(a: LinearState<B>, b: LinearState<B>) -> LinearState<B> {
    LinearState {
        s: a.s + b.s,
        z: a.z + b.z,
    }
}

/// Keys with their features, values and keep-mask, along the token dimension.
#[derive(Clone)]
pub(super) struct Band<B: Backend> {
    pub(super) keys: Tensor<B, 4>,
    pub(super) features: Tensor<B, 4>,
    pub(super) values: Tensor<B, 4>,
    pub(super) keep: Tensor<B, 2>,
}

impl<B: Backend> Band<B> {
    pub(super) fn tokens(&self, start: usize, end: usize) -> Self {
        let [b, h, _, _] = self.keys.dims();
        let cut = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, start..end]);
        Self {
            keys: cut(&self.keys),
            features: cut(&self.features),
            values: cut(&self.values),
            keep: self.keep.clone().slice([0..b, start..end]),
        }
    }

    /// `front` and `back` absent keys (zero, keep 0) around the tokens.
    fn padded(self, front: usize, back: usize) -> Self {
        Self {
            keys: pad_tokens(self.keys, 2, front, back),
            features: pad_tokens(self.features, 2, front, back),
            values: pad_tokens(self.values, 2, front, back),
            keep: pad_tokens(self.keep, 1, front, back),
        }
    }
}

/// `x` with `front` and `back` zeros along `dim`.
pub(super) fn pad_tokens<B: Backend, const D: usize>(
    x: Tensor<B, D>,
    dim: usize,
    front: usize,
    back: usize,
) -> Tensor<B, D> {
    let (device, shape) = (x.device(), x.dims());
    let zeros = |len: usize| {
        let mut shape = shape;
        shape[dim] = len;
        Tensor::<B, D>::zeros(shape, &device)
    };
    let mut parts = Vec::with_capacity(3);
    if front > 0 {
        parts.push(zeros(front));
    }
    parts.push(x);
    if back > 0 {
        parts.push(zeros(back));
    }
    Tensor::cat(parts, dim)
}
