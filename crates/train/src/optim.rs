//! The optimiser of every stage: AdamW with per-parameter gradient clipping, as burn's
//! `AdamW` and `GradientClipping::Norm` define them, stepped by the fused in-place kernel of
//! `hedgehog_attention::kernels::adamw_step` on the CPU backend (one pass a parameter instead
//! of a dozen composed ops, each allocating a tensor of the parameter's size) and by burn's own
//! `AdamW` elsewhere. Its state is burn's `AdamWState`, so checkpoints keep their format.

use burn::grad_clipping::GradientClipping;
use burn::optim::LearningRate;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, SimpleOptimizer};
use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use hedgehog_attention::kernels::{self, AdamWInputs, AdamWStep};

use crate::spec::{OptimizerSpec, StageSpec};

/// ε of every stage's AdamW.
const EPSILON: f32 = 1e-8;

/// AdamW (burn's update and state) with the fused CPU step.
#[derive(Clone)]
pub struct FusedAdamW {
    beta1: f32,
    beta2: f32,
    weight_decay: f32,
    clip_norm: Option<f32>,
    /// The same optimiser composed, for backends without the fused kernel.
    composed: AdamW,
}

impl FusedAdamW {
    /// The stage's optimiser.
    pub fn of_stage(stage: &StageSpec) -> Self {
        let OptimizerSpec::Adamw {
            weight_decay,
            beta1,
            beta2,
            ..
        } = stage.optimizer;
        Self {
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            weight_decay: weight_decay as f32,
            clip_norm: stage.clip.map(|c| c as f32),
            composed: AdamWConfig::new()
                .with_beta_1(beta1 as f32)
                .with_beta_2(beta2 as f32)
                .with_epsilon(EPSILON)
                .with_weight_decay(weight_decay as f32)
                .build(),
        }
    }

    /// Wrapped in burn's adaptor, which walks the model's parameters and keeps the records.
    pub fn init<B, M>(self) -> OptimizerAdaptor<Self, M, B>
    where
        B: burn::tensor::backend::AutodiffBackend,
        M: burn::module::AutodiffModule<B>,
    {
        OptimizerAdaptor::from(self)
    }
}

impl<B: Backend> SimpleOptimizer<B> for FusedAdamW {
    type State<const D: usize> = AdamWState<B, D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<B, D>,
        grad: Tensor<B, D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<B, D>, Option<Self::State<D>>) {
        let time = state.as_ref().map_or(0, |s| s.momentum.time) + 1;
        let inputs = AdamWInputs {
            param: tensor,
            grad,
            moments: state.map(|s| (s.momentum.moment_1, s.momentum.moment_2)),
        };
        let step = AdamWStep {
            lr,
            beta1: self.beta1,
            beta2: self.beta2,
            epsilon: EPSILON,
            weight_decay: self.weight_decay,
            time: time as i32,
            clip_norm: self.clip_norm,
        };
        match kernels::adamw_step(inputs, step) {
            Ok((param, m, v)) => (
                param,
                Some(AdamWState::new(AdaptiveMomentumState::new(time, m, v))),
            ),
            Err(inputs) => {
                let grad = match self.clip_norm {
                    Some(clip) => GradientClipping::Norm(clip).clip_gradient(inputs.grad),
                    None => inputs.grad,
                };
                let state = inputs
                    .moments
                    .map(|(m, v)| AdamWState::new(AdaptiveMomentumState::new(time - 1, m, v)));
                self.composed.step(lr, inputs.param, grad, state)
            }
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &B::Device) -> Self::State<D> {
        <AdamW as SimpleOptimizer<B>>::to_device(state, device)
    }
}

#[cfg(test)]
mod tests {
    use burn::backend::NdArray;
    use burn::optim::SimpleOptimizer;
    use burn::tensor::{Distribution, Tensor};

    use super::*;

    type Cpu = NdArray<f32>;

    /// The fused step against burn's own AdamW and clipping, over three steps.
    #[test]
    fn fused_steps_match_burns_adamw_with_clipping() {
        let device = Default::default();
        let stage: StageSpec = serde_saphyr::from_str(
            "{kind: train, steps: 3, optimizer: {kind: adamw, lr: 0.01, weight_decay: 0.1, beta1: 0.9, beta2: 0.95}, clip: 0.5}",
        )
        .unwrap();
        let fused = FusedAdamW::of_stage(&stage);
        let (mut p_fused, mut p_reference) = {
            let p = Tensor::<Cpu, 2>::random([37, 129], Distribution::Normal(0.0, 1.0), &device);
            (p.clone(), p)
        };
        let (mut s_fused, mut s_reference) = (None, None);
        for step in 0..3 {
            let grad = Tensor::<Cpu, 2>::random([37, 129], Distribution::Normal(0.0, 0.1), &device)
                .mul_scalar(step as f64 + 1.0);
            let lr = 0.01 / (step as f64 + 1.0);
            (p_fused, s_fused) = fused.step(lr, p_fused, grad.clone(), s_fused);
            let clipped = GradientClipping::Norm(0.5).clip_gradient(grad);
            (p_reference, s_reference) = fused.composed.step(lr, p_reference, clipped, s_reference);
        }
        let values = |t: &Tensor<Cpu, 2>| t.to_data().to_vec::<f32>().unwrap();
        let (a, b) = (values(&p_fused), values(&p_reference));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / (1e-6 + 1e-5 * y.abs()))
            .fold(0.0f32, f32::max);
        assert!(worst <= 1.0, "parameters differ (worst ratio {worst})");
        let (sf, sr) = (s_fused.unwrap().momentum, s_reference.unwrap().momentum);
        assert_eq!(sf.time, 3);
        assert_eq!(sr.time, 3);
        for (x, y) in values(&sf.moment_2).iter().zip(values(&sr.moment_2)) {
            assert!(
                (x - y).abs() <= 1e-7 + 1e-5 * y.abs(),
                "second moments differ"
            );
        }
    }
}
