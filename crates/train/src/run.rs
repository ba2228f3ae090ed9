//! The pipeline behind `hedgehog run`: stages of training, distillation, finetuning and
//! evaluation over one model, with a run folder, checkpoints and exact resume.
//!
//! The loop is our own rather than burn-train's `Learner`: distillation trains on per-layer
//! attention weights with the base frozen, stages switch the model's attention in the middle of
//! a run, and exact resume needs the data order and dropout seeds to be pure functions of
//! (seed, stage, step), which a hand-written loop makes plain.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::{AutodiffModule, Module, ModuleVisitor, Param, ParamId};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, Optimizer};
use burn::record::{FullPrecisionSettings, NamedMpkFileRecorder, Recorder};
use burn::tensor::backend::{AutodiffBackend, Backend};
use burn::tensor::{Int, Tensor, TensorData};
use hedgehog_attention::AttentionConfig;
use hedgehog_attention::distill::{self, Reduction, RowLoss};
use hedgehog_models::AttentionMode;
use hedgehog_models::checkpoint;
use hedgehog_models::gpt2::{Gpt2, Gpt2Config};
use hedgehog_tasks::lm::{self, CorpusSplit};
use rand::SeedableRng;
use rand::prelude::*;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::spec::{OptimizerSpec, Preset, Spec, StageKind, StageSpec, TaskSpec, Trainable};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Model(#[from] hedgehog_models::ModelError),
    #[error(transparent)]
    Data(#[from] hedgehog_tasks::DataError),
    #[error(transparent)]
    Attention(#[from] hedgehog_attention::AttentionError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Diverged(String),
    #[error("{0}")]
    Resume(String),
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |e| RunError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// How `run` is asked to behave.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// `results/` by default.
    pub results_dir: PathBuf,
    /// Continue the newest run of this spec from its last checkpoint.
    pub resume: bool,
    /// Print progress lines.
    pub verbose: bool,
}

/// One stage's outcome.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageResult {
    pub label: String,
    pub kind: StageKind,
    pub steps: usize,
    pub final_loss: Option<f64>,
    pub validation_perplexity: Option<f64>,
    pub attention: String,
}

/// `summary.json` of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub name: String,
    pub run_dir: PathBuf,
    pub stages: Vec<StageResult>,
}

/// Where a run stands, saved with each checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Progress {
    stage: usize,
    /// Optimiser steps done in `stage`.
    step: usize,
    global_step: usize,
    results: Vec<StageResult>,
    /// Parameter ids in module order when saved: resume maps the optimiser state by position.
    param_order: Vec<u64>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes).map_err(file_error(&partial))?;
    std::fs::rename(&partial, path).map_err(file_error(path))
}

/// A fresh run folder `results/<name>/run-<n>`, or the newest one when resuming.
fn run_dir(spec: &Spec, options: &RunOptions) -> Result<PathBuf, RunError> {
    let base = options.results_dir.join(&spec.name);
    std::fs::create_dir_all(&base).map_err(file_error(&base))?;
    let mut existing: Vec<(usize, PathBuf)> = std::fs::read_dir(&base)
        .map_err(file_error(&base))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("run-")
                .and_then(|n| n.parse().ok())
                .map(|n| (n, e.path()))
        })
        .collect();
    existing.sort();
    if options.resume {
        return existing.pop().map(|(_, p)| p).ok_or_else(|| {
            RunError::Resume(format!(
                "--resume: no earlier run of `{}` under {}",
                spec.name,
                base.display()
            ))
        });
    }
    let next = existing.last().map_or(1, |(n, _)| n + 1);
    let dir = base.join(format!("run-{next:03}"));
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    Ok(dir)
}

struct IdCollector(Vec<ParamId>);

impl<B: Backend> ModuleVisitor<B> for IdCollector {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        self.0.push(param.id);
    }
}

fn param_order<B: Backend, M: Module<B>>(module: &M) -> Vec<ParamId> {
    let mut collector = IdCollector(Vec::new());
    module.visit(&mut collector);
    collector.0
}

/// The `--set`-resolved corpus, tokenised with GPT-2 BPE.
struct Corpus {
    train: lm::TokenFile,
    valid: lm::TokenFile,
    context: usize,
    stride: usize,
}

