//! The chunked causal form of sliding-window + linear attention: training and prefill.
//!
//! Queries go in chunks of `C`. A chunk's queries see, through the window, at most the `W − 1`
//! keys before the chunk and the chunk's own keys: its band of `L = C + W − 1` keys. Keys older
//! than the band are in the linear part of every query in the chunk, and reach it through the
//! linear state `(S, z)` summed up to the band's start: the state lags the chunk's first query
//! by `W` tokens. Keys inside the band that are `W` or more tokens behind a query form the rest
//! of its linear part, as kernel terms beside the window's. Per chunk that is `C × L` terms, so
//! memory grows as `O(T (C + W))`, not `O(T²)`.
//!
//! The keys are first put in a frame where chunk `c`'s band starts at key `c·C` (zero keys in
//! front while fewer than `W − 1` keys precede the first query). Then every chunk's band has
//! the same mask against its queries, and the bands are gathered and the per-chunk states
//! formed by an exclusive prefix sum in batched ops, in groups of chunks that bound memory.

use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

use super::keys::{Band, KeySequence, pad_tokens};
use super::state::{WindowPrefix, WindowState};
use crate::reference::window::{mask_where, window_terms};
use crate::types::{LinearState, WindowInputs};

/// Upper bound on the elements held at once per group of chunks (their bands, terms and
/// states); past it the chunks are processed in groups with the linear state carried between.
const GROUP_BUDGET: usize = 1 << 25;

/// The chunked form; inputs (and the prefix) already checked. Returns the outputs
/// `[B, H, T, dv]` and, when `with_state`, the state decoding continues from.
pub(super) fn chunked<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
    chunk_size: usize,
    prefix: Option<WindowPrefix<B>>,
    with_state: bool,
) -> (Tensor<B, 4>, Option<WindowState<B>>) {
    let [b, h, t, d] = inputs.q.dims();
    let [f, dv] = [inputs.fq.dims()[3], inputs.v.dims()[3]];
    let c = chunk_size.min(t);
    let l = c + window - 1;
    let per_chunk = b * h * (f * dv + 3 * c * l + l * (d + f + dv));
    let per_group = (GROUP_BUDGET / per_chunk.max(1)).max(1);
    in_groups(inputs, window, c, prefix, with_state, per_group)
}

/// [`chunked`] with chunks of `c ≤ T` queries, `per_group` chunks at a time.
fn in_groups<B: Backend>(
    inputs: WindowInputs<B>,
    window: usize,
    c: usize,
    prefix: Option<WindowPrefix<B>>,
    with_state: bool,
    per_group: usize,
) -> (Tensor<B, 4>, Option<WindowState<B>>) {
    let [b, h, t, _] = inputs.q.dims();
    let (q, fq, factors, eps) = (
        inputs.q.clone(),
        inputs.fq.clone(),
        inputs.factors.clone(),
        inputs.eps,
    );
    let new_tokens_padded = inputs.key_padding.is_some();
    let sequence = KeySequence::new(inputs, prefix);
    let chunks = t.div_ceil(c);
    let (aligned, entering) = sequence.align(window, chunks * c);
    let queries = Queries {
        q: pad_tokens(q, 2, 0, chunks * c - t),
        features: pad_tokens(fq, 2, 0, chunks * c - t),
    };
    let mut outputs = Vec::with_capacity(chunks.div_ceil(per_group));
    let mut state = entering.clone();
    for first in (0..chunks).step_by(per_group) {
        let last = (first + per_group).min(chunks);
        let group = Group {
            queries: queries.tokens(first * c, last * c),
            keys: aligned.tokens(first * c, last * c + window - 1),
            chunk: c,
            window,
        };
        let (y, next) = group.attend(factors.clone(), state, eps);
        outputs.push(y);
        state = next;
    }
    let mut y = Tensor::cat(outputs, 2).slice([0..b, 0..h, 0..t]);
    if new_tokens_padded {
        let cached = sequence.cached;
        let keep = sequence.keep.clone().slice([0..b, cached..cached + t]);
        y = y * keep.reshape([b, 1, t, 1]);
    }
    let state = with_state.then(|| sequence.final_state(&aligned, entering, window));
    (y, state)
}

