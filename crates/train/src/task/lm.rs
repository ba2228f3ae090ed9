//! Language modelling on a WikiText-format corpus: contiguous training blocks, next-token loss,
//! sliding-window validation perplexity. The model is GPT-2 (GPT-2 BPE) or a Llama-style
//! decoder (its GGUF tokenizer, or GPT-2 BPE for one built from a preset).

use std::marker::PhantomData;
use std::path::PathBuf;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::generation::{GenerationConfig, Sampling, generate_profiled};
use hedgehog_models::tokenizer::TextTokenizer;
use hedgehog_models::{AttentionMode, ModelError};
use hedgehog_tasks::lm::{self, CorpusSplit, TokenFile};

pub use super::decoder::{Decoder, LanguageModel};
use super::logits::logit_distillation_loss;
use super::{
    Captured, DistillBatch, DistillValue, Evaluation, Inner, Task, TaskInfo, TextGenerator,
    int_tensor, models,
};
use crate::error::{RunError, file_error};
use crate::spec::{Family, LogitDistillation, Spec, TaskSpec};

/// The tokenizer a run's corpus is read with, and its name in cache files.
fn tokenizer_for(spec: &Spec) -> Result<(TextTokenizer, String), RunError> {
    if let Some(path) = &spec.model.pretrained
        && path.extension().is_some_and(|e| e == "gguf")
    {
        let file = hedgehog_models::gguf::GgufFile::open(path).map_err(ModelError::from)?;
        let tokenizer = hedgehog_models::llama::gguf_tokenizer(&file)?;
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        return Ok((tokenizer, format!("gguf-{stem}")));
    }
    // A Llama checkpoint directory brings its tokenizer (HF's, or the one a run converted
    // from a GGUF file wrote into `final/`); its cache name follows the file's content, so two
    // directories with the same tokenizer share token caches.
    if let Some(dir) = &spec.model.pretrained
        && spec.model.family == Family::Llama
        && dir.join("tokenizer.json").is_file()
    {
        let path = dir.join("tokenizer.json");
        let bytes = std::fs::read(&path).map_err(file_error(&path))?;
        let mut hasher = std::hash::DefaultHasher::new();
        std::hash::Hash::hash(&bytes, &mut hasher);
        let tokenizer = TextTokenizer::from_tokenizer_json(&path).map_err(|e| RunError::File {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let name = format!("tokenizer-json-{:016x}", std::hash::Hasher::finish(&hasher));
        return Ok((tokenizer, name));
    }
    let tokenizer =
        TextTokenizer::gpt2().map_err(|e| RunError::Config(format!("GPT-2 tokenizer: {e}")))?;
    Ok((tokenizer, lm::GPT2_TOKENIZER.to_string()))
}

/// A split's token ids: the cached file as it is, or remapped to a smaller vocabulary.
enum Tokens {
    File(TokenFile),
    Mapped(Vec<u32>),
}

impl Tokens {
    fn tokens(&self) -> &[u32] {
        match self {
            Self::File(file) => file.tokens(),
            Self::Mapped(tokens) => tokens,
        }
    }

    fn len(&self) -> usize {
        self.tokens().len()
    }
}

/// The `limit − 1` most frequent training tokens get ids `0..limit − 1` by falling count (ties
/// by token id); every other token maps to `limit − 1`. Returns the remapping and, per new id,
/// the original token (`None` for the merged id).
fn frequency_vocabulary(
    train: &[u32],
    limit: usize,
) -> (std::collections::HashMap<u32, u32>, Vec<Option<u32>>) {
    let mut counts: std::collections::HashMap<u32, u64> = std::collections::HashMap::new();
    for &token in train {
        *counts.entry(token).or_default() += 1;
    }
    let mut ranked: Vec<(u32, u64)> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked.truncate(limit - 1);
    let mapping = ranked
        .iter()
        .enumerate()
        .map(|(new, (old, _))| (*old, new as u32))
        .collect();
    let mut originals: Vec<Option<u32>> = ranked.iter().map(|(old, _)| Some(*old)).collect();
    originals.push(None);
    (mapping, originals)
}

pub struct LmTask<M> {
    spec: Spec,
    train: Tokens,
    valid: Tokens,
    /// Per model id, the tokenizer's id (`None`: the merged rare-token id); empty = identity.
    originals: Vec<Option<u32>>,
    context: usize,
    stride: usize,
    eval_tokens: Option<usize>,
    tokenizer: TextTokenizer,
    vocab: usize,
    _model: PhantomData<fn() -> M>,
}

impl<M> LmTask<M> {
    pub fn new(spec: &Spec) -> Result<Self, RunError> {
        let TaskSpec::LanguageModeling {
            path,
            context,
            stride_divisor,
            cache,
            eval_tokens,
            vocab_limit,
        } = &spec.task
        else {
            unreachable!("dispatched on the task kind")
        };
        let cache = cache.clone().unwrap_or_else(|| PathBuf::from("data/cache"));
        let (tokenizer, name) = tokenizer_for(spec)?;
        let read = |split| -> Result<TokenFile, RunError> {
            let source = lm::split_source(path, split)?;
            Ok(lm::token_file(&source, &name, &cache, |text| {
                tokenizer
                    .encode(text)
                    .map(|e| e.ids)
                    .map_err(|e| hedgehog_tasks::DataError::Tokenizer(e.to_string()))
            })?)
        };
        let (train, valid) = (read(CorpusSplit::Train)?, read(CorpusSplit::Valid)?);
        let (train, valid, originals, vocab) = match vocab_limit {
            Some(limit) => {
                let (mapping, originals) = frequency_vocabulary(train.tokens(), *limit);
                let merged = (*limit - 1) as u32;
                let remap = |file: &TokenFile| -> Vec<u32> {
                    file.tokens()
                        .iter()
                        .map(|t| mapping.get(t).copied().unwrap_or(merged))
                        .collect()
                };
                let (train, valid) = (remap(&train), remap(&valid));
                (
                    Tokens::Mapped(train),
                    Tokens::Mapped(valid),
                    originals,
                    *limit,
                )
            }
            None => (
                Tokens::File(train),
                Tokens::File(valid),
                Vec::new(),
                tokenizer.vocab_size(),
            ),
        };
        if lm::block_count(train.len(), *context) == 0 {
            return Err(RunError::Config(format!(
                "the training split has {} tokens, fewer than one block of context {context}",
                train.len()
            )));
        }
        Ok(Self {
            spec: spec.clone(),
            vocab,
            train,
            valid,
            originals,
            context: *context,
            stride: (*context / *stride_divisor).max(1),
            eval_tokens: *eval_tokens,
            tokenizer,
            _model: PhantomData,
        })
    }

    fn path(&self) -> PathBuf {
        match &self.spec.task {
            TaskSpec::LanguageModeling { path, .. } => path.clone(),
            _ => unreachable!("an LM task"),
        }
    }

    /// A model id as text.
    fn token_text(&self, id: u32) -> String {
        let original = if self.originals.is_empty() {
            Some(id)
        } else {
            self.originals.get(id as usize).copied().flatten()
        };
        match original {
            Some(id) => self
                .tokenizer
                .decode(&[id])
                .unwrap_or_else(|_| format!("#{id}")),
            None => "<rare>".into(),
        }
    }

    fn valid_tokens(&self) -> &[u32] {
        let tokens = self.valid.tokens();
        &tokens[..self.eval_tokens.unwrap_or(tokens.len()).min(tokens.len())]
    }

    /// Inputs and next-token targets of training blocks `examples`, `[N, T]` each.
    fn blocks(&self, tokens: &[u32], examples: &[usize]) -> (Vec<i64>, Vec<i64>) {
        let mut inputs = Vec::with_capacity(examples.len() * self.context);
        let mut targets = Vec::with_capacity(examples.len() * self.context);
        for &index in examples {
            let (x, y) = lm::block(tokens, self.context, index);
            inputs.extend(x.iter().map(|&t| t as i64));
            targets.extend(y.iter().map(|&t| t as i64));
        }
        (inputs, targets)
    }
}

impl<B: AutodiffBackend, M> Task<B> for LmTask<M>
where
    M: Decoder<B>,
    Inner<B, M>: LanguageModel<B::InnerBackend>,
{
    type Model = M;

    fn info(&self) -> TaskInfo {
        let path = self.path();
        TaskInfo {
            setting: format!(
                "{} on {} (WikiText format), context {}{}",
                models::describe(&self.spec.model),
                path.display(),
                self.context,
                if self.originals.is_empty() {
                    String::new()
                } else {
                    format!(", {}-token vocabulary (rarer tokens merged)", self.vocab)
                }
            ),
            train_examples: lm::block_count(self.train.len(), self.context),
            eval_examples: lm::block_count(self.valid_tokens().len(), self.context),
            tokens_per_example: self.context,
            glue_task: None,
            describe: format!(
                "{}: {} train / {} validation tokens, blocks of {}",
                path.display(),
                self.train.len(),
                self.valid_tokens().len(),
                self.context
            ),
        }
    }

    fn build_model(&self, device: &B::Device) -> Result<M, RunError> {
        M::build(&self.spec, self.context, self.vocab, device)
    }

    fn loss(
        &self,
        model: &M,
        examples: &[usize],
        _seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, RunError> {
        let (inputs, targets) = self.blocks(self.train.tokens(), examples);
        let n = examples.len();
        let inputs = int_tensor::<B>(inputs, [n, self.context], device);
        let targets: Vec<Option<usize>> = targets.iter().map(|&t| Some(t as usize)).collect();
        Ok(model.lm_loss(inputs, &targets, AttentionMode::Configured)?)
    }

    fn distill_batch(
        &self,
        model: &M,
        examples: &[usize],
        mode: AttentionMode,
        _seed: u64,
        device: &B::Device,
    ) -> Result<DistillBatch<B>, RunError> {
        let (inputs, _) = self.blocks(self.train.tokens(), examples);
        let inputs = int_tensor::<B>(inputs, [examples.len(), self.context], device);
        Ok(DistillBatch {
            layers: model.lm_captures(inputs, mode)?,
            query_padding: None,
        })
    }

    fn teacher(&self, device: &B::Device) -> Result<Inner<B, M>, RunError> {
        if self.spec.model.pretrained.is_none() {
            return Err(RunError::Config(
                "logit distillation's teacher is the pretrained model: give model.pretrained"
                    .into(),
            ));
        }
        let mut spec = self.spec.clone();
        spec.attention = vec![AttentionConfig::Softmax];
        Ok(M::build(&spec, self.context, self.vocab, device)?.valid())
    }

    fn logit_distillation_loss(
        &self,
        model: &M,
        teacher: &Inner<B, M>,
        examples: &[usize],
        weights: &LogitDistillation,
        device: &B::Device,
    ) -> Result<DistillValue<B>, RunError> {
        let (inputs, targets) = self.blocks(self.train.tokens(), examples);
        let shape = [examples.len(), self.context];
        let teacher_logits = teacher
            .lm_forward(
                int_tensor::<B::InnerBackend>(inputs.clone(), shape, device),
                AttentionMode::Configured,
                false,
            )?
            .output;
        let student_logits = model
            .lm_forward(
                int_tensor::<B>(inputs, shape, device),
                AttentionMode::Configured,
                false,
            )?
            .output;
        logit_distillation_loss(
            student_logits,
            Tensor::from_inner(teacher_logits),
            &targets,
            weights,
        )
    }

    fn evaluate(&self, model: &Inner<B, M>, device: &B::Device) -> Result<Evaluation, RunError> {
        let report = lm::perplexity_from_nll::<B::InnerBackend>(
            self.valid_tokens(),
            self.context,
            self.stride,
            device,
            |window, targets| model.token_nll(window, targets),
            |_, _| {},
        )?;
        Ok(Evaluation {
            metrics: [
                ("perplexity".to_string(), report.perplexity),
                ("nll".to_string(), report.nll),
            ]
            .into(),
            headline: "perplexity".into(),
        })
    }

    fn capture(
        &self,
        model: &Inner<B, M>,
        examples: &[usize],
        mode: AttentionMode,
        device: &B::Device,
    ) -> Result<Captured<B::InnerBackend>, RunError> {
        let (inputs, _) = self.blocks(self.valid_tokens(), examples);
        let first: Vec<u32> = inputs[..self.context].iter().map(|&t| t as u32).collect();
        let tokens = first.iter().map(|&id| self.token_text(id)).collect();
        let out = model.lm_forward(
            int_tensor::<B::InnerBackend>(inputs, [examples.len(), self.context], device),
            mode,
            true,
        )?;
        Ok(Captured {
            layers: out.attention,
            lengths: None,
            tokens,
            causal: true,
        })
    }

    fn text_generator<'m>(
        &'m self,
        model: &'m Inner<B, M>,
        device: &'m B::Device,
    ) -> Result<TextGenerator<'m>, RunError> {
        if !self.originals.is_empty() {
            return Err(RunError::Config(
                "the model reads a remapped vocabulary (task.vocab_limit), so it cannot read \
                 or write the tokenizer's text; remove vocab_limit"
                    .into(),
            ));
        }
        let validation_text = lm::split_source(&self.path(), CorpusSplit::Valid)?.text()?;
        Ok(TextGenerator {
            tokenizer: &self.tokenizer,
            validation_text,
            generate: Box::new(move |prompt: &[u32], new_tokens: usize| {
                let config = GenerationConfig {
                    max_new_tokens: new_tokens,
                    sampling: Sampling::Greedy,
                    seed: 0,
                    stop_token: None,
                };
                Ok(generate_profiled(model, prompt, &config, device)?)
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::frequency_vocabulary;

    #[test]
    fn frequent_tokens_keep_ids_by_rank_and_the_rest_share_one() {
        // Counts: 7 → 3, 5 → 2, 9 → 2, 1 → 1.
        let (mapping, originals) = frequency_vocabulary(&[7, 5, 7, 9, 1, 7, 5, 9], 3);
        assert_eq!(mapping.get(&7), Some(&0));
        assert_eq!(mapping.get(&5), Some(&1), "ties go to the smaller token id");
        assert_eq!(mapping.get(&9), None);
        assert_eq!(originals, vec![Some(7), Some(5), None]);
    }
}
