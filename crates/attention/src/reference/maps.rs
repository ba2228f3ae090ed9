//! The composed feature maps that have fused kernels (1+ELU, Hedgehog, Taylor-2), and the
//! per-head affine map that Hedgehog and T2R share. The maps' own docs (`feature_map/`) give
//! the equations and sources.

use burn::tensor::{Int, Tensor, TensorData, activation, backend::Backend};

use crate::types::HedgehogActivation;

/// `x: [B, H, T, d]`, `weight: [H_w, d, d']`, `bias: [H_w, 1, d']` → `xW + b: [B, H, T, d']`,
/// a shared `(W, b)` (`H_w = 1`) broadcast over heads.
pub(crate) fn affine<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 3>,
) -> Tensor<B, 4> {
    let [b, h, _, _] = x.dims();
    let [wh, d, out] = weight.dims();
    let heads = if wh == 1 { h } else { wh };
    let weight = weight.unsqueeze_dim::<4>(0).expand([b, heads, d, out]);
    let bias = bias.unsqueeze_dim::<4>(0); // [1, H_w, 1, d']
    x.matmul(weight) + bias
}

/// The composed 1+ELU map (the reference behind `EluPlusOne::forward`).
pub(crate) fn elu_plus_one<B: Backend>(x: Tensor<B, 4>) -> Tensor<B, 4> {
    activation::elu(x, 1.0).add_scalar(1.0)
}

/// The composed Hedgehog map (the reference behind `Hedgehog::forward`):
/// `[σ(xW + b), σ(−(xW + b))]`.
pub(crate) fn hedgehog<B: Backend>(
    x: Tensor<B, 4>,
    weight: Tensor<B, 3>,
    bias: Tensor<B, 3>,
    activation: HedgehogActivation,
) -> Tensor<B, 4> {
    let y = affine(x, weight, bias); // [B, H, T, d']
    match activation {
        HedgehogActivation::Exp => Tensor::cat(vec![y.clone().exp(), y.neg().exp()], 3),
        HedgehogActivation::SoftmaxSplit => Tensor::cat(
            vec![
                activation::softmax(y.clone(), 3),
                activation::softmax(y.neg(), 3),
            ],
            3,
        ),
        HedgehogActivation::SoftmaxJoint => activation::softmax(
            Tensor::cat(vec![y.clone().mul_scalar(2.0), y.mul_scalar(-2.0)], 3),
            3,
        ),
    }
}

/// Width of the Taylor features for inputs of width `d`.
pub(crate) fn taylor_feature_dim(d: usize, compressed: bool) -> usize {
    if compressed {
        1 + d + d * (d + 1) / 2
    } else {
        1 + d + d * d
    }
}

/// The composed Taylor-2 map (the reference behind `Taylor::forward`).
pub(crate) fn taylor<B: Backend>(x: Tensor<B, 4>, compressed: bool) -> Tensor<B, 4> {
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
