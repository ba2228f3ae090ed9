//! What a run reports: each stage's [`StageResult`] and the run's `summary.json`
//! ([`RunSummary`]), and the attention labels they carry.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::tensor::backend::Backend;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::checkpoint::Checkpoint;
use serde::{Deserialize, Serialize};

use crate::spec::{StageKind, StageSpec, TableId};

/// One stage's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub label: String,
    pub kind: StageKind,
    pub steps: usize,
    pub final_loss: Option<f64>,
    pub attention: String,
    /// Validation metrics (for `analyze`: the layer-averaged measures).
    pub metrics: BTreeMap<String, f64>,
    /// The metric of `metrics` that tables report.
    pub headline: Option<String>,
    /// The row of the report table this stage fills.
    pub row: Option<String>,
    pub seconds: f64,
    pub stopped_early: bool,
    /// `analysis/stage-N.json`, relative to the run folder.
    pub analysis: Option<String>,
    /// A distill stage's per-layer losses at its last step; absent for other stages (and in
    /// summaries written before the field existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_losses: Option<LayerLosses>,
    /// The layers a distill stage's `keep_softmax:` gave softmax back (`softmax_layers.json`
    /// has the losses they were chosen by).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub softmax_layers: Option<Vec<usize>>,
}

/// Per-layer distillation losses on one step's batch (head-averaged, batch-averaged), for the
/// layers that have a linear student; what choosing the layers to keep softmax in reads.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LayerLosses {
    /// The model's index of each distilled layer (softmax layers have no student and no entry).
    pub layers: Vec<usize>,
    /// Per distilled layer: the stage's objective `Σ weight × component`, so their mean is the
    /// step's loss.
    pub loss: Vec<f64>,
    /// Per component (`weight_ce`, `weight_kl`, `output_mse`, unweighted), per distilled layer.
    pub components: BTreeMap<String, Vec<f64>>,
}

impl StageResult {
    /// A stage that ran no step and measured nothing yet, labelled `label`, on `attention`.
    pub(crate) fn empty(stage: &StageSpec, label: &str, attention: String) -> Self {
        Self {
            label: label.to_string(),
            kind: stage.kind,
            steps: 0,
            final_loss: None,
            row: row_label(stage, &attention),
            attention,
            metrics: BTreeMap::new(),
            headline: None,
            seconds: 0.0,
            stopped_early: false,
            analysis: None,
            layer_losses: None,
            softmax_layers: None,
        }
    }

    pub fn headline_value(&self) -> Option<f64> {
        self.headline
            .as_ref()
            .and_then(|h| self.metrics.get(h).copied())
    }
}

/// `summary.json` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: PathBuf,
    pub setting: String,
    pub report_table: Option<TableId>,
    pub glue_task: Option<String>,
    /// The sweep point (dotted key → value), if the spec has a sweep.
    pub sweep: Option<BTreeMap<String, serde_json::Value>>,
    pub parameters: usize,
    pub finished: bool,
    pub stages: Vec<StageResult>,
}

/// Parses a `summary.json`.
pub fn summary_from_json(text: &str) -> Option<RunSummary> {
    serde_json::from_str(text).ok()
}

/// "softmax", "Hedgehog (softmax_split)", one linear attention with softmax kept in some
/// layers ("Hedgehog (softmax_split), softmax in layers 3, 7"), or the per-layer labels
/// joined by " | ".
pub fn attention_label(attention: &[AttentionConfig]) -> String {
    let linear: Vec<&AttentionConfig> = attention
        .iter()
        .filter(|a| **a != AttentionConfig::Softmax)
        .collect();
    let softmax_layers: Vec<String> = (attention.iter().enumerate())
        .filter(|(_, a)| **a == AttentionConfig::Softmax)
        .map(|(layer, _)| layer.to_string())
        .collect();
    match attention.first() {
        None => "softmax".into(),
        Some(first) if attention.iter().all(|a| a == first) => first.label(),
        _ if linear.iter().all(|a| *a == linear[0]) => format!(
            "{}, softmax in layer{} {}",
            linear[0].label(),
            if softmax_layers.len() == 1 { "" } else { "s" },
            softmax_layers.join(", ")
        ),
        _ => attention
            .iter()
            .map(AttentionConfig::label)
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// The label of the attention `model` runs: the per-layer attention stored in its config
/// (`hedgehog_attention`).
pub(crate) fn model_attention_label<B: Backend, M: Checkpoint<B>>(model: &M) -> String {
    let attention: Vec<AttentionConfig> = serde_json::to_value(model.checkpoint_config())
        .ok()
        .and_then(|config| config.get("hedgehog_attention").cloned())
        .and_then(|value| serde_json::from_value(value).ok())
        .unwrap_or_default();
    attention_label(&attention)
}

/// The stage's table row, with `{attention}` replaced by the attention's label (so one row
/// spec serves every point of a sweep over maps).
pub(crate) fn row_label(stage: &StageSpec, attention: &str) -> Option<String> {
    stage
        .row
        .as_ref()
        .map(|row| row.replace("{attention}", attention))
}
