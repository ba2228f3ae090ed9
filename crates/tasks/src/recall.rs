//! Multi-query associative recall (MQAR; Arora et al. 2023, HazyResearch/zoology
//! `zoology/data/multiquery_ar.py`): a sequence opens with `num_kv_pairs` key-value pairs, and
//! later the keys reappear as queries whose next token must be the paired value.
//!
//! Keys come from the first half of the vocabulary (token 0 excluded), values from the second.
//! Query positions are drawn without replacement with a power-law bias towards short gaps
//! (`p(gap) ∝ gap^(power_a − 1)`), as in zoology; the remaining positions are random tokens.

use rand::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// Target value of positions that are not scored (the cross-entropy `ignore_index`).
pub const IGNORE: i64 = -100;

fn default_power_a() -> f64 {
    0.01
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecallConfig {
    pub vocab_size: usize,
    pub seq_len: usize,
    pub num_kv_pairs: usize,
    #[serde(default = "default_power_a")]
    pub power_a: f64,
    pub train_examples: usize,
    pub test_examples: usize,
    pub train_seed: u64,
    pub test_seed: u64,
}

/// Inputs `[N, T]` and targets `[N, T]` (row-major), targets `IGNORE` except at queries.
#[derive(Clone, Debug, PartialEq)]
pub struct RecallSet {
    pub inputs: Vec<i64>,
    pub targets: Vec<i64>,
    pub examples: usize,
    pub seq_len: usize,
}

impl RecallConfig {
    pub fn validate(&self) -> Result<(), DataError> {
        let fail = |reason: String| Err(DataError::Config(format!("associative recall: {reason}")));
        if !self.seq_len.is_multiple_of(2) {
            return fail(format!("seq_len {} must be even", self.seq_len));
        }
        if self.vocab_size <= self.seq_len {
            return fail(format!(
                "vocab_size {} must exceed seq_len {}",
                self.vocab_size, self.seq_len
            ));
        }
        if self.num_kv_pairs == 0 || self.num_kv_pairs * 4 > self.seq_len {
            return fail(format!(
                "need 1 ≤ num_kv_pairs ≤ seq_len/4, got {} for seq_len {}",
                self.num_kv_pairs, self.seq_len
            ));
        }
        if self.num_kv_pairs >= self.vocab_size / 2 {
            return fail(format!(
                "num_kv_pairs {} needs more than {} distinct keys",
                self.num_kv_pairs,
                self.vocab_size / 2
            ));
        }
        if self.train_seed == self.test_seed {
            return fail(
                "train_seed and test_seed must differ so the sets are disjoint draws".into(),
            );
        }
        Ok(())
    }

    pub fn train(&self) -> Result<RecallSet, DataError> {
        self.validate()?;
        Ok(self.generate(self.train_examples, self.train_seed))
    }

    pub fn test(&self) -> Result<RecallSet, DataError> {
        self.validate()?;
        Ok(self.generate(self.test_examples, self.test_seed))
    }

    fn generate(&self, examples: usize, seed: u64) -> RecallSet {
        let mut rng = StdRng::seed_from_u64(seed);
        let (t, pairs, vocab) = (self.seq_len, self.num_kv_pairs, self.vocab_size);
        let context = 2 * pairs;
        let half = vocab / 2;
        let space = (t - context) / 2;
        let gap_weights: Vec<f64> = (1..=space)
            .map(|g| (g as f64).powf(self.power_a - 1.0))
            .collect();
        let mut inputs = Vec::with_capacity(examples * t);
        let mut targets = Vec::with_capacity(examples * t);
        for _ in 0..examples {
            let keys: Vec<i64> = (1..half as i64).choose_multiple(&mut rng, pairs);
            let values: Vec<i64> = (half as i64..vocab as i64).choose_multiple(&mut rng, pairs);
            // Sequence of length t + 1 (inputs drop the last token, targets the first).
            let mut sequence = vec![0i64; t + 1];
            let mut labels = vec![IGNORE; t + 1];
            for i in 0..pairs {
                sequence[2 * i] = keys[i];
                sequence[2 * i + 1] = values[i];
            }
            let gaps = weighted_sample_without_replacement(&gap_weights, pairs, &mut rng);
            for (i, gap) in gaps.into_iter().enumerate() {
                sequence[context + 2 * gap] = keys[i];
                labels[context + 2 * gap + 1] = values[i];
            }
            // Fill the non-query positions (still 0: keys and values are never 0) with noise.
            for token in sequence[context..t].iter_mut().filter(|token| **token == 0) {
                *token = rng.random_range(0..vocab as i64);
            }
            inputs.extend_from_slice(&sequence[..t]);
            targets.extend_from_slice(&labels[1..]);
        }
        RecallSet {
            inputs,
            targets,
            examples,
            seq_len: t,
        }
    }
}

/// `k` distinct indices drawn with probabilities proportional to `weights`, one at a time.
fn weighted_sample_without_replacement(weights: &[f64], k: usize, rng: &mut StdRng) -> Vec<usize> {
    let mut remaining: Vec<(usize, f64)> = weights.iter().copied().enumerate().collect();
    let mut chosen = Vec::with_capacity(k);
    for _ in 0..k {
        let total: f64 = remaining.iter().map(|(_, w)| w).sum();
        let mut target = rng.random::<f64>() * total;
        let position = remaining
            .iter()
            .position(|(_, w)| {
                target -= w;
                target <= 0.0
            })
            .unwrap_or(remaining.len() - 1);
        chosen.push(remaining.remove(position).0);
    }
    chosen
}

/// Accuracy over the scored positions: `predictions` and `targets` are `[N, T]`.
pub fn recall_accuracy(predictions: &[i64], targets: &[i64]) -> f64 {
    let (correct, total) = predictions
        .iter()
        .zip(targets)
        .filter(|(_, t)| **t != IGNORE)
        .fold((0usize, 0usize), |(c, n), (p, t)| {
            (c + usize::from(p == t), n + 1)
        });
    if total == 0 {
        0.0
    } else {
        correct as f64 / total as f64
    }
}
