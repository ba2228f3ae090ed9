//! Fused softmax attention on `f32` slices, in the FlashAttention-2 scheme (Dao 2023): query
//! blocks stream over key blocks with an online softmax, so the `T × T` weights never exist;
//! the backward recomputes them block by block from the saved row log-sum-exp `L` (`output`).
//! `weights` forms the weights themselves when a caller wants them.
//!
//! Forward per row `i`: `y_i = Σ_j softmax_j(s_ij) m_ij v_j / (1 − p)` with `s = q·k/√d`,
//! masked entries (`j > i + Tk − Tq` when causal, padded keys) left out, and `m_ij` the
//! dropout keep-mask (all ones without dropout). Backward, with `P = exp(S − L)`,
//! `D_i = gy_i·y_i`, `dP = (gY Vᵀ) ⊙ M / (1 − p)`, `dS = P ⊙ (dP − D)`:
//! `gV = (P ⊙ M / (1 − p))ᵀ gY`, `gQ = dS K / √d`, `gK = dSᵀ Q / √d`.
//!
//! Rows with no visible key (only a padded query can have none) give 0, and so do padded
//! queries when `Tq == Tk`, as in the composed reference.

pub mod output;
pub mod weights;

/// Sizes: `q: [B, H, Tq, d]`, `k: [B, H, Tk, d]`, `v: [B, H, Tk, dv]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub batch: usize,
    pub heads: usize,
    pub query_len: usize,
    pub key_len: usize,
    pub head_dim: usize,
    pub value_dim: usize,
}

/// Dropout on the weights: each weight kept with probability `1 − p` and scaled by
/// `1 / (1 − p)`; the keep-mask is a hash of `(seed, batch·head, i, j)`, so the backward
/// regenerates it instead of storing it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    pub prob: f32,
    pub seed: u64,
}

/// Inputs of one call, row-major.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    pub causal: bool,
    /// `[B, Tk]`, true = a real key; `None` = nothing padded.
    pub keep: Option<&'a [bool]>,
    pub dropout: Option<Dropout>,
}

impl Inputs<'_> {
    fn scale(&self, dims: &Dims) -> f32 {
        1.0 / (dims.head_dim as f32).sqrt()
    }

    /// One (batch, head) pair's `q: [Tq, d]`, `k: [Tk, d]` and `v: [Tk, dv]`.
    fn head(&self, dims: &Dims, pair: usize) -> (&[f32], &[f32], &[f32]) {
        let (tq, tk, d, dv) = (dims.query_len, dims.key_len, dims.head_dim, dims.value_dim);
        (
            &self.q[pair * tq * d..(pair + 1) * tq * d],
            &self.k[pair * tk * d..(pair + 1) * tk * d],
            &self.v[pair * tk * dv..(pair + 1) * tk * dv],
        )
    }

    /// The last key query `i` may see (exclusive), before padding.
    fn key_end(&self, dims: &Dims, i: usize) -> usize {
        if self.causal {
            (i + 1 + dims.key_len)
                .saturating_sub(dims.query_len)
                .min(dims.key_len)
        } else {
            dims.key_len
        }
    }

    /// Whether query row `i` of batch `b` is a padded query whose output is zeroed.
    fn zero_row(&self, dims: &Dims, b: usize, i: usize) -> bool {
        dims.query_len == dims.key_len && self.keep.is_some_and(|keep| !keep[b * dims.key_len + i])
    }
}

/// murmur3's 32-bit finaliser: a cheap, well-mixed hash that vectorises.
#[inline(always)]
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

impl Dropout {
    /// The hash key of row `row` (a global `batch·head·Tq + i` index).
    fn row_key(&self, row: usize) -> u32 {
        mix((self.seed as u32) ^ mix((self.seed >> 32) as u32 ^ row as u32))
    }

    /// `x_j ← x_j · m_j / (1 − p)` over a block of keys starting at `first`.
    fn apply(&self, x: &mut [f32], row_key: u32, first: usize) {
        let threshold = (self.prob as f64 * (1u64 << 24) as f64) as u32;
        let scale = 1.0 / (1.0 - self.prob);
        for (j, value) in x.iter_mut().enumerate() {
            let h = mix(row_key ^ ((first + j) as u32).wrapping_mul(0x9e37_79b9));
            *value *= if (h >> 8) >= threshold { scale } else { 0.0 };
        }
    }
}

/// Sets masked scores to −∞ in a `rows × cols` block of scores for queries `i0..` and keys
/// `j0..` (causal limit and padded keys).
fn mask_block(
    scores: &mut [f32],
    cols: usize,
    inputs: &Inputs<'_>,
    dims: &Dims,
    b: usize,
    i0: usize,
    j0: usize,
) {
    for (r, row) in scores.chunks_mut(cols).enumerate() {
        let end = inputs.key_end(dims, i0 + r).saturating_sub(j0).min(cols);
        row[end..].fill(f32::NEG_INFINITY);
        if let Some(keep) = inputs.keep {
            let keep = &keep[b * dims.key_len + j0..b * dims.key_len + j0 + cols];
            for (value, &kept) in row[..end].iter_mut().zip(keep) {
                if !kept {
                    *value = f32::NEG_INFINITY;
                }
            }
        }
    }
}
