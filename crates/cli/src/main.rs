//! `hedgehog`: run, validate and list experiment specs (YAML).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hedgehog_train::{RunOptions, Spec};

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
        spec: PathBuf,
        /// Override a value: `--set stages.0.steps=10` (repeatable; the value is YAML).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Continue the newest run of this spec from its last checkpoint.
        #[arg(long)]
        resume: bool,
        /// Where run folders go.
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
    /// Parse and check specs without running them.
    Validate {
        #[arg(required = true)]
        specs: Vec<PathBuf>,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// The specs in experiments/ and their last results.
    List {
        #[arg(long, default_value = "experiments")]
        dir: PathBuf,
        #[arg(long, default_value = "results")]
        results: PathBuf,
    },
}

fn print_summary(summary: &hedgehog_train::RunSummary) {
    println!(
        "\n| stage | attention | steps | final loss | validation perplexity |\n|---|---|---:|---:|---:|"
    );
    for stage in &summary.stages {
        let loss = stage.final_loss.map_or("".into(), |l| format!("{l:.4}"));
        let ppl = stage
            .validation_perplexity
            .map_or("".into(), |p| format!("{p:.2}"));
        println!(
            "| {} | {} | {} | {loss} | {ppl} |",
            stage.label, stage.attention, stage.steps
        );
    }
    println!("\nrun folder: {}", summary.run_dir.display());
}

fn run(
    spec_path: &Path,
    overrides: &[String],
    resume: bool,
    results: PathBuf,
) -> Result<(), String> {
    let spec = Spec::load(spec_path, overrides).map_err(|e| e.to_string())?;
    let options = RunOptions {
        results_dir: results,
        resume,
        verbose: true,
    };
    let summary = match spec.device.as_str() {
        "cpu" => hedgehog_train::run::<burn::backend::Autodiff<burn::backend::NdArray>>(
            &spec,
            &options,
            &Default::default(),
        ),
        #[cfg(feature = "cuda")]
        device => {
            let index = device
                .strip_prefix("cuda:")
                .map_or(Ok(0), str::parse)
                .map_err(|_| format!("bad device `{device}`"))?;
            hedgehog_train::run::<burn::backend::Autodiff<burn::backend::Cuda>>(
                &spec,
                &options,
                &burn::backend::cuda::CudaDevice::new(index),
            )
        }
        #[cfg(not(feature = "cuda"))]
        device => {
            return Err(format!(
                "device `{device}` needs a build with `--features cuda`"
            ));
        }
    }
    .map_err(|e| e.to_string())?;
    print_summary(&summary);
    Ok(())
}

fn list(dir: &Path, results: &Path) -> Result<(), String> {
    let mut specs: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    specs.sort();
    println!("| spec | name | last run | last validation perplexity |\n|---|---|---|---:|");
    for path in specs {
        match Spec::load(&path, &[]) {
            Ok(spec) => {
                let runs = results.join(&spec.name);
                let last = std::fs::read_dir(&runs)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.join("summary.json").exists())
                    .max();
                let (run, ppl) = match &last {
                    Some(run) => {
                        let summary: Option<hedgehog_train::RunSummary> =
                            std::fs::read_to_string(run.join("summary.json"))
                                .ok()
                                .and_then(|t| serde_json_from(&t));
                        let ppl = summary
                            .and_then(|s| {
                                s.stages
                                    .iter()
                                    .rev()
                                    .find_map(|st| st.validation_perplexity)
                            })
                            .map_or("".into(), |p| format!("{p:.2}"));
                        (run.display().to_string(), ppl)
                    }
                    None => ("never run".into(), String::new()),
                };
                println!("| {} | {} | {run} | {ppl} |", path.display(), spec.name);
            }
            Err(e) => println!("| {} | invalid: {e} | | |", path.display()),
        }
    }
    Ok(())
}

fn serde_json_from(text: &str) -> Option<hedgehog_train::RunSummary> {
    hedgehog_train::run::summary_from_json(text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run {
            spec,
            overrides,
            resume,
            results,
        } => run(&spec, &overrides, resume, results),
        Command::Validate { specs, overrides } => {
            let mut failed = 0;
            for path in &specs {
                match Spec::load(path, &overrides) {
                    Ok(spec) => println!(
                        "ok: {} ({}, {} stages)",
                        path.display(),
                        spec.name,
                        spec.stages.len()
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
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
