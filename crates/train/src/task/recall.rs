//! Multi-query associative recall (zoology's MQAR; the paper's Table 2 AR column): a causal
//! model trained from scratch to answer each query key with the value paired with it earlier.
//! Loss and accuracy count only the query positions.

use std::marker::PhantomData;

use burn::tensor::Tensor;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_models::AttentionMode;
use hedgehog_tasks::recall::{IGNORE, RecallConfig, RecallSet, recall_accuracy};

use super::lm::{Decoder, LanguageModel};
use super::{
    Captured, DistillBatch, Evaluation, Inner, Task, TaskInfo, argmax_rows, int_tensor,
    masked_cross_entropy, models, to_f32,
};
use crate::error::RunError;
use crate::spec::Spec;

/// Test examples scored per forward pass.
const EVAL_BATCH: usize = 64;

pub struct RecallTask<M> {
    spec: Spec,
    config: RecallConfig,
    train: RecallSet,
    test: RecallSet,
    _model: PhantomData<fn() -> M>,
}

impl<M> RecallTask<M> {
    pub fn new(spec: &Spec) -> Result<Self, RunError> {
        let config = spec.recall_config().expect("dispatched on the task kind");
        Ok(Self {
            spec: spec.clone(),
            train: config.train()?,
            test: config.test()?,
            config,
            _model: PhantomData,
        })
    }

    /// Rows `examples` of `set`: inputs and targets, `[N, T]` each.
    fn rows(set: &RecallSet, examples: &[usize]) -> (Vec<i64>, Vec<i64>) {
        let t = set.seq_len;
        let mut inputs = Vec::with_capacity(examples.len() * t);
        let mut targets = Vec::with_capacity(examples.len() * t);
        for &i in examples {
            inputs.extend_from_slice(&set.inputs[i * t..(i + 1) * t]);
            targets.extend_from_slice(&set.targets[i * t..(i + 1) * t]);
        }
        (inputs, targets)
    }
}

impl<B: AutodiffBackend, M> Task<B> for RecallTask<M>
where
    M: Decoder<B>,
    Inner<B, M>: LanguageModel<B::InnerBackend>,
{
    type Model = M;

    fn info(&self) -> TaskInfo {
        let c = &self.config;
        TaskInfo {
            setting: format!(
                "{} on MQAR (vocab {}, {} tokens, {} key-value pairs, {} training sequences)",
                models::describe(&self.spec.model),
                c.vocab_size,
                c.seq_len,
                c.num_kv_pairs,
                c.train_examples
            ),
            train_examples: c.train_examples,
            eval_examples: c.test_examples,
            tokens_per_example: c.seq_len,
            glue_task: None,
            describe: format!(
                "associative recall: {} train / {} test sequences of {} tokens, {} pairs",
                c.train_examples, c.test_examples, c.seq_len, c.num_kv_pairs
            ),
        }
    }

    fn build_model(&self, device: &B::Device) -> Result<M, RunError> {
        M::build(
            &self.spec,
            self.config.seq_len,
            self.config.vocab_size,
            device,
        )
    }

    fn distill_batch(
        &self,
        model: &M,
        examples: &[usize],
        mode: AttentionMode,
        _seed: u64,
        device: &B::Device,
    ) -> Result<DistillBatch<B>, RunError> {
        let (inputs, _) = Self::rows(&self.train, examples);
        let inputs = int_tensor::<B>(inputs, [examples.len(), self.config.seq_len], device);
        Ok(DistillBatch {
            layers: model.lm_captures(inputs, mode)?,
            query_padding: None,
        })
    }

    fn loss(
        &self,
        model: &M,
        examples: &[usize],
        _seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, RunError> {
        let t = self.config.seq_len;
        let (inputs, targets) = Self::rows(&self.train, examples);
        let inputs = int_tensor::<B>(inputs, [examples.len(), t], device);
        let logits = model
            .lm_forward(inputs, AttentionMode::Configured, false)?
            .output;
        let [b, t, v] = logits.dims();
        masked_cross_entropy(logits.reshape([b * t, v]), &targets, IGNORE, device)
    }

    fn evaluate(&self, model: &Inner<B, M>, device: &B::Device) -> Result<Evaluation, RunError> {
        let t = self.config.seq_len;
        let (mut predictions, mut targets) = (Vec::new(), Vec::new());
        let all: Vec<usize> = (0..self.test.examples).collect();
        for chunk in all.chunks(EVAL_BATCH) {
            let (inputs, chunk_targets) = Self::rows(&self.test, chunk);
            let logits = model
                .lm_forward(
                    int_tensor::<B::InnerBackend>(inputs, [chunk.len(), t], device),
                    AttentionMode::Configured,
                    false,
                )?
                .output;
            let [_, _, v] = logits.dims();
            predictions.extend(
                argmax_rows(&to_f32(logits)?, v)
                    .into_iter()
                    .map(|p| p as i64),
            );
            targets.extend(chunk_targets);
        }
        Ok(Evaluation {
            metrics: [(
                "accuracy".to_string(),
                100.0 * recall_accuracy(&predictions, &targets),
            )]
            .into(),
            headline: "accuracy".into(),
        })
    }

    fn capture(
        &self,
        model: &Inner<B, M>,
        examples: &[usize],
        mode: AttentionMode,
        device: &B::Device,
    ) -> Result<Captured<B::InnerBackend>, RunError> {
        let t = self.config.seq_len;
        let (inputs, _) = Self::rows(&self.test, examples);
        let tokens = inputs[..t].iter().map(|id| id.to_string()).collect();
        let out = model.lm_forward(
            int_tensor::<B::InnerBackend>(inputs, [examples.len(), t], device),
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
}
