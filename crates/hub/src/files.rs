//! Files on disk: whether one is already whole, its `.partial` twin, its sha256, atomic
//! writes, and sizes for messages.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::FetchError;
use crate::listing::RemoteFile;

/// Whether `target` is already the listed file (size, and sha256 where the hub gives one).
pub(crate) fn is_whole(target: &Path, file: &RemoteFile) -> Result<bool, FetchError> {
    match std::fs::metadata(target) {
        Ok(meta) if meta.len() == file.size => match &file.sha256 {
            Some(expected) => Ok(&sha256_of(target)? == expected),
            None => Ok(true),
        },
        _ => Ok(false),
    }
}

pub(crate) fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

pub(crate) fn sha256_of(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes).map_err(io(&partial))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}
