//! `hedgehog`: run, validate and list experiment specs (YAML); fetch the paper's data and
//! weights from the Hugging Face Hub; build the paper's tables and figures from the run folders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod prepare;
use hedgehog_train::{RunOptions, Spec};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's `mi_option_purge_delay` (its `mi_option_e` index, the same in mimalloc v2 and v3;
/// libmimalloc-sys leaves that option's index to the caller) and its documented defaults: 10 ms
/// in mimalloc v2, 1000 ms in v3 (libmimalloc-sys builds v3 unless its `v2` feature is on).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;
const DEFAULT_PURGE_DELAYS_MS: [std::ffi::c_long; 2] = [10, 1000];

/// Keeps freed memory for reuse instead of returning it to the kernel after the purge delay: a
/// training step that allocates it again otherwise waits for the kernel to zero every page (a
/// third of a GPT-2 125M step: 13 s against 8.5 s measured), for ~15% more resident memory.
/// Only when the option at that index holds one of the purge delay's defaults, so a renumbered
/// enum or a user's `MIMALLOC_PURGE_DELAY` changes nothing.
fn keep_freed_memory() {
    // SAFETY: reading and setting a mimalloc option at start-up, before any other thread runs.
    unsafe {
        let current = libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY);
        if DEFAULT_PURGE_DELAYS_MS.contains(&current) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

#[derive(Parser)]
#[command(
    name = "hedgehog",
    version,
    about = "Expressive linear attention: train, convert and evaluate from YAML specs"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage of a spec; writes results/<name>/run-NNN/.
    Run {
        /// The experiment spec (YAML), e.g. experiments/quickstart.yaml.
        spec: PathBuf,
        /// Override a value: `--set stages.0.steps=10` (repeatable; the value is YAML).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Continue the newest run with the same resolved spec from its last checkpoint
        /// (a sweep skips its finished points and starts the others).
        #[arg(long)]
        resume: bool,
        /// Where run folders go.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Start even when the cost estimate printed first passes a day on this device.
        #[arg(long)]
        yes: bool,
    },
    /// Download the paper's datasets and weights from the Hugging Face Hub into the folders the
    /// specs read (resumable, checked against the hub's sizes and sha256s). Honours
    /// HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.
    Fetch {
        /// What to fetch (`hedgehog fetch --list` shows them), e.g. wikitext-103 gpt2.
        #[arg(required_unless_present = "list")]
        names: Vec<String>,
        /// Where to put it instead of the asset's usual folder (one name only).
        #[arg(long)]
        to: Option<PathBuf>,
        /// List the assets and their folders.
        #[arg(long)]
        list: bool,
    },
    /// Parse and check specs without running them.
    Validate {
        /// Spec files (every point of a sweep is checked).
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        /// Override a value before checking, as for `run`.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// The paper's tables next to ours, from the run folders (Markdown and CSV).
    Tables {
        /// Where run folders are.
        #[arg(long, default_value = "results")]
        results: PathBuf,
        /// Where `<table>.md` and `<table>.csv` go.
        #[arg(long, default_value = "results/tables")]
        out: PathBuf,
    },
    /// Every figure a figures file lists, redrawn from the run folders (PNG and SVG).
    Plots {
        /// The figures file: which figures, from which runs, written where.
        #[arg(default_value = "experiments/figures/paper_figures.yaml")]
        figures: PathBuf,
        /// Where run folders are.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Training throughput of a spec's train stage (no evaluation or checkpoints): one JSON
    /// line with tokens/s, each step's ms and the peak resident memory.
    /// `tools/bench_train_compare.py` runs it beside the same model in PyTorch.
    BenchTrain {
        /// A language-modelling spec, e.g. experiments/quickstart.yaml.
        spec: PathBuf,
        /// Override a value, as for `run` (e.g. `--set attention=[{kind: softmax}]`).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Which stage's model, batch and optimiser (a train or finetune stage).
        #[arg(long, default_value_t = 0)]
        stage: usize,
        /// Timed optimiser steps.
        #[arg(long, default_value_t = 20)]
        steps: usize,
        /// Untimed steps first (allocations, caches).
        #[arg(long, default_value_t = 3)]
        warmup: usize,
    },
    /// The specs in experiments/ and their last results.
    List {
        /// Where the specs are.
        #[arg(long, default_value = "experiments")]
        dir: PathBuf,
        /// Where run folders are.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

fn print_summary(summary: &hedgehog_train::RunSummary) {
    println!("\n| stage | attention | steps | final loss | validation |\n|---|---|---:|---:|---|");
    for stage in &summary.stages {
        let loss = stage.final_loss.map_or("".into(), |l| format!("{l:.4}"));
        let validation = match (&stage.headline, stage.headline_value()) {
            (Some(name), Some(value)) => format!("{name} {value:.2}"),
            _ => stage
                .metrics
                .iter()
                .map(|(k, v)| format!("{k} {v:.3}"))
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!(
            "| {} | {} | {} | {loss} | {validation} |",
            stage.label, stage.attention, stage.steps
        );
    }
    println!("\nrun folder: {}", summary.run_dir.display());
}

/// One line per sweep point: the point and the last headline of the run.
fn print_sweep(summaries: &[hedgehog_train::RunSummary]) {
    println!("\n| sweep point | run | last result |\n|---|---|---|");
    for summary in summaries {
        let point = summary
            .sweep
            .as_ref()
            .map(|p| {
                p.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let last = summary
            .stages
            .iter()
            .rev()
            .find_map(|s| s.headline.clone().zip(s.headline_value()))
            .map_or(String::new(), |(name, value)| format!("{name} {value:.2}"));
        println!("| {point} | {} | {last} |", summary.run_dir.display());
    }
}

fn cuda_index(device: &str) -> Result<usize, String> {
    match device {
        "cuda" => Ok(0),
        other => other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| format!("bad device `{other}`: expected cpu, cuda or cuda:N")),
    }
}

fn run(spec_path: &Path, overrides: &[String], options: RunOptions) -> Result<(), String> {
    let overrides = prepare::with_launcher_env(overrides)?;
    let spec = Spec::load(spec_path, &overrides).map_err(|e| e.to_string())?;
    prepare::ensure_assets(&spec)?;
    let devices = prepare::resolve_devices(&spec);
    let summaries = if devices.iter().all(|d| d == "cpu") {
        // burn's ndarray backend has one CPU device; a list of them still splits each batch.
        let cpus = vec![burn::backend::ndarray::NdArrayDevice::Cpu; devices.len()];
        hedgehog_train::run::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &spec, &options, &cpus,
        )
    } else if devices.iter().any(|d| d == "cpu") {
        return Err("device: a list cannot mix cpu and cuda devices".into());
    } else {
        run_cuda(&spec, &options, &devices)?
    }
    .map_err(|e| e.to_string())?;
    for summary in &summaries {
        print_summary(summary);
    }
    if summaries.len() > 1 {
        print_sweep(&summaries);
    }
    Ok(())
}

#[cfg(feature = "cuda")]
fn run_cuda(
    spec: &Spec,
    options: &RunOptions,
    devices: &[String],
) -> Result<Result<Vec<hedgehog_train::RunSummary>, hedgehog_train::RunError>, String> {
    let devices = devices
        .iter()
        .map(|d| cuda_index(d).map(burn::backend::cuda::CudaDevice::new))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(hedgehog_train::run::<
        burn::backend::Autodiff<burn::backend::Cuda>,
    >(spec, options, &devices))
}

#[cfg(not(feature = "cuda"))]
fn run_cuda(
    _spec: &Spec,
    _options: &RunOptions,
    devices: &[String],
) -> Result<Result<Vec<hedgehog_train::RunSummary>, hedgehog_train::RunError>, String> {
    for device in devices {
        cuda_index(device)?;
    }
    Err(format!(
        "device `{}` needs a build with `--features cuda` (cargo build --release -p hedgehog-cli --features cuda)",
        devices.join(", ")
    ))
}

fn bench_train(
    spec_path: &Path,
    overrides: &[String],
    stage: usize,
    steps: usize,
    warmup: usize,
) -> Result<(), String> {
    let spec = Spec::load(spec_path, overrides).map_err(|e| e.to_string())?;
    if !spec.device.is_auto() && spec.device.names().iter().any(|d| d != "cpu") {
        return Err("bench-train measures the CPU backend: set device=cpu".into());
    }
    let report = hedgehog_train::bench::bench_train::<
        burn::backend::Autodiff<burn::backend::NdArray>,
    >(&spec, stage, steps, warmup, &Default::default())
    .map_err(|e| e.to_string())?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn list(dir: &Path, results: &Path) -> Result<(), String> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    specs.sort();
    println!("| spec | name | runs | last run | last result |\n|---|---|---:|---|---|");
    for path in specs {
        match Spec::load(&path, &[]) {
            Ok(spec) => {
                let points = spec.expand().map_or(1, |p| p.len());
                let runs = results.join(&spec.name);
                let last = std::fs::read_dir(&runs)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("summary.json").exists())
                    .max();
                let (run, result) = match &last {
                    Some(run) => {
                        let summary = std::fs::read_to_string(run.join("summary.json"))
                            .ok()
                            .and_then(|t| hedgehog_train::run::summary_from_json(&t));
                        let result = summary
                            .and_then(|s| {
                                let finished = s.finished;
                                s.stages
                                    .iter()
                                    .rev()
                                    .find_map(|st| st.headline.clone().zip(st.headline_value()))
                                    .map(|(name, value)| {
                                        format!(
                                            "{name} {value:.2}{}",
                                            if finished { "" } else { " (unfinished)" }
                                        )
                                    })
                            })
                            .unwrap_or_default();
                        (run.display().to_string(), result)
                    }
                    None => ("never run".into(), String::new()),
                };
                println!(
                    "| {} | {} | {points} | {run} | {result} |",
                    path.display(),
                    spec.name
                );
            }
            Err(e) => println!("| {} | invalid: {e} | | | |", path.display()),
        }
    }
    Ok(())
}

fn plots(figures: &Path, results: &Path) -> Result<(), String> {
    let list = hedgehog_analysis::figures::FigureList::load(figures).map_err(|e| e.to_string())?;
    let (written, skipped) =
        hedgehog_analysis::figures::draw_all(&list, results).map_err(|e| e.to_string())?;
    for files in &written {
        println!("wrote {} and {}", files.png.display(), files.svg.display());
    }
    for (out, reason) in &skipped {
        eprintln!("skipped {}: {reason}", out.display());
    }
    if written.is_empty() && !skipped.is_empty() {
        return Err("no figure could be drawn".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run {
            spec,
            overrides,
            resume,
            results,
            yes,
        } => run(
            &spec,
            &overrides,
            RunOptions {
                results_dir: results,
                resume,
                verbose: true,
                confirmed: yes,
            },
        ),
        Command::Validate { specs, overrides } => {
            let mut failed = 0;
            for path in &specs {
                match Spec::load(path, &overrides) {
                    Ok(spec) => println!(
                        "ok: {} ({}, {} stages, {} run{})",
                        path.display(),
                        spec.name,
                        spec.stages.len(),
                        spec.expand().map_or(1, |p| p.len()),
                        if spec.expand().map_or(1, |p| p.len()) == 1 {
                            ""
                        } else {
                            "s"
                        }
                    ),
                    Err(e) => {
                        eprintln!("error: {e}");
                        failed += 1;
                    }
                }
            }
            if failed == 0 {
                Ok(())
            } else {
                Err(format!("{failed} of {} specs are invalid", specs.len()))
            }
        }
        Command::List { dir, results } => list(&dir, &results),
        Command::Fetch { names, to, list } => prepare::fetch(&names, to, list),
        Command::BenchTrain {
            spec,
            overrides,
            stage,
            steps,
            warmup,
        } => bench_train(&spec, &overrides, stage, steps, warmup),
        Command::Tables { results, out } => hedgehog_analysis::write_tables(&results, &out)
            .map(|markdown| {
                println!("{markdown}");
                println!("written to {}", out.display());
            })
            .map_err(|e| e.to_string()),
        Command::Plots { figures, results } => plots(&figures, &results),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
