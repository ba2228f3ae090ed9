//! LoRA on a whole model: attaching adapters to every attention layer, merging them back into
//! the weights, and listing their parameters for training. The adapter itself (its config, the
//! low-rank update and its init) is in `lora_adapter.rs`; its names are re-exported here.

use burn::module::ParamId;
use burn::tensor::backend::Backend;

use crate::common::AttentionLayers;
use crate::error::ModelError;
pub use crate::lora_adapter::{Lora, LoraAdapters, LoraConfig, LoraTarget};

/// Attaches fresh adapters to every attention layer of `model` (the outputs do not change).
pub fn attach_lora<B: Backend, M: AttentionLayers<B>>(
    model: M,
    config: &LoraConfig,
    device: &B::Device,
) -> Result<M, ModelError> {
    config.validate()?;
    model.map_attention_layers(&mut |layer| layer.attach_lora(config, device))
}

/// Folds every layer's adapters into its projections and removes them.
pub fn merge_lora<B: Backend, M: AttentionLayers<B>>(model: M) -> M {
    model
        .map_attention_layers(&mut |layer| Ok(layer.merge_lora()))
        .expect("merging LoRA adapters has no failure case")
}

/// The ids of every adapter parameter (`A` and `B` of each adapted projection): train only
/// these with `GradientsParams::from_params` to keep the base model frozen.
pub fn lora_param_ids<B: Backend, M: AttentionLayers<B>>(model: &M) -> Vec<ParamId> {
    model
        .attention_layers()
        .into_iter()
        .filter_map(|layer| layer.lora.as_ref())
        .flat_map(|adapters| LoraTarget::ALL.map(|target| adapters.get(target)))
        .flatten()
        .flat_map(Lora::param_ids)
        .collect()
}
