//! The `passkey:` settings of a `passkey` stage: passkey retrieval over a grid of prompt
//! lengths and needle depths, and generation speed and cache memory at each length.

use serde::{Deserialize, Serialize};

use super::stage::{StageKind, StageSpec};
use super::task::TaskSpec;

fn default_depths() -> Vec<f64> {
    vec![0.0, 0.25, 0.5, 0.75, 1.0]
}
fn default_trials() -> usize {
    10
}
fn default_speed_tokens() -> usize {
    16
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasskeySpec {
    /// Prompt lengths in tokens (the model's positions must fit each plus the answer).
    pub lengths: Vec<usize>,
    /// Where the key sits in the distractor text: 0 = first, 1 = last.
    #[serde(default = "default_depths")]
    pub depths: Vec<f64>,
    /// Prompts per (length, depth), each with its own key and distractor.
    #[serde(default = "default_trials")]
    pub trials: usize,
    /// Seed of the keys and distractors (default: the spec's `seed`), so that every attention
    /// of a sweep answers the same prompts.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Tokens decoded after a prompt of each length to time decoding and size the caches;
    /// 0 = no speed measurement.
    #[serde(default = "default_speed_tokens")]
    pub speed_tokens: usize,
}

impl PasskeySpec {
    fn validate(&self, at: &str) -> Result<(), String> {
        if self.lengths.is_empty() || self.lengths.contains(&0) {
            return Err(format!(
                "{at}: passkey.lengths must list positive token counts"
            ));
        }
        if self.depths.is_empty() || self.depths.iter().any(|d| !(0.0..=1.0).contains(d)) {
            return Err(format!("{at}: passkey.depths must list fractions in 0..1"));
        }
        if self.trials == 0 {
            return Err(format!("{at}: passkey.trials must be at least 1"));
        }
        Ok(())
    }
}

/// A `passkey` stage has `passkey:` settings and no other stage does.
pub(super) fn validate_stage(stage: &StageSpec, at: &str) -> Result<(), String> {
    match (&stage.passkey, stage.kind == StageKind::Passkey) {
        (Some(settings), true) => settings.validate(at),
        (None, true) => Err(format!(
            "{at}: give `passkey: {{lengths: [256, 512], depths: [0.0, 0.5, 1.0], trials: 10}}`"
        )),
        (Some(_), false) => Err(format!("{at}: `passkey:` belongs to a passkey stage")),
        (None, false) => Ok(()),
    }
}

/// Passkey retrieval reads the corpus's text and decodes with a tokenizer: language modelling
/// only (its models are the decoders).
pub(super) fn validate_task(stages: &[StageSpec], task: &TaskSpec) -> Result<(), String> {
    let Some(index) = stages.iter().position(|s| s.kind == StageKind::Passkey) else {
        return Ok(());
    };
    match task {
        TaskSpec::LanguageModeling {
            vocab_limit: None, ..
        } => Ok(()),
        TaskSpec::LanguageModeling { .. } => Err(format!(
            "stages.{index} (passkey): the prompts need the tokenizer's whole vocabulary; \
             remove task.vocab_limit"
        )),
        _ => Err(format!(
            "stages.{index} (passkey): passkey retrieval needs a language_modeling task with a \
             decoder (gpt2 or llama), not this task"
        )),
    }
}
