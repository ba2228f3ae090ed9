//! Stages that train a subset of the parameters (distillation, `feature_maps`, LoRA): which
//! ones, untracking the rest for the stage, and keeping only their gradients.

use std::collections::HashSet;

use burn::module::{ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_models::AttentionLayers;

use crate::checkpoint::param_order;
use crate::spec::Trainable;

/// Moves the gradients of the parameters in `keep` from `grads` to a new set.
pub(super) struct KeepGrads<'a> {
    pub keep: &'a HashSet<ParamId>,
    pub from: &'a mut GradientsParams,
    pub to: GradientsParams,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for KeepGrads<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if self.keep.contains(&param.id)
            && let Some(grad) = self.from.remove::<B::InnerBackend, D>(param.id)
        {
            self.to.register::<B::InnerBackend, D>(param.id, grad);
        }
    }
}

/// Sets which parameters are tracked by autodiff: those in `keep`, or all of them for `None`.
pub(super) struct RequireGrad<'a> {
    pub keep: Option<&'a HashSet<ParamId>>,
}

impl<B: AutodiffBackend> ModuleMapper<B> for RequireGrad<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<B, D>>) -> Param<Tensor<B, D>> {
        let (id, tensor, mapper) = param.consume();
        let tracked = self.keep.is_none_or(|keep| keep.contains(&id));
        Param::from_mapped_value(id, tensor.set_require_grad(tracked), mapper)
    }
}

/// The parameters a stage trains, when not all of them.
pub(super) fn trained_subset<B: AutodiffBackend, M: AttentionLayers<B>>(
    model: &M,
    distill: bool,
    trainable: &Trainable,
) -> Option<HashSet<ParamId>> {
    let layers = model.attention_layers();
    match (distill, trainable) {
        (true, _) | (false, Trainable::FeatureMaps) => Some(
            layers
                .iter()
                .filter_map(|layer| layer.linear.as_ref())
                .flat_map(|linear| param_order::<B, _>(linear))
                .collect(),
        ),
        (false, Trainable::Lora(_)) => Some(
            layers
                .iter()
                .filter_map(|layer| layer.lora.as_ref())
                .flat_map(|lora| param_order::<B, _>(lora))
                .collect(),
        ),
        (false, Trainable::All) => None,
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;

    use super::*;

    type B = burn::backend::Autodiff<burn::backend::NdArray>;

    #[test]
    fn require_grad_tracks_only_the_kept_parameters_then_all_again() {
        let device = Default::default();
        let model = burn::nn::LinearConfig::new(3, 2).init::<B>(&device);
        let keep: HashSet<ParamId> = [model.weight.id].into();
        let frozen = model.map(&mut RequireGrad { keep: Some(&keep) });
        assert!(frozen.weight.val().is_require_grad());
        let bias = |m: &burn::nn::Linear<B>| m.bias.as_ref().expect("bias").val();
        assert!(!bias(&frozen).is_require_grad());
        let restored = frozen.map(&mut RequireGrad { keep: None });
        assert!(restored.weight.val().is_require_grad());
        assert!(bias(&restored).is_require_grad());
    }
}
