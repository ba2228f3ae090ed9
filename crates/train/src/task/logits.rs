//! Logit distillation: a language model's next-token distributions against a frozen teacher's
//! (the KL stage of later conversion recipes, method.md §4), optionally mixed with the task's
//! cross-entropy.

use std::collections::BTreeMap;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, activation};

use super::distill::{DistillParts, DistillValue};
use super::to_f32;
use crate::error::RunError;
use crate::spec::{DistillComponent, LogitDistillation};

/// `kl × mean KL(teacher ‖ student) + lm × mean cross-entropy` over the `[B, T]` positions of
/// `student` and `teacher` logits `[B, T, V]`, `targets` the next tokens (row-major over
/// `[B, T]`). The teacher carries no gradient; only the weighed components are computed.
pub fn logit_distillation_loss<B: Backend>(
    student: Tensor<B, 3>,
    teacher: Tensor<B, 3>,
    targets: &[i64],
    weights: &LogitDistillation,
) -> Result<DistillValue<B>, RunError> {
    let [batch, time, vocab] = student.dims();
    if teacher.dims() != [batch, time, vocab] {
        return Err(RunError::Config(format!(
            "logit distillation: the student's logits are {:?} but the teacher's are {:?}; \
             both models must share the tokenizer and vocabulary",
            [batch, time, vocab],
            teacher.dims()
        )));
    }
    let positions = batch * time;
    if targets.len() != positions {
        return Err(RunError::Config(format!(
            "logit distillation: {} targets for {positions} positions",
            targets.len()
        )));
    }
    let device = student.device();
    let student = activation::log_softmax(student.reshape([positions, vocab]), 1);
    let mut total: Option<Tensor<B, 1>> = None;
    let mut components = BTreeMap::new();
    for (component, weight) in weights.components() {
        let value = match component {
            DistillComponent::LogitKl => {
                let teacher =
                    activation::log_softmax(teacher.clone().reshape([positions, vocab]), 1)
                        .detach();
                let pointwise = teacher.clone().exp() * (teacher - student.clone());
                pointwise.sum().div_scalar(positions as f64)
            }
            DistillComponent::Lm => {
                if let Some(bad) = targets.iter().find(|&&t| t < 0 || t as usize >= vocab) {
                    return Err(RunError::Config(format!(
                        "logit distillation: target {bad} is outside the {vocab}-token vocabulary"
                    )));
                }
                let indices = Tensor::<B, 2, Int>::from_data(
                    TensorData::new(targets.to_vec(), [positions, 1]).convert::<B::IntElem>(),
                    &device,
                );
                student
                    .clone()
                    .gather(1, indices)
                    .sum()
                    .neg()
                    .div_scalar(positions as f64)
            }
            other => unreachable!("{other:?} is not a logit component"),
        };
        let scalar = to_f32(value.clone().detach())?[0];
        components.insert(component.name().to_string(), f64::from(scalar));
        let weighted = value.mul_scalar(weight);
        total = Some(match total {
            Some(sum) => sum + weighted,
            None => weighted,
        });
    }
    Ok(DistillValue {
        total: total.expect("validation keeps kl positive"),
        parts: DistillParts {
            components,
            ..DistillParts::default()
        },
    })
}

#[cfg(test)]
mod tests {
    use burn::backend::Autodiff;
    use burn::backend::NdArray;

    use super::*;

    type B = NdArray<f32>;

    fn logits(values: &[f32], dims: [usize; 3]) -> Tensor<B, 3> {
        Tensor::from_data(TensorData::new(values.to_vec(), dims), &Default::default())
    }

    /// The KL and cross-entropy by hand, in f64, from the definitions.
    fn reference(student: &[f32], teacher: &[f32], targets: &[i64], vocab: usize) -> (f64, f64) {
        let log_softmax = |row: &[f32]| -> Vec<f64> {
            let max = row
                .iter()
                .fold(f64::NEG_INFINITY, |m, &v| m.max(f64::from(v)));
            let sum: f64 = row.iter().map(|&v| (f64::from(v) - max).exp()).sum();
            row.iter().map(|&v| f64::from(v) - max - sum.ln()).collect()
        };
        let positions = targets.len();
        let (mut kl, mut ce) = (0.0, 0.0);
        for p in 0..positions {
            let s = log_softmax(&student[p * vocab..(p + 1) * vocab]);
            let t = log_softmax(&teacher[p * vocab..(p + 1) * vocab]);
            kl += (0..vocab).map(|v| t[v].exp() * (t[v] - s[v])).sum::<f64>();
            ce -= s[targets[p] as usize];
        }
        (kl / positions as f64, ce / positions as f64)
    }

