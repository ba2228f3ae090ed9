//! One layer's attention on one batch, and the region of it that the measures read.

/// One layer's attention on one batch, as row-major slices of shape `[B, H, T, S]`.
#[derive(Clone, Copy, Debug)]
pub struct LayerAttention<'a> {
    /// `[B, H, T, S]` (S = T for self-attention).
    pub shape: [usize; 4],
    /// Softmax weights `a_ij`.
    pub teacher: &'a [f32],
    /// The linear map's normalised weights `â_ij` (None for a softmax layer).
    pub student: Option<&'a [f32]>,
    /// Raw `φ(q_i)·φ(k_j)` (None for softmax).
    pub kernel: Option<&'a [f32]>,
    /// `q_i·k_j/√d`.
    pub scores: &'a [f32],
    /// Valid entries are `j ≤ i`.
    pub causal: bool,
    /// Real tokens per batch row; query rows and keys at or past it are padding.
    pub lengths: Option<&'a [usize]>,
}

/// The valid region of one batch, after its slices and lengths were checked against its shape.
pub(super) struct Valid<'a> {
    shape: [usize; 4],
    causal: bool,
    lengths: Option<&'a [usize]>,
}

impl<'a> Valid<'a> {
    pub(super) fn check(batch: &LayerAttention<'a>, heads: usize) -> Result<Self, String> {
        let [b, h, t, s] = batch.shape;
        if h != heads {
            return Err(format!(
                "shape {:?} has {h} heads, the analyzer was made for {heads}",
                batch.shape
            ));
        }
        let n = b * h * t * s;
        let slices = [
            ("teacher", Some(batch.teacher)),
            ("student", batch.student),
            ("kernel", batch.kernel),
            ("scores", Some(batch.scores)),
        ];
        for (name, slice) in slices {
            if let Some(len) = slice.map(<[f32]>::len).filter(|&len| len != n) {
                return Err(format!(
                    "{name} has {len} values, shape [B, H, T, S] = {:?} needs {n}",
                    batch.shape
                ));
            }
        }
        if let Some(lengths) = batch.lengths {
            if lengths.len() != b {
                return Err(format!(
                    "lengths has {} entries, one per batch row (B = {b}) is needed",
                    lengths.len()
                ));
            }
            if let Some((row, &len)) = lengths.iter().enumerate().find(|(_, l)| **l > t.max(s)) {
                return Err(format!(
                    "lengths[{row}] = {len} is longer than the sequence ({})",
                    t.max(s)
                ));
            }
        }
        Ok(Self {
            shape: batch.shape,
            causal: batch.causal,
            lengths: batch.lengths,
        })
    }

    fn length(&self, b: usize) -> usize {
        self.lengths.map_or(usize::MAX, |l| l[b])
    }

    /// Valid query rows of batch row `b`: `0..rows(b)`.
    pub(super) fn rows(&self, b: usize) -> usize {
        self.length(b).min(self.shape[2])
    }

    /// The flat index of `(b, h, i, 0)` and the number of valid keys of that row (keys `0..n`).
    pub(super) fn keys(
        &self,
        b: usize,
        h: usize,
        i: usize,
        batch: &LayerAttention,
    ) -> (usize, usize) {
        let [_, h_n, t, s] = batch.shape;
        let mut n = self.length(b).min(s);
        if self.causal {
            n = n.min(i + 1);
        }
        (((b * h_n + h) * t + i) * s, n)
    }
}

/// Every valid entry must be finite and the weights non-negative: a NaN would silently poison
/// every mean, and a negative weight has no entropy.
pub(super) fn check_values(batch: &LayerAttention, valid: &Valid) -> Result<(), String> {
    let [b_n, h_n, _, _] = batch.shape;
    let named = [
        ("teacher", Some(batch.teacher), true),
        ("student", batch.student, true),
        ("kernel", batch.kernel, false),
        ("scores", Some(batch.scores), false),
    ];
    for (name, slice, weight) in named {
        let Some(slice) = slice else { continue };
        for b in 0..b_n {
            for h in 0..h_n {
                for i in 0..valid.rows(b) {
                    let (start, n) = valid.keys(b, h, i, batch);
                    if let Some(j) = slice[start..start + n]
                        .iter()
                        .position(|&v| !v.is_finite() || (weight && v < 0.0))
                    {
                        let v = slice[start + j];
                        return Err(format!(
                            "{name}[{b}, {h}, {i}, {j}] = {v} (valid entries must be finite{})",
                            if weight { " and non-negative" } else { "" }
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}