fn load_corpus(spec: &Spec) -> Result<Corpus, RunError> {
    let TaskSpec::LanguageModeling {
        path,
        context,
        stride_divisor,
        cache,
    } = &spec.task;
    let cache = cache.clone().unwrap_or_else(|| PathBuf::from("data/cache"));
    Ok(Corpus {
        train: lm::gpt2_split_tokens(path, CorpusSplit::Train, &cache)?,
        valid: lm::gpt2_split_tokens(path, CorpusSplit::Valid, &cache)?,
        context: *context,
        stride: (*context / *stride_divisor).max(1),
    })
}

fn initial_model<B: Backend>(
    spec: &Spec,
    context: usize,
    device: &B::Device,
) -> Result<Gpt2<B>, RunError> {
    let attention = spec.attention.clone();
    Ok(match (&spec.model.pretrained, spec.model.preset) {
        (Some(dir), _) => Gpt2::from_pretrained(dir, Some(attention), device)?,
        (None, Some(preset)) => {
            let mut config = match preset {
                Preset::Gpt2 => Gpt2Config::gpt2(),
                Preset::Gpt2CpuSmall => Gpt2Config::gpt2_cpu_small(),
                Preset::Gpt2Tiny => Gpt2Config::gpt2_tiny(),
            };
            config.n_positions = spec
                .model
                .context
                .unwrap_or(config.n_positions)
                .max(context);
            config.with_attention(attention).init(device)?
        }
        (None, None) => unreachable!("validated: preset or pretrained"),
    })
}

/// A deterministic seed for (run seed, stage, step, micro-batch).
fn derived_seed(seed: u64, stage: usize, step: usize, micro: usize) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [stage as u64, step as u64, micro as u64] {
        h = (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(17);
    }
    h
}

/// Inputs and next-token targets, `[B, T]` each.
type TokenBatch<B> = (Tensor<B, 2, Int>, Tensor<B, 2, Int>);

fn batch<B: Backend>(
    tokens: &[u32],
    context: usize,
    batch_size: usize,
    seed: u64,
    device: &B::Device,
) -> Result<TokenBatch<B>, RunError> {
    let blocks = lm::block_count(tokens.len(), context);
    if blocks == 0 {
        return Err(RunError::Data(hedgehog_tasks::DataError::Config(format!(
            "the training split has {} tokens, fewer than one block of context {context}",
            tokens.len()
        ))));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut inputs, mut targets) = (
        Vec::with_capacity(batch_size * context),
        Vec::with_capacity(batch_size * context),
    );
    for _ in 0..batch_size {
        let (x, y) = lm::block(tokens, context, rng.random_range(0..blocks));
        inputs.extend(x.iter().map(|&t| t as i64));
        targets.extend(y.iter().map(|&t| t as i64));
    }
    let make = |v: Vec<i64>| {
        Tensor::<B, 2, Int>::from_data(
            TensorData::new(v, [batch_size, context]).convert::<B::IntElem>(),
            device,
        )
    };
    Ok((make(inputs), make(targets)))
}

fn validation_perplexity<B: Backend>(
    model: &Gpt2<B>,
    corpus: &Corpus,
    device: &B::Device,
) -> Result<f64, RunError> {
    let report = lm::perplexity::<B>(
        corpus.valid.tokens(),
        corpus.context,
        corpus.stride,
        device,
        |window| {
            Ok(model
                .forward(window, None, AttentionMode::Configured, false)?
                .output)
        },
        |_, _| {},
    )?;
    Ok(report.perplexity)
}

