//! Text generation for the decoders: greedy, top-k and top-p (nucleus) sampling.
//!
//! The prompt is prefilled in one pass (softmax layers fill their key/value cache, linear layers
//! run the chunked form and keep only `(S, z)`, linear layers with a window of `W` keys keep the
//! last `W` keys and values besides), then tokens are decoded one at a time; a linear layer's
//! cost and memory per token stay constant, windowed or not ([`generate_profiled`] measures both).

use std::time::Instant;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, weighted::WeightedIndex};

use crate::attention::LayerCache;
use crate::common::CausalLm;
use crate::error::ModelError;

/// How the next token is chosen from the logits.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Sampling {
    Greedy,
    /// Sample among the `k` most likely tokens.
    TopK {
        k: usize,
        temperature: f64,
    },
    /// Sample among the smallest set of tokens whose probability reaches `p`.
    TopP {
        p: f64,
        temperature: f64,
    },
}

#[derive(Clone, Debug)]
pub struct GenerationConfig {
    pub max_new_tokens: usize,
    pub sampling: Sampling,
    pub seed: u64,
    /// Stop after emitting this token (end of text).
    pub stop_token: Option<u32>,
}

/// Generates up to `max_new_tokens` after `prompt`; returns only the new tokens.
pub fn generate<B: Backend, M: CausalLm<B>>(
    model: &M,
    prompt: &[u32],
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<Vec<u32>, ModelError> {
    generate_profiled(model, prompt, config, device).map(|(tokens, _)| tokens)
}

/// What one generation cost: wall time of the prefill and of the one-token decoding steps, and
/// the decoding caches' size ([`LayerCache::bytes`], summed over layers) after the prefill and
/// at the end.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationProfile {
    pub prompt_tokens: usize,
    pub prefill_seconds: f64,
    /// Forward calls on one new token (every generated token but the last is fed back).
    pub decode_steps: usize,
    pub decode_seconds: f64,
    pub cache_bytes_after_prefill: usize,
    pub cache_bytes: usize,
}

impl GenerationProfile {
    /// Mean wall time of one decoding step, in milliseconds (`None` before any step).
    pub fn ms_per_token(&self) -> Option<f64> {
        (self.decode_steps > 0).then(|| self.decode_seconds * 1e3 / self.decode_steps as f64)
    }
}

/// [`generate`], also timing it and measuring its caches.
pub fn generate_profiled<B: Backend, M: CausalLm<B>>(
    model: &M,
    prompt: &[u32],
    config: &GenerationConfig,
    device: &B::Device,
) -> Result<(Vec<u32>, GenerationProfile), ModelError> {
    check_prompt(model, prompt, config)?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let tokens = |ids: &[u32]| {
        let data: Vec<i64> = ids.iter().map(|&t| t as i64).collect();
        Tensor::<B, 2, Int>::from_data(
            TensorData::new(data, [1, ids.len()]).convert::<B::IntElem>(),
            device,
        )
    };
    let cache_bytes = |caches: &[LayerCache<B>]| caches.iter().map(LayerCache::bytes).sum();
    let started = Instant::now();
    let caches = vec![LayerCache::Empty; model.num_layers()];
    let (logits, mut caches) = model.forward_cached(tokens(prompt), caches, 0)?;
    // Reading the logits back waits for the backend, so the time covers the whole pass.
    let mut last = last_logits(logits);
    let mut profile = GenerationProfile {
        prompt_tokens: prompt.len(),
        prefill_seconds: started.elapsed().as_secs_f64(),
        decode_steps: 0,
        decode_seconds: 0.0,
        cache_bytes_after_prefill: cache_bytes(&caches),
        cache_bytes: 0,
    };
    let mut generated = Vec::with_capacity(config.max_new_tokens);
    for step in 0..config.max_new_tokens {
        let next = choose(&last, &config.sampling, &mut rng)?;
        generated.push(next);
        if config.stop_token == Some(next) || step + 1 == config.max_new_tokens {
            break;
        }
        let started = Instant::now();
        let (logits, next_caches) =
            model.forward_cached(tokens(&[next]), caches, prompt.len() + step)?;
        caches = next_caches;
        last = last_logits(logits);
        profile.decode_seconds += started.elapsed().as_secs_f64();
        profile.decode_steps += 1;
    }
    profile.cache_bytes = cache_bytes(&caches);
    Ok((generated, profile))
}

fn check_prompt<B: Backend, M: CausalLm<B>>(
    model: &M,
    prompt: &[u32],
    config: &GenerationConfig,
) -> Result<(), ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::Input(
            "generation needs a non-empty prompt".into(),
        ));
    }
    if let Some(max) = model.max_positions()
        && prompt.len() + config.max_new_tokens > max
    {
        return Err(ModelError::Input(format!(
            "prompt ({}) + max_new_tokens ({}) exceeds the model's {max} positions",
            prompt.len(),
            config.max_new_tokens
        )));
    }
    Ok(())
}

fn last_logits<B: Backend>(logits: Tensor<B, 3>) -> Vec<f64> {
    let [b, t, v] = logits.dims();
    logits
        .slice([b - 1..b, t - 1..t, 0..v])
        .into_data()
        .convert::<f64>()
        .to_vec::<f64>()
        .expect("logits convert to f64")
}

/// Picks a token from logits (host side).
pub fn choose(logits: &[f64], sampling: &Sampling, rng: &mut StdRng) -> Result<u32, ModelError> {
    let temperature = match *sampling {
        Sampling::Greedy => {
            let best = logits
                .iter()
                .enumerate()
                .fold((0, f64::NEG_INFINITY), |best, (i, &l)| {
                    if l > best.1 { (i, l) } else { best }
                });
            return Ok(best.0 as u32);
        }
        Sampling::TopK { k: 0, .. } => {
            return Err(ModelError::Config("top-k sampling needs k ≥ 1".into()));
        }
        Sampling::TopP { p, .. } if !(p > 0.0 && p <= 1.0) => {
            return Err(ModelError::Config(format!(
                "top-p needs 0 < p ≤ 1, got {p}"
            )));
        }
        Sampling::TopK { temperature, .. } | Sampling::TopP { temperature, .. } => temperature,
    };
    if !(temperature > 0.0 && temperature.is_finite()) {
        return Err(ModelError::Config(format!(
            "temperature must be positive, got {temperature}"
        )));
    }
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut probs: Vec<(usize, f64)> = logits
        .iter()
        .map(|&l| ((l - max) / temperature).exp())
        .enumerate()
        .collect();
    let total: f64 = probs.iter().map(|(_, p)| p).sum();
    probs.iter_mut().for_each(|(_, p)| *p /= total);
    probs.sort_by(|a, b| b.1.total_cmp(&a.1));
    let keep = match *sampling {
        Sampling::TopK { k, .. } => k.min(probs.len()),
        // The smallest prefix whose mass reaches p.
        Sampling::TopP { p, .. } => {
            let mut mass = 0.0;
            probs
                .iter()
                .position(|(_, prob)| {
                    mass += prob;
                    mass >= p
                })
                .map_or(probs.len(), |i| i + 1)
        }
        Sampling::Greedy => unreachable!("greedy returned above"),
    };
    let candidates = &probs[..keep];
    let index = WeightedIndex::new(candidates.iter().map(|(_, p)| *p))
        .map_err(|e| ModelError::Input(format!("cannot sample from the logits: {e}")))?;
    Ok(candidates[index.sample(rng)].0 as u32)
}
