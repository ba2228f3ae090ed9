//! What a stage distils, with which weights: a distill stage's `loss:` (attention against
//! softmax's, per layer) and a training stage's `logit_distillation:` (next-token
//! distributions against the frozen softmax model's).

use serde::{Deserialize, Serialize};

/// One distillation loss, each averaged over query rows, heads and layers
/// (`hedgehog_attention::distill`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum DistillComponent {
    /// Soft cross-entropy of the student's weights against softmax's (Hedgehog, method.md §3).
    WeightCe,
    /// `KL(softmax ‖ student)` of the weights: the cross-entropy less the teacher's entropy,
    /// so the same gradient, on a scale whose minimum is 0.
    WeightKl,
    /// Squared error of the attention outputs per head, averaged over `dv` (LoLCATs' stage 1).
    OutputMse,
    /// `KL(teacher ‖ student)` of the next-token distributions, per position, against the
    /// pretrained model with softmax in every layer (a finetune stage's logit distillation).
    LogitKl,
    /// The task's next-token cross-entropy, mixed into a logit distillation.
    Lm,
}

impl DistillComponent {
    /// Every component, in the order of the log columns.
    pub const ALL: [Self; 5] = [
        Self::WeightCe,
        Self::WeightKl,
        Self::OutputMse,
        Self::LogitKl,
        Self::Lm,
    ];
    /// The attention components, which a distill stage's `loss:` weighs per layer.
    pub const ATTENTION: [Self; 3] = [Self::WeightCe, Self::WeightKl, Self::OutputMse];

    /// The key in `loss:` and, prefixed with `loss_`, the column in the run's logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::WeightCe => "weight_ce",
            Self::WeightKl => "weight_kl",
            Self::OutputMse => "output_mse",
            Self::LogitKl => "logit_kl",
            Self::Lm => "lm",
        }
    }

    /// Whether the component has a value per layer (`distill_layers.csv`).
    pub fn per_layer(self) -> bool {
        Self::ATTENTION.contains(&self)
    }

    /// The column of `metrics.csv` and `distill_layers.csv`.
    pub fn column(self) -> String {
        format!("loss_{}", self.name())
    }
}

/// `loss: {output_mse: 1000, weight_ce: 0}`: the stage minimises `Σ weight × loss`. A key left
/// out weighs 0, so what is written is the whole objective; a stage without `loss:` trains on
/// `weight_ce: 1` alone, Hedgehog's loss and the only one before this key existed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillLoss {
    #[serde(default)]
    pub weight_ce: f64,
    #[serde(default)]
    pub weight_kl: f64,
    /// LoLCATs' configs use 1000 (its outputs' squared errors are small).
    #[serde(default)]
    pub output_mse: f64,
}

impl Default for DistillLoss {
    fn default() -> Self {
        Self {
            weight_ce: 1.0,
            weight_kl: 0.0,
            output_mse: 0.0,
        }
    }
}

impl DistillLoss {
    pub fn weight(&self, component: DistillComponent) -> f64 {
        match component {
            DistillComponent::WeightCe => self.weight_ce,
            DistillComponent::WeightKl => self.weight_kl,
            DistillComponent::OutputMse => self.output_mse,
            DistillComponent::LogitKl | DistillComponent::Lm => 0.0,
        }
    }

    /// The components with a positive weight, in [`DistillComponent::ATTENTION`]'s order: the
    /// only ones computed (a weight of 0 costs nothing, and leaves the sum bit-identical).
    pub fn components(&self) -> Vec<(DistillComponent, f64)> {
        DistillComponent::ATTENTION
            .into_iter()
            .map(|c| (c, self.weight(c)))
            .filter(|&(_, weight)| weight > 0.0)
            .collect()
    }

    /// Whether the models must capture the attention outputs (an extra student forward).
    pub fn needs_outputs(&self) -> bool {
        self.output_mse > 0.0
    }

    /// Whether any weight loss is weighed (the students' `T × T` weights must be formed).
    pub fn needs_weights(&self) -> bool {
        self.weight_ce > 0.0 || self.weight_kl > 0.0
    }

    /// Every weight finite and non-negative, and at least one positive; `at` names the stage.
    pub(super) fn validate(&self, at: &str) -> Result<(), String> {
        for component in DistillComponent::ATTENTION {
            let weight = self.weight(component);
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(format!(
                    "{at}: loss.{} is {weight}; each loss weight must be a finite number ≥ 0",
                    component.name()
                ));
            }
        }
        if self.components().is_empty() {
            return Err(format!(
                "{at}: every loss weight is 0, so nothing would train; give at least one of \
                 weight_ce, weight_kl, output_mse a positive weight (e.g. loss: {{output_mse: \
                 1000}}), or remove `loss:` for the default weight_ce: 1"
            ));
        }
        Ok(())
    }
}

