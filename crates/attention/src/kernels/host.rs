//! The CPU backend's tensors as `f32` slices and back, without copies where burn-ndarray
//! already holds a contiguous row-major array (the usual case; a strided view is copied once).

use std::borrow::Cow;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Shape, Tensor, TensorData, TensorMetadata, TensorPrimitive};
use burn_ndarray::{NdArray, NdArrayTensor};

/// The CPU backend the fused kernels are written for.
pub type Cpu = NdArray<f32>;

/// A float primitive's values, row-major.
pub fn values(tensor: &NdArrayTensor) -> Cow<'_, [f32]> {
    match tensor {
        NdArrayTensor::F32(storage) => {
            let view = storage.view();
            match view.to_slice() {
                Some(slice) => Cow::Borrowed(slice),
                None => Cow::Owned(view.iter().copied().collect()),
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
