//! GLUE with BERT: sentences (or pairs) tokenised with WordPiece, a classification head on
//! the pooled `[CLS]` output (a regression head with squared error for STS-B), and the task's
//! metrics on the dev set.

use std::path::{Path, PathBuf};

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Bool, Int, Tensor, TensorData};
use hedgehog_models::AttentionMode;
use hedgehog_models::bert::Bert;
use hedgehog_models::tokenizer::TextTokenizer;
use hedgehog_tasks::glue::metrics::{Predictions, task_metrics};
use hedgehog_tasks::glue::{GlueTask as GlueName, Label, Split, task_dir};

use super::{
    Captured, DistillBatch, Evaluation, Inner, Task, TaskInfo, argmax_rows, class_cross_entropy,
    models, subset, to_f32,
};
use crate::error::RunError;
use crate::spec::{Spec, TaskSpec};

/// Dev examples scored per forward pass.
const EVAL_BATCH: usize = 32;

/// One encoded example.
#[derive(Clone, Debug)]
struct Encoded {
    ids: Vec<u32>,
    types: Vec<u32>,
    label: Label,
}

/// A padded batch: ids, token types, mask (true = real token), lengths.
struct Padded<B: Backend> {
    ids: Tensor<B, 2, Int>,
    types: Tensor<B, 2, Int>,
    mask: Tensor<B, 2, Bool>,
    lengths: Vec<usize>,
}

pub struct GlueTask {
    spec: Spec,
    task: GlueName,
    train: Vec<Encoded>,
    dev: Vec<Encoded>,
    tokenizer: TextTokenizer,
    max_length: usize,
    path: PathBuf,
}

/// `tokenizer.json` (or `vocab.txt`, lower-cased) from `explicit`, else from the pretrained dir.
fn load_tokenizer(
    explicit: Option<&Path>,
    pretrained: Option<&Path>,
) -> Result<TextTokenizer, RunError> {
    let candidates: Vec<PathBuf> = match (explicit, pretrained) {
        (Some(path), _) => vec![path.to_path_buf()],
        (None, Some(dir)) => vec![dir.join("tokenizer.json"), dir.join("vocab.txt")],
        (None, None) => {
            return Err(RunError::Config(
                "task.tokenizer: a BERT built from a preset needs a tokenizer (tokenizer.json or vocab.txt)".into(),
            ));
        }
    };
    let path = candidates
        .iter()
        .find(|p| p.exists())
        .ok_or_else(|| RunError::File {
            path: candidates[0].clone(),
            message: "no tokenizer.json or vocab.txt here; set task.tokenizer".into(),
        })?;
    let tokenizer = if path.extension().is_some_and(|e| e == "json") {
        TextTokenizer::from_tokenizer_json(path)
    } else {
        TextTokenizer::from_bert_vocab(path, true)
    };
    tokenizer.map_err(|e| RunError::File {
        path: path.clone(),
        message: e.to_string(),
    })
}

