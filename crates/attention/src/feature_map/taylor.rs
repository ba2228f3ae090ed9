use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData, backend::Backend};

/// Width of the Taylor features for inputs of width `d`.
pub fn feature_dim(d: usize, compressed: bool) -> usize {
    if compressed {
        1 + d + d * (d + 1) / 2
    } else {
        1 + d + d * d
    }
}

/// Second-order Taylor features of `exp(q·k/√d)` (Zhang et al. 2024 §3; HazyResearch/based
/// `TaylorExp`): `φ(x) = [1, x/d^{1/4}, vec(x xᵀ)/(√2·√d)]`, so that
/// `φ(q)·φ(k) = 1 + s + s²/2` with `s = q·k/√d`.
///
/// The compressed variant keeps the upper triangle of `x xᵀ`, with off-diagonal terms scaled by
/// √2 so the dot product is unchanged.
#[derive(Module, Clone, Debug)]
pub struct Taylor {
    pub head_dim: usize,
    pub compressed: bool,
}

impl Taylor {
    pub fn new(head_dim: usize, compressed: bool) -> Self {
        Self {
            head_dim,
            compressed,
        }
    }

    pub fn feature_dim(&self) -> usize {
        feature_dim(self.head_dim, self.compressed)
    }

    /// `φ(x)`; runs the backend's [`Kernels`](crate::kernels::Kernels) (fused on the CPU backend).
    pub fn forward<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, self.compressed)
    }

    /// The compressed features whatever `compressed` says (same `φ(q)·φ(k)`).
    pub fn forward_compressed<B: Backend>(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        crate::kernels::for_backend::<B>().taylor(x, true)
    }
}

/// The composed Taylor-2 map (the reference behind [`Taylor::forward`]).
pub(crate) fn composed<B: Backend>(x: Tensor<B, 4>, compressed: bool) -> Tensor<B, 4> {
    let [b, h, t, d] = x.dims();
    let device = x.device();
    let sqrt_d = (d as f64).sqrt();
    let outer = (x.clone().unsqueeze_dim::<5>(4) * x.clone().unsqueeze_dim::<5>(3)).reshape([
        b,
        h,
        t,
        d * d,
    ]); // [B, H, T, d·d], index i·d + j
    let second = if compressed {
        let mut indices = Vec::with_capacity(d * (d + 1) / 2);
        let mut scales = Vec::with_capacity(d * (d + 1) / 2);
        for i in 0..d {
            for j in i..d {
                indices.push((i * d + j) as i64);
                scales.push(if i == j {
                    1.0 / (std::f64::consts::SQRT_2 * sqrt_d)
                } else {
                    1.0 / sqrt_d
                });
            }
        }
        let n = indices.len();
        let indices = Tensor::<B, 1, Int>::from_data(
            TensorData::new(indices, [n]).convert::<B::IntElem>(),
            &device,
        );
        let scales = Tensor::<B, 4>::from_data(
            TensorData::new(scales, [1, 1, 1, n]).convert::<B::FloatElem>(),
            &device,
        );
        outer.select(3, indices) * scales
    } else {
        outer.div_scalar(std::f64::consts::SQRT_2 * sqrt_d)
    };
    let ones = Tensor::<B, 4>::ones([b, h, t, 1], &device);
    Tensor::cat(vec![ones, x.div_scalar(sqrt_d.sqrt()), second], 3)
}
