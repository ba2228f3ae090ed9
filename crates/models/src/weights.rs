//! Weight IO through explicit name-mapping tables.
//!
//! Each model writes its mapping once, as a `map_weights` method that hands every parameter to a
//! [`WeightVisitor`] under its checkpoint name. The same table then loads (from HF safetensors or
//! our own converted checkpoints) and saves: [`SafetensorsLoader`] replaces each parameter with
//! the stored tensor after checking its shape, and reports every missing or unused key;
//! [`TensorCollector`] gathers the tensors to write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use safetensors::{Dtype, SafeTensors};

pub use crate::error::WeightError;

/// How a checkpoint stores a 2-D weight relative to ours (burn's `Linear` is `[in, out]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Same layout (GPT-2's `Conv1D` is `[in, out]`, embeddings, norms, biases).
    AsIs,
    /// Stored transposed: torch `nn.Linear` is `[out, in]`.
    Transposed,
}

/// Receives every parameter of a model under its checkpoint name.
pub trait WeightVisitor<B: Backend> {
    /// One parameter; returns it (possibly replaced).
    fn param<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<B, D>>,
        layout: Layout,
    ) -> Result<Param<Tensor<B, D>>, WeightError>;

    /// A constant tensor saved with the model (Performer's projection).
    fn constant<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, WeightError>;

    /// Several parameters stored as one tensor, concatenated along `axis` of the stored layout
    /// (GPT-2's fused `c_attn` holds q, k and v side by side).
    fn fused<const D: usize>(
        &mut self,
        name: &str,
        params: Vec<Param<Tensor<B, D>>>,
        axis: usize,
    ) -> Result<Vec<Param<Tensor<B, D>>>, WeightError>;
}

pub(crate) fn stored_dims<const D: usize>(dims: [usize; D], layout: Layout) -> Vec<usize> {
    let mut dims = dims.to_vec();
    if layout == Layout::Transposed && D == 2 {
        dims.swap(0, 1);
    }
    dims
}

/// A tensor read in its stored layout, in the model's (see [`laid_out`] for why a transposed
/// one is copied rather than kept as a view).
pub(crate) fn in_model_layout<B: Backend, const D: usize>(
    stored: Tensor<B, D>,
    layout: Layout,
) -> Tensor<B, D> {
    match layout {
        Layout::AsIs => stored,
        Layout::Transposed => laid_out(stored.transpose()),
    }
}

/// A loaded weight in a fresh row-major buffer. burn-ndarray's matmul copies its operands on
/// every call (its reshape copies even a row-major array); a row-major weight is copied as one
/// block, but a transposed (HF's and GGUF's `[out, in]` as the model's `[in, out]`) or
/// column-split (GPT-2's fused q, k, v) view is gathered element by element in strided order,
/// which was most of a SmolLM2-135M decoding step (README, "Decoding speed").
pub(crate) fn laid_out<B: Backend, const D: usize>(view: Tensor<B, D>) -> Tensor<B, D> {
    let device = view.device();
    Tensor::from_data(view.into_data(), &device)
}

pub(crate) fn replace<B: Backend, const D: usize>(
    param: Param<Tensor<B, D>>,
    value: Tensor<B, D>,
) -> Param<Tensor<B, D>> {
    Param::initialized(param.id, value.set_require_grad(param.is_require_grad()))
}

/// A stored tensor, converted to f32 only when the model asks for it (checkpoints also hold
/// integer buffers such as BERT's `position_ids`).
struct Stored {
    shape: Vec<usize>,
    dtype: Dtype,
    bytes: Vec<u8>,
}

/// Loads parameters from one or more safetensors files (sharded checkpoints list several).
pub struct SafetensorsLoader<B: Backend> {
    path: PathBuf,
    tensors: BTreeMap<String, Stored>,
    used: BTreeSet<String>,
    /// Prefixes tried in front of every name (HF heads save `transformer.`, `bert.`, ...).
    prefixes: Vec<String>,
    /// Stored names the model need not use (buffers such as GPT-2's `attn.bias` mask).
    ignorable_suffixes: Vec<String>,
    device: B::Device,
}

impl<B: Backend> SafetensorsLoader<B> {
    pub fn open(path: impl AsRef<Path>, device: &B::Device) -> Result<Self, WeightError> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|source| WeightError::Io {
            path: path.clone(),
            source,
        })?;
        let file = SafeTensors::deserialize(&bytes).map_err(|e| WeightError::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut tensors = BTreeMap::new();
        for (name, view) in file.tensors() {
            tensors.insert(
                name,
                Stored {
                    shape: view.shape().to_vec(),
                    dtype: view.dtype(),
                    bytes: view.data().to_vec(),
                },
            );
        }
        Ok(Self {
            path,
            tensors,
            used: BTreeSet::new(),
            prefixes: vec![String::new()],
            ignorable_suffixes: Vec::new(),
            device: device.clone(),
        })
    }

    /// Also accept names with this prefix (e.g. `"transformer."`).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        self.prefixes.push(prefix.to_string());
        self
    }

    /// Stored tensors whose names end so may stay unused.
    pub fn ignoring(mut self, suffix: &str) -> Self {
        self.ignorable_suffixes.push(suffix.to_string());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file holds `name` (under any accepted prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.resolve(name).is_some()
    }

    fn resolve(&self, name: &str) -> Option<String> {
        self.prefixes
            .iter()
            .map(|p| format!("{p}{name}"))
            .find(|full| self.tensors.contains_key(full))
    }

    fn take<const D: usize>(
        &mut self,
        name: &str,
        expected: Vec<usize>,
    ) -> Result<Tensor<B, D>, WeightError> {
        let full = self.resolve(name).ok_or_else(|| WeightError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
            expected: expected.clone(),
        })?;
        let stored = &self.tensors[&full];
        if stored.shape != expected {
            return Err(WeightError::ShapeMismatch {
                path: self.path.clone(),
                name: full,
                expected,
                found: stored.shape.clone(),
            });
        }
        let values = to_f32(&self.path, &full, stored.dtype, &stored.bytes)?;
        let tensor = Tensor::<B, D>::from_data(
            TensorData::new(values, stored.shape.clone()).convert::<B::FloatElem>(),
            &self.device,
        );
        self.used.insert(full);
        Ok(tensor)
    }

    /// Fails if a stored tensor was never asked for (beyond the ignorable buffers).
    pub fn finish(self) -> Result<(), WeightError> {
        let unused: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !self.used.contains(*k))
            .filter(|k| {
                !self
                    .ignorable_suffixes
                    .iter()
                    .any(|s| k.ends_with(s.as_str()))
            })
            .cloned()
            .collect();
        if unused.is_empty() {
            Ok(())
        } else {
            Err(WeightError::Unused {
                path: self.path,
                count: unused.len(),
                examples: unused.into_iter().take(8).collect(),
            })
        }
    }
}