impl GlueTask {
    pub fn new(spec: &Spec) -> Result<Self, RunError> {
        let TaskSpec::Glue {
            path,
            task,
            max_length,
            train_examples,
            eval_examples,
            tokenizer,
        } = &spec.task
        else {
            unreachable!("dispatched on the task kind")
        };
        let tokenizer = load_tokenizer(tokenizer.as_deref(), spec.model.pretrained.as_deref())?;
        let dir = task_dir(path, *task);
        let encode = |split, limit: Option<usize>, seed| -> Result<Vec<Encoded>, RunError> {
            let examples = task.load(&dir, split)?;
            subset(examples.len(), limit, seed)
                .into_iter()
                .map(|i| {
                    let example = &examples[i];
                    let encoding = match &example.text_b {
                        Some(b) => tokenizer.encode_pair(&example.text_a, b),
                        None => tokenizer.encode(&example.text_a),
                    }
                    .map_err(|e| {
                        RunError::Config(format!("tokenizing GLUE {}: {e}", task.folder()))
                    })?;
                    let (mut ids, mut types) = (encoding.ids, encoding.type_ids);
                    if ids.len() > *max_length {
                        // Keep the closing [SEP]: cut the tail of the text before it.
                        let last = (ids[ids.len() - 1], types[types.len() - 1]);
                        ids.truncate(max_length - 1);
                        types.truncate(max_length - 1);
                        ids.push(last.0);
                        types.push(last.1);
                    }
                    Ok(Encoded {
                        ids,
                        types,
                        label: example.label.clone(),
                    })
                })
                .collect()
        };
        // The dev subset is the first N (not a random draw) so every run scores the same rows.
        let train = encode(Split::Train, *train_examples, spec.seed ^ 0x5EED)?;
        let mut dev = encode(Split::Dev, None, 0)?;
        dev.truncate(eval_examples.unwrap_or(dev.len()));
        if train.is_empty() || dev.is_empty() {
            return Err(RunError::Config(format!(
                "GLUE {}: no training or dev examples under {}",
                task.folder(),
                dir.display()
            )));
        }
        Ok(Self {
            spec: spec.clone(),
            task: *task,
            train,
            dev,
            tokenizer,
            max_length: *max_length,
            path: path.clone(),
        })
    }

    fn pad<B: Backend>(examples: &[&Encoded], device: &B::Device) -> Padded<B> {
        let n = examples.len();
        let t = examples.iter().map(|e| e.ids.len()).max().unwrap_or(1);
        let (mut ids, mut types, mut mask) =
            (vec![0i64; n * t], vec![0i64; n * t], vec![false; n * t]);
        for (row, example) in examples.iter().enumerate() {
            for (j, (&id, &ty)) in example.ids.iter().zip(&example.types).enumerate() {
                ids[row * t + j] = id as i64;
                types[row * t + j] = ty as i64;
                mask[row * t + j] = true;
            }
        }
        let int = |v: Vec<i64>| {
            Tensor::<B, 2, Int>::from_data(
                TensorData::new(v, [n, t]).convert::<B::IntElem>(),
                device,
            )
        };
        Padded {
            ids: int(ids),
            types: int(types),
            mask: Tensor::from_data(TensorData::new(mask, [n, t]), device),
            lengths: examples.iter().map(|e| e.ids.len()).collect(),
        }
    }

    fn is_regression(&self) -> bool {
        self.task.num_labels() == 1
    }
}

impl<B: AutodiffBackend> Task<B> for GlueTask {
    type Model = Bert<B>;

    fn info(&self) -> TaskInfo {
        TaskInfo {
            setting: format!(
                "{} on GLUE {} from {} ({} training examples), max length {}",
                models::describe(&self.spec.model),
                self.task.folder(),
                self.path.display(),
                self.train.len(),
                self.max_length
            ),
            train_examples: self.train.len(),
            eval_examples: self.dev.len(),
            tokens_per_example: self.max_length,
            glue_task: Some(self.task.folder().to_string()),
            describe: format!(
                "GLUE {}: {} train / {} dev examples",
                self.task.folder(),
                self.train.len(),
                self.dev.len()
            ),
        }
    }

    fn build_model(&self, device: &B::Device) -> Result<Bert<B>, RunError> {
        models::bert(&self.spec, self.task.num_labels(), device)
    }

    fn distill_batch(
        &self,
        model: &Bert<B>,
        examples: &[usize],
        mode: AttentionMode,
        _seed: u64,
        device: &B::Device,
    ) -> Result<DistillBatch<B>, RunError> {
        let batch: Vec<&Encoded> = examples.iter().map(|&i| &self.train[i]).collect();
        let padded = Self::pad::<B>(&batch, device);
        let padding = padded.mask.clone().bool_not();
        let out = model.encode(
            padded.ids,
            Some(padded.types),
            Some(padded.mask),
            mode,
            false,
        )?;
        Ok(DistillBatch {
            layers: out.attention,
            query_padding: Some(padding),
        })
    }

