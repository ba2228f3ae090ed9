//! The distillation objective of a `distill` stage, from the attention every task captures:
//! `Σ weight × loss` over the stage's `loss:` (method.md §3 for the weights' cross-entropy,
//! LoLCATs for the outputs' squared error), each loss averaged over query rows (padding rows
//! dropped), heads and layers, and what it is made of, per component and per layer, for the
//! logs.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Tensor};
use hedgehog_attention::distill::{self, Reduction, RowLoss};
use hedgehog_models::{AttentionCapture, AttentionMode};

use super::to_f32;
use crate::error::RunError;
use crate::spec::{DistillComponent, DistillLoss};
use crate::summary::LayerLosses;

/// Every layer's attention on a training batch, the layers teacher-forced, and which query
/// rows are padding (`[B, T]`, true = padding; `None` when nothing is padded).
pub struct DistillBatch<B: Backend> {
    pub layers: Vec<AttentionCapture<B>>,
    pub query_padding: Option<Tensor<B, 2, Bool>>,
}

/// The mode a task runs its model in for `loss`: outputs are captured only when weighed, the
/// students' weights only when a weight loss is.
pub fn distill_mode(loss: &DistillLoss) -> AttentionMode {
    match (loss.needs_outputs(), loss.needs_weights()) {
        (true, true) => AttentionMode::DistillOutputs,
        (true, false) => AttentionMode::DistillOutputsOnly,
        (false, _) => AttentionMode::Distill,
    }
}

/// What one batch's distillation loss is made of, read back from the device.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DistillParts {
    /// Each weighed component's mean over layers and heads (unweighted), by name.
    pub components: BTreeMap<String, f64>,
    pub layers: LayerLosses,
}

impl DistillParts {
    /// `self + weight × other`, entry by entry (micro-batches and device shards).
    pub fn add_scaled(mut self, other: &Self, weight: f64) -> Self {
        let add = |into: &mut Vec<f64>, from: &[f64]| {
            into.iter_mut()
                .zip(from)
                .for_each(|(a, b)| *a += weight * b);
        };
        for (name, value) in &other.components {
            *self.components.entry(name.clone()).or_default() += weight * value;
        }
        if self.layers.layers.is_empty() {
            self.layers.layers = other.layers.layers.clone();
            self.layers.loss = vec![0.0; other.layers.loss.len()];
        }
        add(&mut self.layers.loss, &other.layers.loss);
        for (name, values) in &other.layers.components {
            let into = self
                .layers
                .components
                .entry(name.clone())
                .or_insert_with(|| vec![0.0; values.len()]);
            add(into, values);
        }
        self
    }

    /// Every number, in a fixed order (components and layers by name): what the ranks of a
    /// distributed run sum.
    pub(crate) fn numbers_mut(&mut self) -> impl Iterator<Item = &mut f64> {
        self.components
            .values_mut()
            .chain(self.layers.loss.iter_mut())
            .chain(self.layers.components.values_mut().flatten())
    }

    /// Every entry divided by `divisor` (the mean over micro-batches).
    pub fn divided(mut self, divisor: f64) -> Self {
        self.components.values_mut().for_each(|v| *v /= divisor);
        self.layers.loss.iter_mut().for_each(|v| *v /= divisor);
        for values in self.layers.components.values_mut() {
            values.iter_mut().for_each(|v| *v /= divisor);
        }
        self
    }
}

/// The scalar a distill step minimises, and its parts.
pub struct DistillValue<B: Backend> {
    pub total: Tensor<B, 1>,
    pub parts: DistillParts,
}

