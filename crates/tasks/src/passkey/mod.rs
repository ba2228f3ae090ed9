//! Passkey retrieval (needle in a haystack) on the corpus's own text: prompts of chosen token
//! lengths with a seeded five-digit key hidden at chosen depths, the model's greedy answer
//! scored by exact match. The model is a closure, so this stays free of burn and testable with
//! a scripted answerer.

mod prompt;

pub use prompt::{
    PASSKEY_DIGITS, PASSKEY_INTRO, PASSKEY_QUESTION, PasskeyCorpus, PasskeyPrompt, PasskeyRequest,
    corpus_sentences, passkey_correct, passkey_key, passkey_needle, passkey_prompt,
};

use serde::{Deserialize, Serialize};

use crate::error::DataError;

/// The grid a passkey evaluation runs: every length × depth, `trials` prompts each.
#[derive(Clone, Debug, PartialEq)]
pub struct PasskeyGrid {
    pub lengths: Vec<usize>,
    pub depths: Vec<f64>,
    pub trials: usize,
    pub seed: u64,
}

/// One prompt and what the model answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasskeyTrial {
    pub length: usize,
    pub depth: f64,
    pub trial: usize,
    /// Tokens of the prompt as built (the asked length, give or take a token or two).
    pub prompt_tokens: usize,
    /// Where the needle ended up: distractor tokens before it over all distractor tokens.
    pub needle_depth: f64,
    pub key: String,
    pub answer: String,
    pub correct: bool,
}

/// Exact-match accuracy of one (length, depth) cell.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasskeyCell {
    pub length: usize,
    pub depth: f64,
    pub trials: usize,
    pub correct: usize,
    /// `correct / trials`, in [0, 1].
    pub accuracy: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasskeyResults {
    pub cells: Vec<PasskeyCell>,
    pub trials: Vec<PasskeyTrial>,
}

impl PasskeyResults {
    /// Mean accuracy over every depth and trial of `length`.
    pub fn length_accuracy(&self, length: usize) -> Option<f64> {
        let cells: Vec<&PasskeyCell> = self.cells.iter().filter(|c| c.length == length).collect();
        let trials: usize = cells.iter().map(|c| c.trials).sum();
        let correct: usize = cells.iter().map(|c| c.correct).sum();
        (trials > 0).then(|| correct as f64 / trials as f64)
    }
}

/// The prompt seed of one trial: distinct for every (length, depth, trial), a function of
/// `seed` alone otherwise (SplitMix64's finaliser over the packed indices).
pub fn trial_seed(seed: u64, length: usize, depth_index: usize, trial: usize) -> u64 {
    let mut z = seed
        ^ (length as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (depth_index as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9)
        ^ (trial as u64).wrapping_mul(0x94D0_49BB_1331_11EB);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Greedy continuation of a prompt by up to the given number of new tokens.
pub type Answerer<'a, E> = dyn FnMut(&[u32], usize) -> Result<Vec<u32>, E> + 'a;

/// What a passkey evaluation needs of the model and its tokenizer.
pub struct PasskeyModel<'a, E> {
    pub encode: &'a dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    pub decode: &'a dyn Fn(&[u32]) -> Result<String, DataError>,
    pub answer: &'a mut Answerer<'a, E>,
}

/// Runs every trial of `grid`, reporting each finished cell through `progress`.
pub fn run_passkey<E: From<DataError>>(
    corpus: &PasskeyCorpus,
    grid: &PasskeyGrid,
    model: PasskeyModel<'_, E>,
    progress: &mut dyn FnMut(&PasskeyCell, usize, usize),
) -> Result<PasskeyResults, E> {
    if grid.lengths.is_empty() || grid.depths.is_empty() || grid.trials == 0 {
        return Err(DataError::Config(
            "passkey: give at least one length, one depth and one trial".into(),
        )
        .into());
    }
    let mut results = PasskeyResults {
        cells: Vec::new(),
        trials: Vec::new(),
    };
    let total = grid.lengths.len() * grid.depths.len();
    for &length in &grid.lengths {
        for (depth_index, &depth) in grid.depths.iter().enumerate() {
            let mut correct = 0;
            for trial in 0..grid.trials {
                let seed = trial_seed(grid.seed, length, depth_index, trial);
                let request = PasskeyRequest {
                    length,
                    depth,
                    seed,
                };
                let prompt = passkey_prompt(corpus, model.encode, request)?;
                // The key with its leading space, plus slack for a stray token before it.
                let budget = (model.encode)(&format!(" {}", prompt.key))?.len() + 2;
                let answer = (model.decode)(&(model.answer)(&prompt.tokens, budget)?)?;
                let hit = passkey_correct(&answer, &prompt.key);
                correct += usize::from(hit);
                results.trials.push(PasskeyTrial {
                    length,
                    depth,
                    trial,
                    prompt_tokens: prompt.tokens.len(),
                    needle_depth: prompt.tokens_before_needle as f64
                        / prompt.distractor_tokens.max(1) as f64,
                    key: prompt.key,
                    answer,
                    correct: hit,
                });
            }
            let cell = PasskeyCell {
                length,
                depth,
                trials: grid.trials,
                correct,
                accuracy: correct as f64 / grid.trials as f64,
            };
            progress(&cell, results.cells.len() + 1, total);
            results.cells.push(cell);
        }
    }
    Ok(results)
}