    fn loss(
        &self,
        model: &Bert<B>,
        examples: &[usize],
        _seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, RunError> {
        let batch: Vec<&Encoded> = examples.iter().map(|&i| &self.train[i]).collect();
        let padded = Self::pad::<B>(&batch, device);
        let out = model.encode(
            padded.ids,
            Some(padded.types),
            Some(padded.mask),
            AttentionMode::Configured,
            false,
        )?;
        let logits = model.classify(&out)?; // [N, labels]
        let n = batch.len();
        if self.is_regression() {
            let scores: Vec<f32> = batch
                .iter()
                .map(|e| match e.label {
                    Label::Score(s) => s as f32,
                    Label::Class(c) => c as f32,
                })
                .collect();
            let target = Tensor::<B, 2>::from_data(TensorData::new(scores, [n, 1]), device);
            return Ok((logits - target).powi_scalar(2).mean());
        }
        let classes: Vec<i64> = batch
            .iter()
            .map(|e| match e.label {
                Label::Class(c) => c as i64,
                Label::Score(s) => s as i64,
            })
            .collect();
        Ok(class_cross_entropy(logits, classes, device))
    }

    fn evaluate(
        &self,
        model: &Inner<B, Bert<B>>,
        device: &B::Device,
    ) -> Result<Evaluation, RunError> {
        let labels = self.task.num_labels();
        let (mut predicted, mut scores) = (Vec::new(), Vec::new());
        for chunk in self.dev.chunks(EVAL_BATCH) {
            let batch: Vec<&Encoded> = chunk.iter().collect();
            let padded = Self::pad::<B::InnerBackend>(&batch, device);
            let out = model.encode(
                padded.ids,
                Some(padded.types),
                Some(padded.mask),
                AttentionMode::Configured,
                false,
            )?;
            let logits = to_f32(model.classify(&out)?)?;
            if labels == 1 {
                scores.extend(logits.iter().map(|&v| v as f64));
            } else {
                predicted.extend(argmax_rows(&logits, labels));
            }
        }
        let predictions = if labels == 1 {
            Predictions::Scores {
                predicted: scores,
                labels: self
                    .dev
                    .iter()
                    .map(|e| match e.label {
                        Label::Score(s) => s,
                        Label::Class(c) => c as f64,
                    })
                    .collect(),
            }
        } else {
            Predictions::Classes {
                predicted,
                labels: self
                    .dev
                    .iter()
                    .map(|e| match e.label {
                        Label::Class(c) => c,
                        Label::Score(s) => s as usize,
                    })
                    .collect(),
            }
        };
        let (metrics, headline) = task_metrics(self.task, &predictions);
        let headline_name = match self.task.headline() {
            hedgehog_tasks::glue::Headline::Matthews => "matthews",
            hedgehog_tasks::glue::Headline::Accuracy => "accuracy",
            hedgehog_tasks::glue::Headline::F1Accuracy => "f1_accuracy",
            hedgehog_tasks::glue::Headline::PearsonSpearman => "pearson_spearman",
        };
        let mut metrics: std::collections::BTreeMap<String, f64> = metrics
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        metrics.insert(headline_name.to_string(), headline);
        Ok(Evaluation {
            metrics,
            headline: headline_name.into(),
        })
    }

    fn capture(
        &self,
        model: &Inner<B, Bert<B>>,
        examples: &[usize],
        mode: AttentionMode,
        device: &B::Device,
    ) -> Result<Captured<B::InnerBackend>, RunError> {
        let batch: Vec<&Encoded> = examples.iter().map(|&i| &self.dev[i]).collect();
        let padded = Self::pad::<B::InnerBackend>(&batch, device);
        let tokens = batch[0]
            .ids
            .iter()
            .map(|&id| {
                self.tokenizer
                    .decode(&[id])
                    .unwrap_or_else(|_| format!("#{id}"))
            })
            .collect();
        let out = model.encode(
            padded.ids,
            Some(padded.types),
            Some(padded.mask),
            mode,
            true,
        )?;
        Ok(Captured {
            layers: out.attention,
            lengths: Some(padded.lengths),
            tokens,
            causal: false,
        })
    }
}