/// `Σ weight × component` over `loss`'s weighed components, each averaged over the layers that
/// have a linear student and their heads. With the default `loss` (`weight_ce: 1`) the total
/// is bit-identical to the soft cross-entropy alone: `x × 1` is exact and nothing is added.
pub fn distillation_loss<B: Backend>(
    batch: DistillBatch<B>,
    loss: &DistillLoss,
) -> Result<DistillValue<B>, RunError> {
    let padding = batch.query_padding.as_ref();
    let students: Vec<Student<B>> = batch
        .layers
        .into_iter()
        .enumerate()
        .filter(|(_, capture)| capture.student.is_some() || capture.student_output.is_some())
        .map(|(layer, capture)| Student {
            layer,
            weights: capture.student.map(|student| (capture.teacher, student)),
            outputs: capture.teacher_output.zip(capture.student_output),
        })
        .collect();
    if students.is_empty() {
        return Err(RunError::Config(
            "distillation needs at least one linear-attention layer".into(),
        ));
    }
    let mut parts = DistillParts {
        layers: LayerLosses {
            layers: students.iter().map(|s| s.layer).collect(),
            loss: vec![0.0; students.len()],
            components: BTreeMap::new(),
        },
        ..DistillParts::default()
    };
    let mut total: Option<Tensor<B, 1>> = None;
    for (component, weight) in loss.components() {
        let (mean, table) = component_loss(component, &students, padding)?;
        let per_layer: Vec<f64> = to_f32(table.detach().mean_dim(1))?
            .into_iter()
            .map(f64::from)
            .collect();
        for (sum, value) in parts.layers.loss.iter_mut().zip(&per_layer) {
            *sum += weight * value;
        }
        let name = component.name().to_string();
        parts.components.insert(name.clone(), mean_value(&mean)?);
        parts.layers.components.insert(name, per_layer);
        let term = mean.mul_scalar(weight);
        total = Some(match total {
            None => term,
            Some(sum) => sum + term,
        });
    }
    let total = total.ok_or_else(|| {
        RunError::Config("distillation with every loss weight 0: nothing to minimise".into())
    })?;
    Ok(DistillValue { total, parts })
}

/// A layer with a linear student: its index in the model and, when captured, its (teacher,
/// student) weights and outputs.
struct Student<B: Backend> {
    layer: usize,
    weights: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
    outputs: Option<(Tensor<B, 4>, Tensor<B, 4>)>,
}

