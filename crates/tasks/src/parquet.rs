//! The Hugging Face Hub's dataset files: a split is one or more parquet shards named
//! `<split>-00000-of-00002.parquet` (or `<split>.parquet`), read with polars. Errors name the
//! file and the column.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use polars::prelude::*;

use crate::error::{DataError, io_error};

/// The shards of `split` in `dir`, in order; empty when there are none. A set with a shard
/// missing (`-of-00002` with one file there) is an error rather than half a split.
pub(crate) fn shards(dir: &Path, split: &str) -> Result<Vec<PathBuf>, DataError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let prefix = format!("{split}-");
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            name.ends_with(".parquet")
                && (name == format!("{split}.parquet") || name.starts_with(&prefix))
        })
        .collect();
    found.sort();
    if let Some(expected) = found.first().and_then(|p| shard_count(p))
        && found.len() != expected
    {
        return Err(DataError::Invalid {
            path: dir.to_path_buf(),
            reason: format!(
                "{} of the {expected} `{split}` parquet shards are here ({}); fetch the \
                 missing ones",
                found.len(),
                names(&found)
            ),
        });
    }
    Ok(found)
}

/// `N` of a shard named `<split>-KKKKK-of-NNNNN.parquet`.
fn shard_count(path: &Path) -> Option<usize> {
    let stem = path.file_stem()?.to_str()?;
    stem.rsplit_once("-of-")?.1.parse().ok()
}

fn names(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The named columns of one parquet file.
pub(crate) fn read(path: &Path, columns: &[&str]) -> Result<DataFrame, DataError> {
    // polars' decoder trusts some of the file's offsets and panics on a damaged page (the
    // fuzzer in tests/fuzz.rs found slice and bitmap bounds); such a file is an error too.
    let _quiet = QuietPolarsPanics::enter();
    std::panic::catch_unwind(AssertUnwindSafe(|| read_columns(path, columns))).unwrap_or_else(
        |panic| {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("no message")
                .to_string();
            Err(DataError::Invalid {
                path: path.to_path_buf(),
                reason: format!(
                    "a damaged parquet file (the reader stopped: {message}); fetch it again"
                ),
            })
        },
    )
}

/// Parquet reads under way: while there are any, a panic raised inside polars (on its own
/// threads too) prints nothing, since [`read`] turns it into an error that says the same
/// thing. Every other panic still prints through the hook that was there before.
static GUARDED_READS: AtomicUsize = AtomicUsize::new(0);

struct QuietPolarsPanics;

impl QuietPolarsPanics {
    fn enter() -> Self {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                let in_polars = info
                    .location()
                    .is_some_and(|at| at.file().contains("/polars-"));
                if !(in_polars && GUARDED_READS.load(Ordering::SeqCst) > 0) {
                    previous(info);
                }
            }));
        });
        GUARDED_READS.fetch_add(1, Ordering::SeqCst);
        Self
    }
}

impl Drop for QuietPolarsPanics {
    fn drop(&mut self) {
        GUARDED_READS.fetch_sub(1, Ordering::SeqCst);
    }
}

fn read_columns(path: &Path, columns: &[&str]) -> Result<DataFrame, DataError> {
    let file = std::fs::File::open(path).map_err(io_error(path))?;
    let invalid = |e: PolarsError| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not a readable parquet file with columns {columns:?}: {e}"),
    };
    let mut reader = ParquetReader::new(file);
    let schema = reader.schema().map_err(invalid)?;
    if let Some(missing) = columns.iter().find(|c| !schema.contains(c)) {
        let present: Vec<&str> = schema.iter_names().map(|n| n.as_str()).collect();
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("no `{missing}` column (the file has {present:?})"),
        });
    }
    reader
        .with_columns(Some(columns.iter().map(|c| c.to_string()).collect()))
        .finish()
        .map_err(invalid)
}

/// A string column, every row present.
pub(crate) fn strings(
    frame: &DataFrame,
    path: &Path,
    name: &str,
) -> Result<Vec<String>, DataError> {
    let column = frame.column(name).and_then(|c| c.str().cloned());
    let column = column.map_err(|e| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("column `{name}` is not text: {e}"),
    })?;
    column
        .iter()
        .enumerate()
        .map(|(row, value)| {
            value.map(str::to_string).ok_or_else(|| DataError::Invalid {
                path: path.to_path_buf(),
                reason: format!("column `{name}` is empty (null) in row {row}"),
            })
        })
        .collect()
}

/// A numeric column as `f64`, every row present.
pub(crate) fn numbers(frame: &DataFrame, path: &Path, name: &str) -> Result<Vec<f64>, DataError> {
    let not_numbers = |e: PolarsError| DataError::Invalid {
        path: path.to_path_buf(),
        reason: format!("column `{name}` is not numeric: {e}"),
    };
    let column = frame.column(name).map_err(not_numbers)?;
    if !column.dtype().is_primitive_numeric() {
        return Err(DataError::Invalid {
            path: path.to_path_buf(),
            reason: format!("column `{name}` holds {}, not numbers", column.dtype()),
        });
    }
    let column = column.cast(&DataType::Float64).map_err(not_numbers)?;
    let values = column.f64().map_err(not_numbers)?;
    values
        .iter()
        .enumerate()
        .map(|(row, value)| {
            value.ok_or_else(|| DataError::Invalid {
                path: path.to_path_buf(),
                reason: format!("column `{name}` is empty (null) in row {row}"),
            })
        })
        .collect()
}
