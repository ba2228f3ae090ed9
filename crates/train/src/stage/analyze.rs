//! The `analyze` stage: every layer's attention on validation batches, measured for
//! spikiness (entropy), monotonicity (Spearman ρ, binned curves against q·k) and fidelity
//! (KL from softmax) by `hedgehog-analysis`, written to `analysis/stage-N.json`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::AutodiffModule;
use burn::tensor::backend::AutodiffBackend;
use hedgehog_analysis::{
    AnalysisConfig, AttentionAnalyzer, AttentionMap, AttentionReport, LayerAttention,
};
use hedgehog_models::AttentionMode;

use crate::checkpoint::AdamRecord;
use crate::error::{RunError, file_error};
use crate::spec::{AnalysisSpec, LayerInputs, StageSpec};
use crate::summary::{StageResult, model_attention_label};
use crate::task::{Inner, Task, to_f32};

use super::{Stage, StageRun};

pub(super) struct Analyze;

impl<B: AutodiffBackend, T: Task<B>> Stage<B, T> for Analyze {
    fn run(
        &self,
        run: &mut StageRun<'_, '_, B, T>,
        stage: &StageSpec,
        model: T::Model,
        _: Option<AdamRecord<B, T::Model>>,
    ) -> Result<(T::Model, StageResult), RunError> {
        let started = Instant::now();
        let label = stage.label();
        let attention = model_attention_label::<B, _>(&model);
        let settings = stage.analysis.clone().unwrap_or_default();
        let ctx = run.ctx;
        let (analyzer, example) = measure::<B, T>(
            ctx.task,
            &model.valid(),
            &settings,
            stage.batch_size,
            ctx.info.eval_examples,
            ctx.device(),
        )?;
        let mut report = analyzer.finish(attention.clone());
        report.example = example;
        let (relative, measures) = save(&report, &ctx.dir, run.progress.stage)?;
        run.reporter.line(format!(
            "[{label}] attention measures ({attention}): {} → {relative}",
            measures
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let result = StageResult {
            metrics: measures,
            seconds: started.elapsed().as_secs_f64(),
            analysis: Some(relative),
            ..StageResult::empty(stage, &label, attention)
        };
        Ok((model, result))
    }
}

/// Measures `settings.batches` validation batches of `batch_size` examples; returns the
/// analyzer that holds the measures and the example map kept for the plots.
fn measure<B: AutodiffBackend, T: Task<B>>(
    task: &T,
    model: &Inner<B, T::Model>,
    settings: &AnalysisSpec,
    batch_size: usize,
    eval_examples: usize,
    device: &B::Device,
) -> Result<(AttentionAnalyzer, Option<AttentionMap>), RunError> {
    let examples = (settings.batches * batch_size).min(eval_examples);
    if examples == 0 {
        return Err(RunError::Config(
            "analyze: no validation examples to measure".into(),
        ));
    }
    let config = AnalysisConfig {
        bins: settings.bins,
        score_range: settings.score_range,
    };
    let indices: Vec<usize> = (0..examples).collect();
    let mut analyzer: Option<AttentionAnalyzer> = None;
    let mut example = None;
    for chunk in indices.chunks(batch_size) {
        let mode = match settings.layer_inputs {
            LayerInputs::Model => AttentionMode::Configured,
            LayerInputs::Softmax => AttentionMode::Distill,
        };
        let captured = task.capture(model, chunk, mode, device)?;
        if captured.layers.is_empty() {
            return Err(RunError::Config(
                "analyze: the model returned no attention to measure".into(),
            ));
        }
        let layers = captured.layers.len();
        for (layer, capture) in captured.layers.into_iter().enumerate() {
            let shape = capture.teacher.dims();
            let heads = shape[1];
            let analyzer = analyzer
                .get_or_insert_with(|| AttentionAnalyzer::new(layers, heads, config.clone()));
            let teacher = to_f32(capture.teacher)?;
            let student = capture.student.map(to_f32).transpose()?;
            let kernel = capture.kernel.map(to_f32).transpose()?;
            let scores = to_f32(capture.scores)?;
            if example.is_none() && layer == settings.example_layer.min(layers - 1) {
                example = Some(example_map(
                    &teacher,
                    student.as_deref(),
                    shape,
                    layer,
                    settings.example_head.min(heads - 1),
                    captured.lengths.as_ref().map_or(shape[2], |l| l[0]),
                    &captured.tokens,
                ));
            }
            analyzer.add(
                layer,
                &LayerAttention {
                    shape,
                    teacher: &teacher,
                    student: student.as_deref(),
                    kernel: kernel.as_deref(),
                    scores: &scores,
                    causal: captured.causal,
                    lengths: captured.lengths.as_deref(),
                },
            )?;
        }
    }
    let analyzer = analyzer.expect("at least one batch was measured");
    Ok((analyzer, example))
}

/// Writes `report` to `analysis/stage-<stage>.json` in `run_dir`; returns that path relative to
/// `run_dir` and the layer-averaged measures.
fn save(
    report: &AttentionReport,
    run_dir: &Path,
    stage: usize,
) -> Result<(String, BTreeMap<String, f64>), RunError> {
    let folder = run_dir.join("analysis");
    std::fs::create_dir_all(&folder).map_err(file_error(&folder))?;
    let relative = format!("analysis/stage-{stage}.json");
    let path = run_dir.join(&relative);
    let partial = path.with_extension("json.partial");
    report.save(&partial)?;
    std::fs::rename(&partial, &path).map_err(file_error(&path))?;
    let summary = report.summary();
    let measures = [
        ("teacher_entropy", summary.teacher_entropy),
        ("student_entropy", summary.student_entropy),
        ("kl", summary.kl),
        ("teacher_spearman", summary.teacher_spearman),
        ("student_spearman", summary.student_spearman),
        ("kernel_spearman", summary.kernel_spearman),
    ]
    .into_iter()
    .filter_map(|(name, value)| value.map(|v| (name.to_string(), v)))
    .collect();
    Ok((relative, measures))
}

/// One head's `[size, size]` maps of the first example (its real tokens only).
fn example_map(
    teacher: &[f32],
    student: Option<&[f32]>,
    shape: [usize; 4],
    layer: usize,
    head: usize,
    size: usize,
    tokens: &[String],
) -> AttentionMap {
    let [_, _, t, s] = shape;
    let cut = |values: &[f32]| -> Vec<f32> {
        // Example 0, head `head`: rows 0..size, columns 0..size.
        let base = head * t * s;
        (0..size)
            .flat_map(|i| values[base + i * s..base + i * s + size].iter().copied())
            .collect()
    };
    AttentionMap {
        layer,
        head,
        // A map's labels must cover every row, or there are none.
        tokens: if tokens.len() >= size {
            tokens[..size].to_vec()
        } else {
            Vec::new()
        },
        size,
        teacher: cut(teacher),
        student: student.map(cut),
    }
}