fn attention_label(attention: &[AttentionConfig]) -> String {
    match attention.first() {
        None => "softmax".into(),
        Some(first) if attention.iter().all(|a| a == first) => first.label(),
        _ => attention
            .iter()
            .map(AttentionConfig::label)
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

struct Metrics {
    path: PathBuf,
}

impl Metrics {
    const HEADER: &'static str =
        "stage,label,step,global_step,loss,lr,tokens_per_second,validation_perplexity";

    /// Opens `metrics.csv`, dropping rows after `keep_until` (rows past the checkpoint a
    /// resumed run repeats).
    fn open(dir: &Path, keep_until: Option<usize>) -> Result<Self, RunError> {
        let path = dir.join("metrics.csv");
        let mut kept = vec![Self::HEADER.to_string()];
        if let (Some(limit), Ok(text)) = (keep_until, std::fs::read_to_string(&path)) {
            kept.extend(
                text.lines()
                    .skip(1)
                    .filter(|line| {
                        line.split(',')
                            .nth(3)
                            .and_then(|g| g.parse::<usize>().ok())
                            .is_some_and(|g| g <= limit)
                    })
                    .map(str::to_string),
            );
        }
        write_atomic(&path, (kept.join("\n") + "\n").as_bytes())?;
        Ok(Self { path })
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &self,
        stage: usize,
        label: &str,
        step: usize,
        global: usize,
        loss: Option<f64>,
        lr: f64,
        tps: f64,
        ppl: Option<f64>,
    ) -> Result<(), RunError> {
        let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.6}"));
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(file_error(&self.path))?;
        writeln!(
            file,
            "{stage},{label},{step},{global},{},{lr:.3e},{tps:.1},{}",
            opt(loss),
            opt(ppl)
        )
        .map_err(file_error(&self.path))
    }
}

fn checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
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

type Adam<B> = burn::optim::adaptor::OptimizerAdaptor<burn::optim::AdamW, Gpt2<B>, B>;

fn save_checkpoint<B: AutodiffBackend>(
    dir: &Path,
    model: &Gpt2<B>,
    optimizer: Option<&Adam<B>>,
    progress: &Progress,
    keep: usize,
) -> Result<(), RunError> {
    let root = dir.join("checkpoints");
    let target = root.join(format!("step-{:07}", progress.global_step));
    let partial = root.join(format!("step-{:07}.partial", progress.global_step));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(file_error(&partial))?;
    checkpoint::save(model, &partial)?;
    if let Some(optimizer) = optimizer {
        NamedMpkFileRecorder::<FullPrecisionSettings>::new()
            .record(optimizer.to_record(), partial.join("optimizer"))
            .map_err(|e| RunError::File {
                path: partial.join("optimizer.mpk"),
                message: e.to_string(),
            })?;
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

/// Runs every stage of `spec` on the autodiff backend `B`.
pub fn run<B: AutodiffBackend>(
    spec: &Spec,
    options: &RunOptions,
    device: &B::Device,
) -> Result<RunSummary, RunError> {
    let dir = run_dir(spec, options)?;
    let say = |line: String| {
        if options.verbose {
            println!("{line}");
        }
    };
    let corpus = load_corpus(spec)?;
    let resume_from = if options.resume {
        checkpoints(&dir).pop()
    } else {
        None
    };
    let (mut model, mut progress, mut optimizer_record) = match &resume_from {
        Some((step, path)) => {
            let text =
                std::fs::read_to_string(path.join("progress.json")).map_err(file_error(path))?;
            let progress: Progress = serde_json::from_str(&text)
                .map_err(|e| RunError::Resume(format!("{}: {e}", path.display())))?;
            let model = Gpt2::<B>::from_pretrained(path, None, device)?;
            let record_path = path.join("optimizer.mpk");
            let record = if record_path.exists() {
                let record: <Adam<B> as Optimizer<Gpt2<B>, B>>::Record =
                    NamedMpkFileRecorder::<FullPrecisionSettings>::new()
                        .load(path.join("optimizer"), device)
                        .map_err(|e| RunError::Resume(format!("{}: {e}", record_path.display())))?;
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
            say(format!(
                "resuming {} from checkpoint step {step} (stage {}, step {})",
                dir.display(),
                progress.stage,
                progress.step
            ));
            (model, progress, record)
        }
        None => {
            if options.resume {
                say(format!(
                    "no checkpoint in {}: starting from the beginning",
                    dir.display()
                ));
            }
            // burn's initialisers draw from the backend's RNG: seed it so runs repeat.
            B::seed(device, spec.seed);
            let model = initial_model::<B>(spec, corpus.context, device)?;
            let progress = Progress {
                stage: 0,
                step: 0,
                global_step: 0,
                results: Vec::new(),
                param_order: Vec::new(),
            };
            (model, progress, None)
        }
    };
    let resolved = serde_saphyr::to_string(spec).map_err(|e| RunError::File {
        path: dir.join("spec.yaml"),
        message: e.to_string(),
    })?;
    write_atomic(&dir.join("spec.yaml"), resolved.as_bytes())?;
    let metrics = Metrics::open(&dir, resume_from.as_ref().map(|_| progress.global_step))?;
    say(format!(
        "run {} ({} train / {} valid tokens, {} parameters)",
        dir.display(),
        corpus.train.len(),
        corpus.valid.len(),
        model.num_params()
    ));

    while progress.stage < spec.stages.len() {
        let s = progress.stage;
        let stage = &spec.stages[s];
        let label = stage
            .label
            .clone()
            .unwrap_or_else(|| format!("{:?}", stage.kind).to_lowercase());
        // Switch attention when a stage starts (not when resuming inside it: the checkpoint
        // already holds the switched model).
        if progress.step == 0
            && let Some(attention) = &stage.attention
        {
            let tmp = dir.join("converting");
            checkpoint::save(&model, &tmp)?;
            model = Gpt2::<B>::from_pretrained(&tmp, Some(attention.clone()), device)?;
            let _ = std::fs::remove_dir_all(&tmp);
            say(format!(
                "[{label}] attention → {}",
                attention_label(attention)
            ));
        }
        let attention = attention_label(&model.config.attention);
        let result = if stage.kind == StageKind::Eval {
            let ppl = validation_perplexity(&model.valid(), &corpus, &device.clone())?;
            say(format!(
                "[{label}] validation perplexity {ppl:.3} ({attention})"
            ));
            metrics.row(
                s,
                &label,
                0,
                progress.global_step,
                None,
                0.0,
                0.0,
                Some(ppl),
            )?;
            StageResult {
                label,
                kind: stage.kind,
                steps: 0,
                final_loss: None,
                validation_perplexity: Some(ppl),
                attention,
            }
        } else {
            let (trained, result) = train_stage(
                spec,
                stage,
                &label,
                &model,
                optimizer_record.take(),
                &corpus,
                &metrics,
                &mut progress,
                &dir,
                device,
                &say,
            )?;
            model = trained;
            result
        };
        progress.results.push(result);
        progress.stage += 1;
        progress.step = 0;
        save_checkpoint::<B>(&dir, &model, None, &progress, spec.checkpoint.keep)?;
    }
    let summary = RunSummary {
        name: spec.name.clone(),
        run_dir: dir.clone(),
        stages: progress.results.clone(),
    };
    write_atomic(
        &dir.join("summary.json"),
        &serde_json::to_vec_pretty(&summary).expect("summary serialises"),
    )?;
    Ok(summary)
}

#[allow(clippy::too_many_arguments)]
fn train_stage<B: AutodiffBackend>(
    spec: &Spec,
    stage: &StageSpec,
    label: &str,
    model: &Gpt2<B>,
    optimizer_record: Option<<Adam<B> as Optimizer<Gpt2<B>, B>>::Record>,
    corpus: &Corpus,
    metrics: &Metrics,
    progress: &mut Progress,
    dir: &Path,
    device: &B::Device,
    say: &dyn Fn(String),
) -> Result<(Gpt2<B>, StageResult), RunError> {
    let OptimizerSpec::Adamw {
        lr,
        weight_decay,
        beta1,
        beta2,
    } = stage.optimizer;
    let mut config = AdamWConfig::new()
        .with_beta_1(beta1 as f32)
        .with_beta_2(beta2 as f32)
        .with_epsilon(1e-8)
        .with_weight_decay(weight_decay as f32);
    if let Some(clip) = stage.clip {
        config = config.with_grad_clipping(Some(
            burn::grad_clipping::GradientClippingConfig::Norm(clip as f32),
        ));
    }
    let mut optimizer: Adam<B> = config.init();
    if let Some(record) = optimizer_record {
        optimizer = optimizer.load_record(record);
    }
    let distill = stage.kind == StageKind::Distill;
    let feature_maps_only = distill || stage.trainable == Trainable::FeatureMaps;
    let mut model = model.clone();
    let loss_fn = CrossEntropyLossConfig::new().init(device);
    let s = progress.stage;
    let mut last_loss = None;
    let mut validation = None;
    let started = Instant::now();
    let mut tokens_seen = 0usize;
    while progress.step < stage.steps {
        let step = progress.step;
        let mut accumulator = GradientsAccumulator::<Gpt2<B>>::new();
        let mut loss_sum = 0.0;
        for micro in 0..stage.grad_accumulation {
            let seed = derived_seed(spec.seed, s, step, micro);
            B::seed(device, seed);
            let (inputs, targets) = batch::<B>(
                corpus.train.tokens(),
                corpus.context,
                stage.batch_size,
                seed,
                device,
            )?;
            let loss = if distill {
                let out = model.forward(inputs, None, AttentionMode::Distill, false)?;
                let pairs = out
                    .attention
                    .into_iter()
                    .filter_map(|c| c.student.map(|student| (c.teacher, student)))
                    .collect::<Vec<_>>();
                distill::layerwise_loss(pairs, RowLoss::SoftCrossEntropy, Reduction::Mean, None)?.0
            } else {
                let logits = model
                    .forward(inputs, None, AttentionMode::Configured, false)?
                    .output;
                let [b, t, v] = logits.dims();
                loss_fn.forward(logits.reshape([b * t, v]), targets.reshape([b * t]))
            };
            let value: f64 = loss.clone().into_scalar().elem();
            if !value.is_finite() {
                let last = checkpoints(dir)
                    .pop()
                    .map_or("none".into(), |(_, p)| p.display().to_string());
                return Err(RunError::Diverged(format!(
                    "[{label}] loss became {value} at step {step}: stopping; the last good checkpoint is {last}. \
                     Lower optimizer.lr or set clip."
                )));
            }
            loss_sum += value;
            let grads = loss.div_scalar(stage.grad_accumulation as f64).backward();
            let grads = GradientsParams::from_grads(grads, &model);
            accumulator.accumulate(&model, grads);
            tokens_seen += stage.batch_size * corpus.context;
        }
        let mut grads = accumulator.grads();
        if feature_maps_only {
            grads = keep_feature_map_grads(&model, grads);
        }
        let rate = lr * stage.schedule.factor(step, stage.steps);
        model = optimizer.step(rate, model, grads);
        progress.step += 1;
        progress.global_step += 1;
        let loss = loss_sum / stage.grad_accumulation as f64;
        last_loss = Some(loss);
        let done = progress.step == stage.steps;
        let evaluate =
            done || (stage.eval_every > 0 && progress.step.is_multiple_of(stage.eval_every));
        validation = if evaluate && !distill {
            Some(validation_perplexity(&model.valid(), corpus, device)?)
        } else {
            None
        };
        let tps = tokens_seen as f64 / started.elapsed().as_secs_f64().max(1e-9);
        metrics.row(
            s,
            label,
            progress.step,
            progress.global_step,
            Some(loss),
            rate,
            tps,
            validation,
        )?;
        if progress.step.is_multiple_of(stage.log_every.max(1)) || done {
            let ppl = validation.map_or(String::new(), |p| format!("  val ppl {p:.3}"));
            say(format!(
                "[{label}] step {}/{}  loss {loss:.4}  lr {rate:.2e}  {tps:.0} tok/s{ppl}",
                progress.step, stage.steps
            ));
        }
        if progress.step.is_multiple_of(spec.checkpoint.every) && !done {
            save_checkpoint(
                dir,
                &model,
                Some(&optimizer),
                progress,
                spec.checkpoint.keep,
            )?;
        }
    }
    let result = StageResult {
        label: label.to_string(),
        kind: stage.kind,
        steps: stage.steps,
        final_loss: last_loss,
        validation_perplexity: validation,
        attention: attention_label(&model.config.attention),
    };
    Ok((model, result))
}

/// Drops every gradient but the feature maps' (stage 1 of Hedgehog trains only the maps).
fn keep_feature_map_grads<B: AutodiffBackend>(
    model: &Gpt2<B>,
    mut grads: GradientsParams,
) -> GradientsParams {
    let mut keep = GradientsParams::new();
    for block in &model.blocks {
        if let Some(linear) = &block.attn.linear {
            for id in param_order::<B, _>(linear) {
                // Feature-map parameters are rank 3 (Hedgehog/T2R `[H, d, d']`, `[H, 1, d']`).
                if let Some(grad) = grads.remove::<B::InnerBackend, 3>(id) {
                    keep.register::<B::InnerBackend, 3>(id, grad);
                }
            }
        }
    }
    keep
}

trait ElemF64 {
    fn elem(self) -> f64;
}

impl<E: burn::tensor::ElementConversion> ElemF64 for E {
    fn elem(self) -> f64 {
        burn::tensor::ElementConversion::elem::<f64>(self)
    }
}

/// Parses a `summary.json`.
pub fn summary_from_json(text: &str) -> Option<RunSummary> {
    serde_json::from_str(text).ok()
}