fn default_kl() -> f64 {
    1.0
}

/// `logit_distillation: {kl: 1, lm: 0.5}` on a train or finetune stage: the stage minimises
/// `kl × KL(teacher ‖ student) + lm × cross-entropy` per next-token position, the teacher
/// being the run's pretrained model with softmax attention in every layer, frozen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogitDistillation {
    #[serde(default = "default_kl")]
    pub kl: f64,
    /// The task's own loss mixed in; 0 (the default) distils alone.
    #[serde(default)]
    pub lm: f64,
}

impl LogitDistillation {
    /// The weighed components, `logit_kl` first.
    pub fn components(&self) -> Vec<(DistillComponent, f64)> {
        [
            (DistillComponent::LogitKl, self.kl),
            (DistillComponent::Lm, self.lm),
        ]
        .into_iter()
        .filter(|&(_, weight)| weight > 0.0)
        .collect()
    }

    /// Both weights finite and ≥ 0, `kl` positive; `at` names the stage.
    pub(super) fn validate(&self, at: &str) -> Result<(), String> {
        for (name, weight) in [("kl", self.kl), ("lm", self.lm)] {
            if !(weight.is_finite() && weight >= 0.0) {
                return Err(format!(
                    "{at}: logit_distillation.{name} is {weight}; each weight must be a finite \
                     number ≥ 0"
                ));
            }
        }
        if self.kl == 0.0 {
            return Err(format!(
                "{at}: logit_distillation.kl is 0, which leaves the task's loss alone; remove \
                 `logit_distillation:` to train on it, or give kl a positive weight"
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<DistillLoss, String> {
        serde_saphyr::from_str::<DistillLoss>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn keys_left_out_weigh_nothing_and_no_key_is_hedgehogs_loss() {
        let loss = parse("{output_mse: 1000}").unwrap();
        assert_eq!(
            loss.components(),
            vec![(DistillComponent::OutputMse, 1000.0)]
        );
        assert!(loss.needs_outputs() && !loss.needs_weights());
        let default = DistillLoss::default();
        assert_eq!(
            default.components(),
            vec![(DistillComponent::WeightCe, 1.0)]
        );
        assert!(!default.needs_outputs() && default.needs_weights());
        assert!(parse("{weight_kl: 1}").unwrap().needs_weights());
        let all = parse("{weight_ce: 0.5, weight_kl: 2, output_mse: 1000}").unwrap();
        let names: Vec<_> = all.components().iter().map(|(c, _)| c.column()).collect();
        assert_eq!(
            names,
            ["loss_weight_ce", "loss_weight_kl", "loss_output_mse"]
        );
    }

    #[test]
    fn bad_weights_are_clear_errors() {
        let err = parse("{output_mse: 1000, weight_xe: 1}").unwrap_err();
        assert!(
            err.contains("weight_xe") && err.contains("output_mse"),
            "{err}"
        );
        for (text, expected) in [
            ("{weight_ce: -1}", "loss.weight_ce is -1"),
            ("{output_mse: .nan}", "loss.output_mse is NaN"),
            ("{weight_kl: .inf}", "loss.weight_kl is inf"),
            ("{weight_ce: 0, output_mse: 0}", "every loss weight is 0"),
            ("{}", "every loss weight is 0"),
        ] {
            let err = parse(text)
                .unwrap()
                .validate("stages.1 (distill)")
                .unwrap_err();
            assert!(
                err.starts_with("stages.1 (distill): ") && err.contains(expected),
                "{text}: {err}"
            );
        }
    }

    #[test]
    fn logit_distillation_weighs_kl_alone_by_default_and_refuses_bad_weights() {
        let parsed: LogitDistillation = serde_saphyr::from_str("{}").unwrap();
        assert_eq!(parsed.components(), vec![(DistillComponent::LogitKl, 1.0)]);
        let mixed: LogitDistillation = serde_saphyr::from_str("{kl: 2, lm: 0.5}").unwrap();
        assert_eq!(
            mixed.components(),
            vec![
                (DistillComponent::LogitKl, 2.0),
                (DistillComponent::Lm, 0.5)
            ]
        );
        assert!(serde_saphyr::from_str::<LogitDistillation>("{kl: 1, ce: 1}").is_err());
        for (text, expected) in [
            ("{kl: 0}", "logit_distillation.kl is 0"),
            ("{kl: -1}", "logit_distillation.kl is -1"),
            ("{lm: .nan}", "logit_distillation.lm is NaN"),
        ] {
            let parsed: LogitDistillation = serde_saphyr::from_str(text).unwrap();
            let err = parsed.validate("stages.2 (finetune)").unwrap_err();
            assert!(
                err.starts_with("stages.2 (finetune): ") && err.contains(expected),
                "{text}: {err}"
            );
        }
    }
}
