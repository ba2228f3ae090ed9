//! Image classification with ViT on ImageNet-style class folders (the ViT-B/16 table; MNIST
//! as the offline stand-in): cross-entropy on the `[CLS]` logits, top-1 accuracy.

use std::path::PathBuf;

use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Tensor, TensorData};
use hedgehog_models::AttentionMode;
use hedgehog_models::vit::Vit;
use hedgehog_tasks::images::{ImageFolder, ImageTransform, load_batch};

use super::{
    Captured, DistillBatch, Evaluation, Inner, Task, TaskInfo, argmax_rows, class_cross_entropy,
    models, subset, to_f32,
};
use crate::error::RunError;
use crate::spec::{Spec, TaskSpec};

/// Validation images scored per forward pass.
const EVAL_BATCH: usize = 64;

pub struct ImageTask {
    spec: Spec,
    train: ImageFolder,
    val: ImageFolder,
    /// Indices into `train` / `val` the run uses.
    train_items: Vec<usize>,
    val_items: Vec<usize>,
    transform: ImageTransform,
    augment: bool,
    workers: usize,
    path: PathBuf,
    /// Patches per image (the model reads these plus `[CLS]`).
    patches: usize,
}

impl ImageTask {
    pub fn new(spec: &Spec) -> Result<Self, RunError> {
        let TaskSpec::Images {
            path,
            transform,
            augment,
            train_examples,
            eval_examples,
            workers,
        } = &spec.task
        else {
            unreachable!("dispatched on the task kind")
        };
        let config = models::vit_config(spec)?;
        let (train, val) = ImageFolder::train_val(path)?;
        let train_items = subset(train.items.len(), *train_examples, spec.seed ^ 0x1A6E);
        // A seeded subset of validation too: MNIST's folders are sorted by class.
        let val_items = subset(val.items.len(), *eval_examples, 0x7E57);
        Ok(Self {
            spec: spec.clone(),
            train,
            val,
            train_items,
            val_items,
            transform: transform.resolve(),
            augment: *augment,
            workers: *workers,
            path: path.clone(),
            patches: config.num_patches(),
        })
    }

    fn images<B: Backend>(
        &self,
        folder: &ImageFolder,
        indices: &[usize],
        augment_seed: Option<u64>,
        device: &B::Device,
    ) -> Result<(Tensor<B, 4>, Vec<usize>), RunError> {
        let batch = load_batch(folder, indices, &self.transform, augment_seed, self.workers)?;
        let images = Tensor::from_data(TensorData::new(batch.images, batch.shape), device);
        Ok((images, batch.labels))
    }
}

impl<B: AutodiffBackend> Task<B> for ImageTask {
    type Model = Vit<B>;

    fn info(&self) -> TaskInfo {
        TaskInfo {
            setting: format!(
                "{} on {} ({} classes, {} training images, {}×{})",
                models::describe(&self.spec.model),
                self.path.display(),
                self.train.classes.len(),
                self.train_items.len(),
                self.transform.size,
                self.transform.size
            ),
            train_examples: self.train_items.len(),
            eval_examples: self.val_items.len(),
            tokens_per_example: self.patches + 1,
            glue_task: None,
            describe: format!(
                "{}: {} train / {} validation images, {} classes",
                self.path.display(),
                self.train_items.len(),
                self.val_items.len(),
                self.train.classes.len()
            ),
        }
    }

    fn build_model(&self, device: &B::Device) -> Result<Vit<B>, RunError> {
        let model = models::vit(&self.spec, self.train.classes.len(), device)?;
        let config = &model.config;
        if config.image_size != self.transform.size
            || config.num_channels != self.transform.channels
        {
            return Err(RunError::Config(format!(
                "the ViT takes {}×{} images with {} channels; task.transform gives {}×{} with {}",
                config.image_size,
                config.image_size,
                config.num_channels,
                self.transform.size,
                self.transform.size,
                self.transform.channels
            )));
        }
        Ok(model)
    }

    fn distill_batch(
        &self,
        model: &Vit<B>,
        examples: &[usize],
        mode: AttentionMode,
        seed: u64,
        device: &B::Device,
    ) -> Result<DistillBatch<B>, RunError> {
        let indices: Vec<usize> = examples.iter().map(|&i| self.train_items[i]).collect();
        let (images, _) =
            self.images::<B>(&self.train, &indices, self.augment.then_some(seed), device)?;
        Ok(DistillBatch {
            layers: model.forward(images, mode, false)?.attention,
            query_padding: None,
        })
    }

    fn loss(
        &self,
        model: &Vit<B>,
        examples: &[usize],
        seed: u64,
        device: &B::Device,
    ) -> Result<Tensor<B, 1>, RunError> {
        let indices: Vec<usize> = examples.iter().map(|&i| self.train_items[i]).collect();
        let (images, labels) =
            self.images::<B>(&self.train, &indices, self.augment.then_some(seed), device)?;
        let logits = model
            .forward(images, AttentionMode::Configured, false)?
            .logits
            .expect("models::vit always attaches a head");
        let classes = labels.into_iter().map(|l| l as i64).collect();
        Ok(class_cross_entropy(logits, classes, device))
    }

    fn evaluate(
        &self,
        model: &Inner<B, Vit<B>>,
        device: &B::Device,
    ) -> Result<Evaluation, RunError> {
        let classes = self.train.classes.len();
        let (mut correct, mut total) = (0usize, 0usize);
        for chunk in self.val_items.chunks(EVAL_BATCH) {
            let (images, labels) =
                self.images::<B::InnerBackend>(&self.val, chunk, None, device)?;
            let logits = model
                .forward(images, AttentionMode::Configured, false)?
                .logits
                .expect("models::vit always attaches a head");
            let predicted = argmax_rows(&to_f32(logits)?, classes);
            correct += predicted
                .iter()
                .zip(&labels)
                .filter(|(p, l)| p == l)
                .count();
            total += labels.len();
        }
        Ok(Evaluation {
            metrics: [(
                "top1".to_string(),
                100.0 * correct as f64 / total.max(1) as f64,
            )]
            .into(),
            headline: "top1".into(),
        })
    }

    fn capture(
        &self,
        model: &Inner<B, Vit<B>>,
        examples: &[usize],
        mode: AttentionMode,
        device: &B::Device,
    ) -> Result<Captured<B::InnerBackend>, RunError> {
        let indices: Vec<usize> = examples.iter().map(|&i| self.val_items[i]).collect();
        let (images, _) = self.images::<B::InnerBackend>(&self.val, &indices, None, device)?;
        let tokens = std::iter::once("[CLS]".to_string())
            .chain((0..self.patches).map(|p| format!("p{p}")))
            .collect();
        let out = model.forward(images, mode, true)?;
        Ok(Captured {
            layers: out.attention,
            lengths: None,
            tokens,
            causal: false,
        })
    }
}
