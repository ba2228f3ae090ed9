//! Run folders: `results/<name>/run-NNN/`, which one a run writes to (or resumes), and the
//! `final/` export with the `latest` link when a run ends.

use std::path::{Path, PathBuf};

use hedgehog_models::ModelError;

use crate::checkpoint;
use crate::error::{RunError, file_error};
use crate::spec::{Spec, SweepPoint};
use crate::summary::{RunSummary, summary_from_json};

use super::RunOptions;

/// The run folders of `name`, oldest first.
fn existing_runs(base: &Path) -> Result<Vec<(usize, PathBuf)>, RunError> {
    if !base.exists() {
        return Ok(Vec::new());
    }
    let mut runs: Vec<(usize, PathBuf)> = std::fs::read_dir(base)
        .map_err(file_error(base))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_prefix("run-")
                .and_then(|n| n.parse().ok())
                .map(|n| (n, e.path()))
        })
        .collect();
    runs.sort();
    Ok(runs)
}

/// Where a point runs: a fresh folder, or (resuming) the newest folder whose saved spec equals
/// the point's resolved spec.
pub(super) enum Destination {
    Fresh(PathBuf),
    Resume(PathBuf),
    Finished(RunSummary),
}

pub(super) fn destination(
    point: &SweepPoint,
    options: &RunOptions,
) -> Result<Destination, RunError> {
    let spec = &point.spec;
    let base = options.results_dir.join(&spec.name);
    let runs = existing_runs(&base)?;
    if options.resume {
        let same = runs.iter().rev().find(|(_, dir)| {
            std::fs::read_to_string(dir.join("spec.yaml"))
                .ok()
                .and_then(|text| serde_saphyr::from_str::<Spec>(&text).ok())
                .is_some_and(|saved| &saved == spec)
        });
        match same {
            Some((_, dir)) => {
                let finished = std::fs::read_to_string(dir.join("summary.json"))
                    .ok()
                    .and_then(|t| summary_from_json(&t))
                    .filter(|s| s.finished);
                return Ok(match finished {
                    Some(summary) => Destination::Finished(summary),
                    None => Destination::Resume(dir.clone()),
                });
            }
            None if point.point.is_empty() => {
                let others = runs
                    .iter()
                    .map(|(_, p)| p.display().to_string())
                    .collect::<Vec<_>>();
                return Err(RunError::Resume(format!(
                    "--resume: no earlier run of `{}` with this resolved spec under {}{}",
                    spec.name,
                    base.display(),
                    if others.is_empty() {
                        String::new()
                    } else {
                        format!(
                            " (runs with other settings: {}; resume without changing the spec or --set values)",
                            others.join(", ")
                        )
                    }
                )));
            }
            // A sweep point never started before starts now.
            None => {}
        }
    }
    std::fs::create_dir_all(&base).map_err(file_error(&base))?;
    let next = runs.last().map_or(1, |(n, _)| n + 1);
    let dir = base.join(format!("run-{next:03}"));
    std::fs::create_dir_all(&dir).map_err(file_error(&dir))?;
    Ok(Destination::Fresh(dir))
}

/// Tokenizer files a pretrained directory may hold; `final/` keeps them so that a spec starting
/// from it reads text the same way.
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "merges.txt",
];

/// Copies the last checkpoint's model to `<run>/final/` (an HF-layout directory that a later
/// spec can name as `model.pretrained`), with the tokenizer files of the directory the run
/// started from (or, from a GGUF file, its tokenizer as `tokenizer.json`), and points
/// `results/<name>/latest` at the run.
pub(super) fn export_final(dir: &Path, pretrained: Option<&Path>) -> Result<(), RunError> {
    let (_, last) = checkpoint::checkpoints(dir)
        .pop()
        .ok_or_else(|| RunError::Config(format!("{}: no checkpoint to export", dir.display())))?;
    let partial = dir.join("final.partial");
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).map_err(file_error(&partial))?;
    for file in ["config.json", "model.safetensors"] {
        std::fs::copy(last.join(file), partial.join(file)).map_err(file_error(&last.join(file)))?;
    }
    for file in TOKENIZER_FILES {
        if let Some(source) = pretrained.map(|p| p.join(file)).filter(|p| p.is_file()) {
            std::fs::copy(&source, partial.join(file)).map_err(file_error(&source))?;
        }
    }
    // A GGUF file carries its tokenizer inside: written out, so `final/` reads as itself.
    if let Some(gguf) = pretrained.filter(|p| p.extension().is_some_and(|e| e == "gguf")) {
        let file = hedgehog_models::gguf::GgufFile::open(gguf).map_err(ModelError::from)?;
        let target = partial.join("tokenizer.json");
        hedgehog_models::llama::gguf_tokenizer(&file)?
            .save_tokenizer_json(&target)
            .map_err(|e| RunError::File {
                path: target.clone(),
                message: e.to_string(),
            })?;
    }
    let target = dir.join("final");
    let _ = std::fs::remove_dir_all(&target);
    std::fs::rename(&partial, &target).map_err(file_error(&target))?;
    let (Some(parent), Some(run)) = (dir.parent(), dir.file_name()) else {
        return Ok(());
    };
    let link = parent.join("latest");
    let fresh = parent.join("latest.partial");
    let _ = std::fs::remove_file(&fresh);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(run, &fresh).map_err(file_error(&fresh))?;
        std::fs::rename(&fresh, &link).map_err(file_error(&link))?;
    }
    #[cfg(not(unix))]
    let _ = (run, link, fresh);
    Ok(())
}
