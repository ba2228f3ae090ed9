//! A stage's `optimizer:` and `schedule:`.

use serde::{Deserialize, Serialize};

fn default_lr() -> f64 {
    1e-3
}
fn default_weight_decay() -> f64 {
    0.01
}
fn default_beta1() -> f64 {
    0.9
}
fn default_beta2() -> f64 {
    0.999
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerSpec {
    Adamw {
        #[serde(default = "default_lr")]
        lr: f64,
        #[serde(default = "default_weight_decay")]
        weight_decay: f64,
        #[serde(default = "default_beta1")]
        beta1: f64,
        #[serde(default = "default_beta2")]
        beta2: f64,
    },
}

impl OptimizerSpec {
    /// The peak learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw { lr, .. } => *lr,
        }
    }
}

impl Default for OptimizerSpec {
    fn default() -> Self {
        Self::Adamw {
            lr: default_lr(),
            weight_decay: default_weight_decay(),
            beta1: default_beta1(),
            beta2: default_beta2(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ScheduleSpec {
    Constant {
        #[serde(default)]
        warmup_steps: usize,
    },
    /// Linear warm-up, then cosine decay to `min_ratio · lr` at the last step.
    Cosine {
        #[serde(default)]
        warmup_steps: usize,
        #[serde(default)]
        min_ratio: f64,
    },
}

impl Default for ScheduleSpec {
    fn default() -> Self {
        Self::Constant { warmup_steps: 0 }
    }
}

impl ScheduleSpec {
    /// Learning-rate multiplier at `step` (0-based) of `total`.
    pub fn factor(&self, step: usize, total: usize) -> f64 {
        let (warmup, min_ratio, cosine) = match *self {
            Self::Constant { warmup_steps } => (warmup_steps, 1.0, false),
            Self::Cosine {
                warmup_steps,
                min_ratio,
            } => (warmup_steps, min_ratio, true),
        };
        if step < warmup {
            return (step + 1) as f64 / warmup as f64;
        }
        if !cosine || total <= warmup + 1 {
            return 1.0;
        }
        let progress = (step - warmup) as f64 / (total - warmup - 1) as f64;
        min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
    }
}

impl OptimizerSpec {
    /// A positive, finite learning rate; `at` names the stage in the message.
    pub(super) fn validate(&self, at: &str) -> Result<(), String> {
        let OptimizerSpec::Adamw { lr, .. } = *self;
        if !(lr > 0.0 && lr.is_finite()) {
            return Err(format!("{at}: optimizer.lr must be positive, got {lr}"));
        }
        Ok(())
    }
}