/// Queries `[B, H, ·, d]` and their features `[B, H, ·, F]`.
struct Queries<B: Backend> {
    q: Tensor<B, 4>,
    features: Tensor<B, 4>,
}

impl<B: Backend> Queries<B> {
    fn tokens(&self, start: usize, end: usize) -> Self {
        let [b, h, _, _] = self.q.dims();
        let cut = |x: &Tensor<B, 4>| x.clone().slice([0..b, 0..h, start..end]);
        Self {
            q: cut(&self.q),
            features: cut(&self.features),
        }
    }
}

/// `G` whole chunks of queries and their keys in the aligned frame: `G·C + W − 1` keys, of
/// which chunk `g`'s band is `g·C .. g·C + L`.
struct Group<B: Backend> {
    queries: Queries<B>,
    keys: Band<B>,
    chunk: usize,
    window: usize,
}

impl<B: Backend> Group<B> {
    /// The outputs `[B, H, G·C, dv]` entering with `state` (the linear state before the first
    /// band), and the state before the band after the group's last.
    fn attend(
        self,
        factors: Tensor<B, 1>,
        state: LinearState<B>,
        eps: f64,
    ) -> (Tensor<B, 4>, LinearState<B>) {
        let [b, h, gc, _] = self.queries.q.dims();
        let [f, dv] = [self.queries.features.dims()[3], self.keys.values.dims()[3]];
        let (c, w) = (self.chunk, self.window);
        let g = gc / c;
        let fq = self.queries.features.clone().reshape([b, h, g, c, f]); // [B, H, G, C, F]
        let (terms, values) = self.band_terms(factors);
        let blocks = self.keys.tokens(0, gc);
        let block_features = blocks.features.reshape([b, h, g, c, f]);
        let block_kv = block_features
            .clone()
            .swap_dims(3, 4)
            .matmul(blocks.values.reshape([b, h, g, c, dv])); // [B, H, G, F, dv]
        let (s_before, s_after) = exclusive_sums(block_kv, state.s.reshape([b, h, 1, f, dv]));
        let (z_before, z_after) = exclusive_sums(
            block_features.sum_dim(3), // [B, H, G, 1, F]
            state.z.reshape([b, h, 1, 1, f]),
        );
        let numerator = terms.clone().matmul(values) + fq.clone().matmul(s_before);
        let normaliser = terms.sum_dim(4) + fq.matmul(z_before.swap_dims(3, 4)).add_scalar(eps);
        // A query's own key sits `W − 1` into its band; a padded query's row may then hold no
        // visible key, and its normaliser gets 1 so that it is `0 / 1` (it is zeroed later).
        let query_keep = self.keys.keep.slice([0..b, w - 1..w - 1 + gc]);
        let query_absent = query_keep.reshape([b, 1, g, c, 1]).neg().add_scalar(1.0);
        let y = numerator / (normaliser + query_absent); // [B, H, G, C, dv]
        let next = LinearState {
            s: s_after.reshape([b, h, f, dv]),
            z: z_after.reshape([b, h, f]),
        };
        (y.reshape([b, h, gc, dv]), next)
    }