    #[test]
    fn matches_the_definitions_and_is_zero_against_itself() {
        let dims = [2, 3, 5];
        let student: Vec<f32> = (0..30).map(|i| ((i * 7 % 11) as f32 - 5.0) * 0.4).collect();
        let teacher: Vec<f32> = (0..30).map(|i| ((i * 5 % 13) as f32 - 6.0) * 0.3).collect();
        let targets = [0, 4, 2, 1, 3, 3];
        let weights = LogitDistillation { kl: 2.0, lm: 0.5 };
        let value = logit_distillation_loss(
            logits(&student, dims),
            logits(&teacher, dims),
            &targets,
            &weights,
        )
        .unwrap();
        let (kl, ce) = reference(&student, &teacher, &targets, 5);
        assert!(
            (value.parts.components["logit_kl"] - kl).abs() < 1e-5,
            "{kl}"
        );
        assert!((value.parts.components["lm"] - ce).abs() < 1e-5, "{ce}");
        let total = f64::from(to_f32(value.total).unwrap()[0]);
        assert!((total - (2.0 * kl + 0.5 * ce)).abs() < 1e-5);
        let same = logit_distillation_loss(
            logits(&teacher, dims),
            logits(&teacher, dims),
            &targets,
            &LogitDistillation { kl: 1.0, lm: 0.0 },
        )
        .unwrap();
        assert!(same.parts.components["logit_kl"].abs() < 1e-6);
        assert!(!same.parts.components.contains_key("lm"));
    }

    #[test]
    fn the_gradient_is_the_students_softmax_less_the_teachers() {
        // d KL / d s = (softmax(s) − softmax(t)) / positions, and nothing reaches the teacher.
        type A = Autodiff<B>;
        let dims = [1, 2, 4];
        let student: Vec<f32> = vec![0.5, -1.0, 2.0, 0.0, 1.5, 0.2, -0.3, 0.9];
        let teacher: Vec<f32> = vec![-0.2, 0.8, 1.1, 0.4, 0.0, 0.0, 2.0, -1.0];
        let device = Default::default();
        let s = Tensor::<A, 3>::from_data(TensorData::new(student.clone(), dims), &device)
            .require_grad();
        let t = Tensor::<A, 3>::from_data(TensorData::new(teacher.clone(), dims), &device)
            .require_grad();
        let value = logit_distillation_loss(
            s.clone(),
            t.clone(),
            &[0, 1],
            &LogitDistillation { kl: 1.0, lm: 0.0 },
        )
        .unwrap();
        let grads = value.total.backward();
        let got = to_f32(s.grad(&grads).unwrap()).unwrap();
        assert!(
            t.grad(&grads)
                .is_none_or(|g| to_f32(g).unwrap().iter().all(|&v| v == 0.0))
        );
        let softmax = |row: &[f32]| -> Vec<f32> {
            let sum: f32 = row.iter().map(|v| v.exp()).sum();
            row.iter().map(|v| v.exp() / sum).collect()
        };
        for p in 0..2 {
            let (ps, pt) = (
                softmax(&student[p * 4..p * 4 + 4]),
                softmax(&teacher[p * 4..p * 4 + 4]),
            );
            for v in 0..4 {
                let expected = (ps[v] - pt[v]) / 2.0;
                assert!((got[p * 4 + v] - expected).abs() < 1e-6, "{p} {v}");
            }
        }
    }

    #[test]
    fn mismatched_shapes_and_targets_are_clear_errors() {
        let weights = LogitDistillation { kl: 1.0, lm: 1.0 };
        let a = logits(&[0.0; 12], [1, 3, 4]);
        let b = logits(&[0.0; 15], [1, 3, 5]);
        let Err(err) = logit_distillation_loss(a.clone(), b, &[0, 1, 2], &weights) else {
            panic!("a vocabulary mismatch was accepted");
        };
        assert!(err.to_string().contains("share the tokenizer"), "{err}");
        let Err(err) = logit_distillation_loss(a.clone(), a, &[0, 9, 2], &weights) else {
            panic!("an out-of-range target was accepted");
        };
        assert!(err.to_string().contains("target 9"), "{err}");
    }
}