fn to_f32(path: &Path, name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>, WeightError> {
    let pairs = |n: usize| bytes.chunks_exact(n);
    Ok(match dtype {
        Dtype::F32 => pairs(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => pairs(2)
            .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        // bf16 is cast to f32 on load: the CPU backends compute in f32.
        Dtype::BF16 => pairs(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect(),
        other => {
            return Err(WeightError::UnsupportedDtype {
                path: path.to_path_buf(),
                name: name.to_string(),
                dtype: format!("{other:?}"),
            });
        }
    })
}

impl<B: Backend> WeightVisitor<B> for SafetensorsLoader<B> {
    fn param<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<B, D>>,
        layout: Layout,
    ) -> Result<Param<Tensor<B, D>>, WeightError> {
        let expected = stored_dims(param.dims(), layout);
        let loaded = self.take::<D>(name, expected)?;
        Ok(replace(param, in_model_layout(loaded, layout)))
    }

    fn constant<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, WeightError> {
        self.take::<D>(name, tensor.dims().to_vec())
    }

    fn fused<const D: usize>(
        &mut self,
        name: &str,
        params: Vec<Param<Tensor<B, D>>>,
        axis: usize,
    ) -> Result<Vec<Param<Tensor<B, D>>>, WeightError> {
        let mut expected = params[0].dims().to_vec();
        let sizes: Vec<usize> = params.iter().map(|p| p.dims()[axis]).collect();
        expected[axis] = sizes.iter().sum();
        let loaded = self.take::<D>(name, expected)?;
        let parts = loaded.split_with_sizes(sizes, axis);
        Ok(params
            .into_iter()
            .zip(parts)
            .map(|(p, part)| replace(p, laid_out(part)))
            .collect())
    }
}

/// Collects a model's tensors under their checkpoint names, for saving.
#[derive(Default)]
pub struct TensorCollector {
    tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

impl TensorCollector {
    fn insert<B: Backend, const D: usize>(&mut self, name: &str, tensor: Tensor<B, D>) {
        let shape = tensor.dims().to_vec();
        let values = tensor
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 data converts to Vec<f32>");
        self.tensors.insert(name.to_string(), (shape, values));
    }

    /// Writes every collected tensor (f32) to `path`, with `metadata` in the header.
    pub fn write(
        &self,
        path: impl AsRef<Path>,
        metadata: BTreeMap<String, String>,
    ) -> Result<(), WeightError> {
        let path = path.as_ref();
        let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = Vec::new();
        let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(name, (shape, values))| {
                let raw = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                (name.clone(), shape.clone(), raw)
            })
            .collect();
        let mut views = views;
        for (name, shape, raw) in &bytes {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), raw)
                .map_err(|e| WeightError::Corrupt {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })?;
            views.push((name.clone(), view));
        }
        let serialized = safetensors::serialize(views, Some(metadata.into_iter().collect()))
            .map_err(|e| WeightError::Corrupt {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        crate::io::write_atomic(path, &serialized)
    }

    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.tensors.keys()
    }
}

impl<B: Backend> WeightVisitor<B> for TensorCollector {
    fn param<const D: usize>(
        &mut self,
        name: &str,
        param: Param<Tensor<B, D>>,
        layout: Layout,
    ) -> Result<Param<Tensor<B, D>>, WeightError> {
        let value = param.val();
        let stored = if layout == Layout::Transposed {
            value.transpose()
        } else {
            value
        };
        self.insert(name, stored);
        Ok(param)
    }

    fn constant<const D: usize>(
        &mut self,
        name: &str,
        tensor: Tensor<B, D>,
    ) -> Result<Tensor<B, D>, WeightError> {
        self.insert(name, tensor.clone());
        Ok(tensor)
    }

    fn fused<const D: usize>(
        &mut self,
        name: &str,
        params: Vec<Param<Tensor<B, D>>>,
        axis: usize,
    ) -> Result<Vec<Param<Tensor<B, D>>>, WeightError> {
        let joined = Tensor::cat(params.iter().map(|p| p.val()).collect(), axis);
        self.insert(name, joined);
        Ok(params)
    }
}