    /// Each chunk's terms against its band, `[B, H, G, C, L]` (window terms where
    /// `r ≤ l < r + W` for query `r` and band key `l`, kernel terms where `l < r`), and the
    /// band's values `[B, H, G, L, dv]`.
    fn band_terms(&self, factors: Tensor<B, 1>) -> (Tensor<B, 5>, Tensor<B, 5>) {
        let [b, h, gc, d] = self.queries.q.dims();
        let f = self.queries.features.dims()[3];
        let (c, w) = (self.chunk, self.window);
        let (g, l) = (gc / c, c + w - 1);
        let device = self.queries.q.device();
        let index: Vec<i64> = (0..g)
            .flat_map(|chunk| (0..l).map(move |j| (chunk * c + j) as i64))
            .collect();
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(index, [g * l]).convert::<B::IntElem>(),
            &device,
        );
        let gather = |x: &Tensor<B, 4>| {
            let width = x.dims()[3];
            x.clone()
                .select(2, index.clone())
                .reshape([b, h, g, l, width])
        };
        let absent = self.keys.keep.clone().select(1, index.clone());
        let absent = absent
            .reshape([b, 1, g, 1, l])
            .equal_elem(0.0)
            .expand([b, h, g, c, l]);
        let outside = mask_where::<B>(c, l, |r, j| j < r || j >= r + w, &device)
            .reshape([1, 1, 1, c, l])
            .expand([b, h, g, c, l]);
        let q = self.queries.q.clone().reshape([b, h, g, c, d]);
        let scores = q
            .matmul(gather(&self.keys.keys).swap_dims(3, 4))
            .div_scalar((d as f64).sqrt()); // [B, H, G, C, L]
        let windowed = window_terms(
            scores,
            outside.bool_or(absent),
            factors.reshape([1, h, 1, 1, 1]),
        );
        let linear_part = mask_where::<B>(c, l, |r, j| j < r, &device)
            .float()
            .reshape([1, 1, 1, c, l]);
        let fq = self.queries.features.clone().reshape([b, h, g, c, f]);
        let linear = fq.matmul(gather(&self.keys.features).swap_dims(3, 4)) * linear_part;
        (windowed + linear, gather(&self.keys.values))
    }
}

/// Per-block sums `[B, H, G, r, s]` turned into what precedes each block and what follows the
/// last, both offset by `initial` `[B, H, 1, r, s]`.
fn exclusive_sums<B: Backend>(
    blocks: Tensor<B, 5>,
    initial: Tensor<B, 5>,
) -> (Tensor<B, 5>, Tensor<B, 5>) {
    let [b, h, g, r, s] = blocks.dims();
    let inclusive = blocks.cumsum(2);
    let total = inclusive.clone().slice([0..b, 0..h, g - 1..g]) + initial.clone();
    let zeros = Tensor::zeros([b, h, 1, r, s], &inclusive.device());
    let before = if g == 1 {
        zeros
    } else {
        Tensor::cat(vec![zeros, inclusive.slice([0..b, 0..h, 0..g - 1])], 2)
    };
    (before + initial, total)
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::tensor::{Distribution, Tensor};

    use super::in_groups;
    use crate::types::WindowInputs;

    type F64 = NdArray<f64>;

    /// The grouping only bounds memory: groups of one or two chunks, with the linear state
    /// and the band's `W − 1` keys carried across group boundaries, give every output and the
    /// final state of one group of all (the public tests never reach the budget).
    #[test]
    fn groups_of_chunks_agree_with_one_group() {
        let device = Default::default();
        let normal = |shape: [usize; 4]| {
            Tensor::<F64, 4>::random(shape, Distribution::Normal(0.0, 0.7), &device)
        };
        let (b, h, t, d) = (2, 3, 100, 4);
        let inputs = WindowInputs {
            q: normal([b, h, t, d]),
            k: normal([b, h, t, d]),
            fq: normal([b, h, t, 6]).exp(),
            fk: normal([b, h, t, 6]).exp(),
            v: normal([b, h, t, 5]),
            factors: Tensor::from_floats([0.1, 0.3, 0.7], &device),
            key_padding: None,
            eps: 1e-6,
        };
        for window in [1, 7, 40] {
            let (all, state) = in_groups(inputs.clone(), window, 16, None, true, usize::MAX);
            let state = state.unwrap();
            for per_group in [1, 2] {
                let (y, got) = in_groups(inputs.clone(), window, 16, None, true, per_group);
                let got = got.unwrap();
                let what = format!("W={window}, {per_group} chunk(s) a group");
                let close = |a: Vec<f64>, b: Vec<f64>, part: &str| {
                    let worst = a
                        .iter()
                        .zip(&b)
                        .map(|(x, y)| (x - y).abs() / (1e-12 + 1e-10 * y.abs()))
                        .fold(0.0, f64::max);
                    assert!(
                        worst <= 1.0,
                        "{what}: {part} differs (worst ratio {worst:e})"
                    );
                };
                let flat = |x: Tensor<F64, 4>| x.into_data().to_vec::<f64>().unwrap();
                close(flat(y), flat(all.clone()), "output");
                close(flat(got.linear.s), flat(state.linear.s.clone()), "S");
            }
        }
    }
}
