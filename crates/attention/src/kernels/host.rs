//! The CPU backend's tensors as `f32` slices and back, without copies where burn-ndarray
//! already holds a contiguous row-major array (the usual case; a strided view is copied once).

use std::borrow::Cow;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use burn_autodiff::Autodiff;
use burn_ndarray::{NdArray, NdArrayTensor};

/// The CPU backend the fused kernels are written for.
pub type Cpu = NdArray<f32>;

/// The CPU backend with gradients.
pub type CpuAutodiff = Autodiff<Cpu>;

/// A float primitive's values, row-major.
pub fn values(tensor: &NdArrayTensor) -> Cow<'_, [f32]> {
    match tensor {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            match view.to_slice() {
                Some(slice) => Cow::Borrowed(slice),
                None => {
                    // A row at a time when the last axis is contiguous (the
                    // `[B, T, H, d] → [B, H, T, d]` head split of every attention layer).
                    let mut out = Vec::with_capacity(view.len());
                    if view.ndim() == 0 {
                        out.extend(view.iter().copied());
                    }
                    for row in view.rows() {
                        match row.to_slice() {
                            Some(slice) => out.extend_from_slice(slice),
                            None => out.extend(row.iter().copied()),
                        }
                    }
                    Cow::Owned(out)
                }
            }
        }
        other => Cow::Owned(
            Tensor::<Cpu, 1>::from_primitive(TensorPrimitive::Float(other.clone()))
                .into_data()
                .convert::<f32>()
                .into_vec::<f32>()
                .expect("converted to f32"),
        ),
    }
}

/// A float primitive's values as an owned `Vec`, without a copy when the primitive holds the
/// only reference to a contiguous array (the optimiser's parameters and moments).
pub fn into_vec(tensor: NdArrayTensor) -> Vec<f32> {
    if let NdArrayTensor::F32(storage) = tensor {
        let array = storage.into_owned().into_owned(); // copies only a shared or borrowed array
        let len = array.len();
        if array.is_standard_layout() {
            let (values, offset) = array.into_raw_vec_and_offset();
            if offset.unwrap_or(0) == 0 && values.len() == len {
                return values;
            }
            return values[offset.unwrap_or(0)..offset.unwrap_or(0) + len].to_vec();
        }
        return array.iter().copied().collect();
    }
    values(&tensor).into_owned()
}

/// The dims of a primitive.
pub fn dims(tensor: &NdArrayTensor) -> Vec<usize> {
    tensor.shape().to_vec()
}

/// A primitive holding `values` (moved, not copied) with `shape`.
#[track_caller]
pub fn primitive(values: Vec<f32>, shape: &[usize]) -> NdArrayTensor {
    assert_eq!(
        values.len(),
        shape.iter().product::<usize>(),
        "kernel output of {} values for shape {shape:?}",
        values.len()
    );
    NdArrayTensor::from_data(TensorData::new(values, Shape::from(shape.to_vec())))
}

/// A float tensor's primitive.
pub fn float<const D: usize>(tensor: Tensor<Cpu, D>) -> NdArrayTensor {
    tensor.into_primitive().tensor()
}

/// A float tensor from its primitive.
pub fn tensor<const D: usize>(primitive: NdArrayTensor) -> Tensor<Cpu, D> {
    Tensor::from_primitive(TensorPrimitive::Float(primitive))
}

/// A `[B, T]` padding mask (true = padding) as one keep flag per position, or `None` when no
/// position is padded (the kernels then skip the masking work).
pub fn keep_flags<B: Backend>(padding: Option<&Tensor<B, 2, Bool>>) -> Option<Vec<bool>> {
    let padding = padding?;
    let flags = padding
        .to_data()
        .convert::<bool>()
        .into_vec::<bool>()
        .expect("a bool mask");
    if flags.iter().any(|&padded| padded) {
        Some(flags.into_iter().map(|padded| !padded).collect())
    } else {
        None
    }
}
