//! What happens before a run starts: `device: auto` resolved, and the spec's data and weights
//! fetched from the hub when missing (`hedgehog fetch` is the same code).

use std::path::PathBuf;

use hedgehog_train::Spec;

/// The spec's devices, with `auto` resolved and one line saying what was picked and why.
pub(crate) fn resolve_devices(spec: &Spec) -> Vec<String> {
    if !spec.device.is_auto() {
        return spec.device.names();
    }
    let (device, reason) = auto_device();
    println!("device: {device} (auto: {reason})");
    vec![device]
}

#[cfg(feature = "cuda")]
fn auto_device() -> (String, String) {
    match visible_nvidia_driver() {
        Ok(driver) => ("cuda".into(), driver),
        Err(missing) => ("cpu".into(), format!("this build has CUDA, but {missing}")),
    }
}

#[cfg(not(feature = "cuda"))]
fn auto_device() -> (String, String) {
    (
        "cpu".into(),
        "this build has no CUDA support; `--features cuda` adds it".into(),
    )
}

/// Whether a GPU can be used, asked of the kernel rather than of the CUDA library (loading
/// that without a driver aborts the process).
#[cfg(feature = "cuda")]
fn visible_nvidia_driver() -> Result<String, String> {
    if let Ok(visible) = std::env::var("CUDA_VISIBLE_DEVICES")
        && matches!(visible.trim(), "" | "-1")
    {
        return Err(format!("CUDA_VISIBLE_DEVICES={visible:?} hides every GPU"));
    }
    match std::fs::read_to_string("/proc/driver/nvidia/version") {
        Ok(version) => Ok(format!(
            "found the NVIDIA driver ({})",
            version.lines().next().unwrap_or_default().trim()
        )),
        Err(_) => Err("no NVIDIA driver is loaded (no /proc/driver/nvidia/version)".into()),
    }
}

pub(crate) fn fetch(names: &[String], to: Option<PathBuf>, list: bool) -> Result<(), String> {
    if list {
        println!("| name | hub repo | placed in | what |\n|---|---|---|---|");
        for asset in hedgehog_hub::ASSETS {
            println!(
                "| {} | {} | {} | {} |",
                asset.name, asset.repo, asset.dest, asset.about
            );
        }
        return Ok(());
    }
    if to.is_some() && names.len() != 1 {
        return Err("--to takes one asset name".into());
    }
    let hub = hedgehog_hub::Hub::from_env();
    for name in names {
        let asset = hedgehog_hub::asset(name).map_err(|e| e.to_string())?;
        let dest = to.clone().unwrap_or_else(|| PathBuf::from(asset.dest));
        let report = hub.fetch(asset, &dest).map_err(|e| e.to_string())?;
        println!(
            "{name}: {} in {} ({} downloaded, {} already there{})",
            report.downloaded.len() + report.present.len(),
            dest.display(),
            report.downloaded.len(),
            report.present.len(),
            if hub.is_offline() { "; offline" } else { "" }
        );
    }
    Ok(())
}

/// The data and weights of `spec` that `hedgehog fetch` knows, fetched when their folder is
/// missing or empty; an error that cannot fetch says how else to get them.
pub(crate) fn ensure_assets(spec: &Spec) -> Result<(), String> {
    let paths = spec
        .task
        .data_path()
        .into_iter()
        .chain(spec.model.pretrained.as_deref());
    for path in paths {
        let empty = std::fs::read_dir(path).map_or(true, |mut entries| entries.next().is_none());
        let Some(asset) = hedgehog_hub::asset_for_path(path).filter(|_| empty) else {
            continue;
        };
        let hub = hedgehog_hub::Hub::from_env();
        println!(
            "{}: not here; fetching `{}` ({}) from {}",
            path.display(),
            asset.name,
            asset.about,
            hub.endpoint()
        );
        hub.fetch(asset, path).map_err(|e| {
            format!(
                "{e}\n`hedgehog fetch {}` retries (resuming what arrived); by hand, put the \
                 files of {} in {}; `just fetch-data` fetches the offline stand-ins \
                 (data/README.md)",
                asset.name,
                asset.page_url(),
                path.display()
            )
        })?;
    }
    Ok(())
}

/// `--set distributed.*` overrides from a launcher's environment, put before the user's own
/// `--set`s (which win): `WORLD_SIZE` processes, this one `RANK`, rank 0 at
/// `MASTER_ADDR:MASTER_PORT` (PyTorch's names, which many launchers set; torchrun's own agent
/// holds `MASTER_PORT`, so under it pass another port with `--set distributed.address`).
/// Nothing when `WORLD_SIZE` is unset or 1.
pub(crate) fn with_launcher_env(overrides: &[String]) -> Result<Vec<String>, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let number = |name: &str, text: String| {
        text.trim()
            .parse::<usize>()
            .map_err(|_| format!("environment variable {name}={text:?}: expected a whole number"))
    };
    let Some(world) = var("WORLD_SIZE") else {
        return Ok(overrides.to_vec());
    };
    let nodes = number("WORLD_SIZE", world)?;
    if nodes <= 1 {
        return Ok(overrides.to_vec());
    }
    let rank = var("RANK").ok_or(
        "environment variable WORLD_SIZE is set but RANK is not: give every process its \
         RANK (0..WORLD_SIZE-1), or unset WORLD_SIZE to run alone",
    )?;
    let rank = number("RANK", rank)?;
    let mut merged = vec![
        format!("distributed.nodes={nodes}"),
        format!("distributed.rank={rank}"),
    ];
    if let Some(port) = var("MASTER_PORT") {
        let host = var("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into());
        merged.push(format!("distributed.address={host}:{}", port.trim()));
    }
    merged.extend_from_slice(overrides);
    Ok(merged)
}