/// One component's mean over layers and heads and its `[L, H]` table.
fn component_loss<B: Backend>(
    component: DistillComponent,
    students: &[Student<B>],
    padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<(Tensor<B, 1>, Tensor<B, 2>), RunError> {
    // Every student's (teacher, student) pair of what `component` weighs, or the first layer
    // that did not capture it, named with the mode that does.
    type Pairs<B> = Vec<(Tensor<B, 4>, Tensor<B, 4>)>;
    let captured = |what: &str, mode: &str, pair: fn(&Student<B>) -> &Option<_>| {
        students
            .iter()
            .map(|s| {
                pair(s).clone().ok_or_else(|| {
                    RunError::Config(format!(
                        "layer {} captured no {what} for {}; run the model in {mode}",
                        s.layer,
                        component.name()
                    ))
                })
            })
            .collect::<Result<Pairs<B>, _>>()
    };
    let weights = || {
        captured(
            "student weights",
            "AttentionMode::Distill or DistillOutputs",
            |s| &s.weights,
        )
    };
    Ok(match component {
        DistillComponent::WeightCe => distill::layerwise_loss(
            weights()?,
            RowLoss::SoftCrossEntropy,
            Reduction::Mean,
            padding,
        )?,
        DistillComponent::WeightKl => {
            distill::layerwise_loss(weights()?, RowLoss::Kl, Reduction::Mean, padding)?
        }
        DistillComponent::OutputMse => {
            let outputs = captured("attention outputs", "AttentionMode::DistillOutputs", |s| {
                &s.outputs
            })?;
            distill::layerwise_output_loss(outputs, Reduction::Mean, padding)?
        }
        DistillComponent::LogitKl | DistillComponent::Lm => {
            return Err(RunError::Config(format!(
                "{} weighs next-token distributions, not a layer's attention: it belongs to \
                 a finetune stage's logit_distillation, not a distill stage's loss",
                component.name()
            )));
        }
    })
}

fn mean_value<B: Backend>(mean: &Tensor<B, 1>) -> Result<f64, RunError> {
    Ok(f64::from(to_f32(mean.clone().detach())?[0]))
}

#[cfg(test)]
mod tests {
    use burn::backend::{Autodiff, NdArray};
    use burn::tensor::{TensorData, activation};
    use rand::{Rng, SeedableRng};

    use super::*;

    type Ad = Autodiff<NdArray<f32>>;
    const BATCH: usize = 2;
    const HEADS: usize = 3;
    const LEN: usize = 5;
    const DV: usize = 4;

    /// Uniform `[0, 1)` values from `seed`, drawn on the host: burn's RNG is global to the
    /// process and other tests draw from it concurrently.
    fn uniform(shape: [usize; 4], seed: u64) -> Tensor<Ad, 4> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let values: Vec<f32> = (0..shape.iter().product())
            .map(|_| rng.random::<f32>())
            .collect();
        Tensor::from_data(TensorData::new(values, shape), &Default::default())
    }

    /// Three layers, the first softmax (no student); the students' weights and outputs come
    /// from `logits` and `values`, so gradients can be compared.
    fn fixture(logits: &Tensor<Ad, 4>, values: &Tensor<Ad, 4>) -> DistillBatch<Ad> {
        let layers = (0..3u64)
            .map(|layer| {
                let teacher =
                    activation::softmax(uniform([BATCH, HEADS, LEN, LEN], layer) * 4.0, 3);
                let linear = layer > 0;
                let offset = layer as f64;
                AttentionCapture {
                    scores: teacher.clone(),
                    kernel: None,
                    student: linear.then(|| activation::softmax(logits.clone() + offset, 3)),
                    teacher_output: Some(uniform([BATCH, HEADS, LEN, DV], 10 + layer)),
                    student_output: linear.then(|| values.clone() * (1.0 + offset)),
                    teacher,
                }
            })
            .collect();
        // The second example's last two query rows are padding.
        let padding: Vec<bool> = (0..BATCH * LEN).map(|i| i >= LEN && i % LEN >= 3).collect();
        DistillBatch {
            layers,
            query_padding: Some(Tensor::from_data(
                TensorData::new(padding, [BATCH, LEN]),
                &Default::default(),
            )),
        }
    }

    /// The error `distillation_loss` gives for `batch` and `loss` (it must fail).
    fn error_of(batch: DistillBatch<Ad>, loss: &DistillLoss) -> String {
        match distillation_loss(batch, loss) {
            Ok(_) => panic!("expected an error for {loss:?}"),
            Err(err) => err.to_string(),
        }
    }

    fn leaves() -> (Tensor<Ad, 4>, Tensor<Ad, 4>) {
        (
            uniform([BATCH, HEADS, LEN, LEN], 20).require_grad(),
            uniform([BATCH, HEADS, LEN, DV], 21).require_grad(),
        )
    }

    fn bits<const D: usize>(tensor: Tensor<impl Backend, D>) -> Vec<u32> {
        to_f32(tensor)
            .unwrap()
            .into_iter()
            .map(f32::to_bits)
            .collect()
    }

    /// The function `distill` stages minimised before `loss:` existed.
    fn soft_cross_entropy_alone(batch: DistillBatch<Ad>) -> Tensor<Ad, 1> {
        let pairs: Vec<_> = batch
            .layers
            .into_iter()
            .filter_map(|c| c.student.map(|student| (c.teacher, student)))
            .collect();
        let padding = batch.query_padding.as_ref();
        distill::layerwise_loss(pairs, RowLoss::SoftCrossEntropy, Reduction::Mean, padding)
            .unwrap()
            .0
    }

    #[test]
    fn the_default_loss_is_bit_identical_to_the_soft_cross_entropy_alone() {
        let (logits, values) = leaves();
        let old = soft_cross_entropy_alone(fixture(&logits, &values));
        let old_grad = logits.grad(&old.backward()).unwrap();
        let (logits, values) = leaves();
        let new = distillation_loss(fixture(&logits, &values), &DistillLoss::default()).unwrap();
        assert_eq!(bits(new.total.clone()), bits(old.clone()), "the loss");
        let new_grad = logits.grad(&new.total.backward()).unwrap();
        assert_eq!(bits(new_grad), bits(old_grad), "its gradient");
        assert_eq!(
            new.parts.layers.layers,
            vec![1, 2],
            "softmax layers have no entry"
        );
        assert_eq!(new.parts.components.len(), 1);
        let ce = new.parts.components["weight_ce"];
        assert_eq!(ce.to_bits(), f64::from(to_f32(old).unwrap()[0]).to_bits());
    }

    #[test]
    fn the_total_is_the_weighted_sum_of_its_components() {
        let (logits, values) = leaves();
        let loss = DistillLoss {
            weight_ce: 0.5,
            weight_kl: 2.0,
            output_mse: 1000.0,
        };
        let value = distillation_loss(fixture(&logits, &values), &loss).unwrap();
        let total = f64::from(to_f32(value.total).unwrap()[0]);
        let parts = &value.parts;
        let weighted = 0.5 * parts.components["weight_ce"]
            + 2.0 * parts.components["weight_kl"]
            + 1000.0 * parts.components["output_mse"];
        assert!(
            (total - weighted).abs() <= 1e-5 * total,
            "{total} vs {weighted}"
        );
        let per_layer = &parts.layers.loss;
        let mean = per_layer.iter().sum::<f64>() / per_layer.len() as f64;
        assert!((total - mean).abs() <= 1e-5 * total, "layer mean {mean}");
        // The student's outputs of layer 2 are twice layer 1's: a larger squared error there.
        let mse = &parts.layers.components["output_mse"];
        assert_eq!(mse.len(), 2);
        assert!(mse[1] > mse[0], "{mse:?}");
        let kl = parts.components["weight_kl"];
        assert!(
            kl >= 0.0 && kl < parts.components["weight_ce"],
            "KL ≤ cross-entropy"
        );
    }

    #[test]
    fn missing_outputs_and_missing_students_are_clear_errors() {
        let (logits, values) = leaves();
        let mut batch = fixture(&logits, &values);
        batch.layers[2].student_output = None;
        let loss = DistillLoss {
            output_mse: 1.0,
            ..DistillLoss::default()
        };
        let err = error_of(batch, &loss);
        assert!(
            err.contains("layer 2 captured no attention outputs"),
            "{err}"
        );
        let mut batch = fixture(&logits, &values);
        batch.layers.iter_mut().for_each(|c| {
            c.student = None;
            c.student_output = None;
        });
        let err = error_of(batch, &DistillLoss::default());
        assert!(err.contains("at least one linear-attention layer"), "{err}");
    }

    /// `DistillOutputsOnly` captures no student weights: an output loss alone is bit-identical
    /// without them, gradient included, and a weight loss asked of them is a clear error.
    #[test]
    fn an_output_loss_needs_no_student_weights() {
        let loss = DistillLoss {
            weight_ce: 0.0,
            output_mse: 1000.0,
            ..DistillLoss::default()
        };
        assert_eq!(distill_mode(&loss), AttentionMode::DistillOutputsOnly);
        let (logits, values) = leaves();
        let with = distillation_loss(fixture(&logits, &values), &loss).unwrap();
        let with_grad = values.grad(&with.total.clone().backward()).unwrap();
        let (logits, values) = leaves();
        let mut batch = fixture(&logits, &values);
        batch.layers.iter_mut().for_each(|c| c.student = None);
        let without = distillation_loss(batch, &loss).unwrap();
        assert_eq!(bits(without.total.clone()), bits(with.total), "the loss");
        let without_grad = values.grad(&without.total.backward()).unwrap();
        assert_eq!(bits(without_grad), bits(with_grad), "its gradient");
        assert_eq!(without.parts, with.parts, "the logged parts");
        let mut batch = fixture(&logits, &values);
        batch.layers.iter_mut().for_each(|c| c.student = None);
        let both = DistillLoss {
            weight_ce: 1.0,
            ..loss
        };
        assert_eq!(distill_mode(&both), AttentionMode::DistillOutputs);
        let err = error_of(batch, &both);
        assert!(
            err.contains("layer 1 captured no student weights for weight_ce"),
            "{err}"
        );
        assert_eq!(
            distill_mode(&DistillLoss::default()),
            AttentionMode::Distill
        );
    }

    #[test]
    fn parts_average_over_micro_batches() {
        let part = |x: f64| DistillParts {
            components: [("weight_ce".to_string(), x)].into(),
            layers: LayerLosses {
                layers: vec![0, 2],
                loss: vec![x, 2.0 * x],
                components: [("weight_ce".to_string(), vec![x, 2.0 * x])].into(),
            },
        };
        let mean = DistillParts::default()
            .add_scaled(&part(1.0), 1.0)
            .add_scaled(&part(3.0), 1.0)
            .divided(2.0);
        assert_eq!(mean, part(2.0));
    }
}
