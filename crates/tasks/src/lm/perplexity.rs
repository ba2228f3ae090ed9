//! Token-level perplexity over a whole split with a sliding window (the HF `transformers`
//! recipe, with windows overlapping by at least one token so that no token goes unscored): the
//! first window scores its first `context − 1` predictions, each later window ends `stride`
//! tokens further and scores only those new tokens. Every token but the first is scored exactly
//! once, each with at least `context − stride` tokens of left context.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData, activation};
use hedgehog_models::ModelError;

use crate::error::DataError;

#[derive(Clone, Debug, PartialEq)]
pub struct PerplexityReport {
    /// Tokens scored.
    pub tokens: usize,
    /// Mean negative log-likelihood, nats per token.
    pub nll: f64,
    pub perplexity: f64,
}

/// `logits(window)` maps `[1, t]` token ids to `[1, t, V]` logits; `progress(done, total)` is
/// called after each window.
pub fn perplexity<B: Backend>(
    tokens: &[u32],
    context: usize,
    stride: usize,
    device: &B::Device,
    mut logits: impl FnMut(Tensor<B, 2, Int>) -> Result<Tensor<B, 3>, ModelError>,
    progress: impl FnMut(usize, usize),
) -> Result<PerplexityReport, DataError> {
    perplexity_from_nll::<B>(
        tokens,
        context,
        stride,
        device,
        |window, targets| {
            let log_probs = activation::log_softmax(logits(window)?, 2);
            let [_, _, vocab] = log_probs.dims();
            let values = log_probs
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .expect("f32 logits");
            Ok(targets
                .iter()
                .enumerate()
                .map(|(i, t)| t.map_or(0.0, |t| -values[i * vocab + t]))
                .collect())
        },
        progress,
    )
}

/// [`perplexity`] from a model's per-position negative log-likelihood: `nll(window, targets)`
/// maps `[1, t]` token ids and the target of each position (`None`: not scored here) to
/// `−log p(target)` per position. The fused LM head answers this without forming logits.
pub fn perplexity_from_nll<B: Backend>(
    tokens: &[u32],
    context: usize,
    stride: usize,
    device: &B::Device,
    mut nll: impl FnMut(Tensor<B, 2, Int>, &[Option<usize>]) -> Result<Vec<f32>, ModelError>,
    mut progress: impl FnMut(usize, usize),
) -> Result<PerplexityReport, DataError> {
    if context < 2 || stride == 0 || stride >= context {
        return Err(DataError::Config(format!(
            "perplexity needs context ≥ 2 and 1 ≤ stride < context, got context {context}, stride {stride}"
        )));
    }
    if tokens.len() < 2 {
        return Err(DataError::Config(
            "perplexity needs at least two tokens".into(),
        ));
    }
    let n = tokens.len();
    let (mut total, mut scored) = (0.0f64, 0usize);
    // Score tokens [start, end) from the window tokens[end − context .. end).
    let (mut start, mut end) = (1, context.min(n));
    loop {
        let begin = end.saturating_sub(context);
        let window: Vec<i64> = tokens[begin..end].iter().map(|&t| t as i64).collect();
        let input = Tensor::<B, 2, Int>::from_data(
            TensorData::new(window, [1, end - begin]).convert::<B::IntElem>(),
            device,
        );
        // Token p is predicted at window position p − begin − 1 (begin < start since stride < context).
        let mut targets = vec![None; end - begin];
        for p in start..end {
            targets[p - begin - 1] = Some(tokens[p] as usize);
        }
        let values = nll(input, &targets)?;
        for (value, target) in values.iter().zip(&targets) {
            if target.is_some() {
                total += *value as f64;
                scored += 1;
            }
        }
        progress(end, n);
        if end == n {
            break;
        }
        start = end;
        end = (start + stride).min(n);
    }
    let nll = total / scored as f64;
    Ok(PerplexityReport {
        tokens: scored,
        nll,
        perplexity: nll.exp(),
    })
}
