//! Checkpoint folders of a run: `checkpoints/step-NNNNNNN/` holds the model (HF layout:
//! `config.json` + `model.safetensors`), the AdamW state (`optimizer.mpk`), the LoRA adapters
//! while a LoRA stage is under way (`lora.mpk`) and `progress.json`. A folder is written under
//! a temporary name and renamed, so a kill leaves either the whole checkpoint or none.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::optim::Optimizer;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::Tensor;
use burn::tensor::backend::{AutodiffBackend, Backend};
use hedgehog_models::checkpoint::{self, Checkpoint};
use hedgehog_models::lora::{LoraAdapters, LoraConfig};
use hedgehog_models::{AttentionLayers, ModelError};
use serde::{Deserialize, Serialize};

use crate::error::{RunError, file_error};
use crate::summary::StageResult;

/// The optimiser of every stage: AdamW ([`crate::optim::FusedAdamW`]) through burn's adaptor.
pub type Adam<B, M> = OptimizerAdaptor<crate::optim::FusedAdamW, M, B>;
pub type AdamRecord<B, M> = <Adam<B, M> as Optimizer<M, B>>::Record;

/// Early stopping's memory: the best validation headline and evaluations since it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EarlyState {
    pub best: Option<f64>,
    pub since_best: usize,
}

/// Where a run stands, saved with each checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub stage: usize,
    /// Optimiser steps done in `stage`.
    pub step: usize,
    pub global_step: usize,
    pub results: Vec<StageResult>,
    pub early: EarlyState,
    /// Seconds spent in `stage` before this checkpoint.
    pub stage_seconds: f64,
    /// Parameter ids in module order when saved: resume maps the optimiser state by position.
    pub param_order: Vec<u64>,
}

struct IdCollector(Vec<ParamId>);

impl<B: Backend> ModuleVisitor<B> for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.id);
    }
}

/// Parameter ids of `module` in visiting order.
pub fn param_order<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    let mut collector = IdCollector(Vec::new());
    module.visit(&mut collector);
    collector.0
}

/// The step-ordered checkpoint folders of a run.
pub fn checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let mut found: Vec<(usize, PathBuf)> = std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            let step = name.strip_prefix("step-")?.parse().ok()?;
            e.path()
                .join("progress.json")
                .exists()
                .then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

fn recorder() -> NamedMpkFileRecorder<FullPrecisionSettings> {
    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
}

/// The LoRA adapters of every layer, in layer order (empty when none are attached).
fn lora_adapters<B: Backend, M: AttentionLayers<B>>(model: &M) -> Vec<LoraAdapters<B>> {
    model
        .attention_layers()
        .into_iter()
        .filter_map(|layer| layer.lora.clone())
        .collect()
}

/// Saves `checkpoints/step-<global step>/` and drops all but the newest `keep`.
pub fn save<B, M>(
    dir: &Path,
    model: &M,
    optimizer: Option<&Adam<B, M>>,
    progress: &Progress,
    keep: usize,
) -> Result<(), RunError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Checkpoint<B> + AttentionLayers<B>,
{
    let root = dir.join("checkpoints");
    let target = root.join(format!("step-{:07}", progress.global_step));
    let partial = root.join(format!("step-{:07}.partial", progress.global_step));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(file_error(&partial))?;
    let adapters = lora_adapters(model);
    // The model file holds the base weights; adapters of a LoRA stage under way go beside it.
    if adapters.is_empty() {
        checkpoint::save(model, &partial)?;
    } else {
        let base = model.clone().map_attention_layers(&mut |mut layer| {
            layer.lora = None;
            Ok(layer)
        })?;
        checkpoint::save(&base, &partial)?;
    }
    let record_error = |path: PathBuf| {
        move |e: burn::record::RecorderError| RunError::File {
            path,
            message: e.to_string(),
        }
    };
    if let Some(optimizer) = optimizer {
        recorder()
            .record(optimizer.to_record(), partial.join("optimizer"))
            .map_err(record_error(partial.join("optimizer.mpk")))?;
    }
    if !adapters.is_empty() {
        recorder()
            .record(adapters.into_record(), partial.join("lora"))
            .map_err(record_error(partial.join("lora.mpk")))?;
    }
    let mut progress = progress.clone();
    progress.param_order = param_order(model).iter().map(|id| id.val()).collect();
    let json = serde_json::to_vec_pretty(&progress).expect("progress serialises");
    std::fs::write(partial.join("progress.json"), json).map_err(file_error(&partial))?;
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target).map_err(file_error(&target))?;
    let all = checkpoints(dir);
    for (_, old) in all.iter().take(all.len().saturating_sub(keep)) {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(())
}

/// What a checkpoint restores.
pub struct Restored<B: AutodiffBackend, M: AutodiffModule<B>> {
    pub model: M,
    pub progress: Progress,
    pub optimizer: Option<AdamRecord<B, M>>,
}

/// Loads a checkpoint folder; `lora` is the running stage's adapter config, needed when the
/// folder holds adapters.
pub fn load<B, M>(
    path: &Path,
    lora: Option<&LoraConfig>,
    device: &B::Device,
) -> Result<Restored<B, M>, RunError>
where
    B: AutodiffBackend,
    M: AutodiffModule<B> + Checkpoint<B> + AttentionLayers<B>,
{
    let resume_error =
        |what: &Path, e: String| RunError::Resume(format!("{}: {e}", what.display()));
    let text = std::fs::read_to_string(path.join("progress.json")).map_err(file_error(path))?;
    let progress: Progress =
        serde_json::from_str(&text).map_err(|e| resume_error(path, e.to_string()))?;
    let mut model: M = checkpoint::load(path, None, device)?;
    let lora_path = path.join("lora.mpk");
    if lora_path.exists() {
        let config = lora.ok_or_else(|| {
            resume_error(
                &lora_path,
                "LoRA adapters saved, but the stage being resumed trains no LoRA; was the spec changed?"
                    .into(),
            )
        })?;
        model = hedgehog_models::attach_lora(model, config, device)?;
        let record = recorder()
            .load(path.join("lora"), device)
            .map_err(|e| resume_error(&lora_path, e.to_string()))?;
        let mut loaded = lora_adapters(&model).load_record(record).into_iter();
        model = model.map_attention_layers(&mut |mut layer| {
            layer.lora = Some(loaded.next().ok_or_else(|| {
                ModelError::Config("fewer saved LoRA adapters than layers".into())
            })?);
            Ok(layer)
        })?;
    }
    let optimizer_path = path.join("optimizer.mpk");
    let optimizer = if optimizer_path.exists() {
        let record: AdamRecord<B, M> = recorder()
            .load(path.join("optimizer"), device)
            .map_err(|e| resume_error(&optimizer_path, e.to_string()))?;
        // Parameter ids are fresh after loading: re-key the state by module position.
        let now = param_order(&model);
        let mapping: HashMap<u64, ParamId> =
            progress.param_order.iter().copied().zip(now).collect();
        Some(
            record
                .into_iter()
                .filter_map(|(id, state)| mapping.get(&id.val()).map(|new| (*new, state)))
                .collect(),
        )
    } else {
        None
    };
    Ok(Restored {
        model,
        progress,
        optimizer,
    })
}
