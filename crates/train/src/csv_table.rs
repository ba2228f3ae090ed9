//! The CSV files of a run folder (`metrics.csv`, `distill_layers.csv`) through polars: read
//! back by column name, and rewritten whole and atomically (temporary file, then rename), so a
//! kill never leaves half a row.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::error::{RunError, file_error};

/// A column's name (its prefix removed) and values.
pub(crate) type NamedColumn = (String, Vec<Option<f64>>);

/// A CSV file this crate wrote, read whole.
pub(crate) struct CsvTable {
    path: PathBuf,
    frame: DataFrame,
}

pub(crate) fn polars_error(path: &Path) -> impl Fn(PolarsError) -> RunError + '_ {
    move |e| RunError::File {
        path: path.to_path_buf(),
        message: format!("metrics table: {e}"),
    }
}

impl CsvTable {
    pub fn read(path: &Path) -> Result<Self, RunError> {
        let frame = CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(None)
            .try_into_reader_with_file_path(Some(path.to_path_buf()))
            .and_then(|reader| reader.finish())
            .map_err(polars_error(path))?;
        Ok(Self {
            path: path.to_path_buf(),
            frame,
        })
    }

    pub fn height(&self) -> usize {
        self.frame.height()
    }

    /// Column names in file order.
    pub fn names(&self) -> Vec<String> {
        self.frame
            .get_column_names()
            .into_iter()
            .map(|name| name.to_string())
            .collect()
    }

    /// A numeric column as `f64` (empty cells `None`).
    pub fn floats(&self, name: &str) -> Result<Vec<Option<f64>>, RunError> {
        let error = polars_error(&self.path);
        let column = self.frame.column(name).map_err(&error)?;
        let column = column.cast(&DataType::Float64).map_err(&error)?;
        let values = column.f64().map_err(&error)?;
        Ok((0..values.len()).map(|i| values.get(i)).collect())
    }

    /// Every numeric column whose name starts with `prefix` (`loss_`, `val_`), in file order,
    /// named without it.
    pub fn prefixed(&self, prefix: &str) -> Result<Vec<NamedColumn>, RunError> {
        let mut columns = Vec::new();
        for name in self.names() {
            if let Some(short) = name.strip_prefix(prefix) {
                columns.push((short.to_string(), self.floats(&name)?));
            }
        }
        Ok(columns)
    }

    /// Row `i` of `columns` as a map, empty cells left out.
    pub fn row_of(columns: &[NamedColumn], i: usize) -> std::collections::BTreeMap<String, f64> {
        columns
            .iter()
            .filter_map(|(name, values)| values[i].map(|v| (name.clone(), v)))
            .collect()
    }

    /// A column of counts (empty cells 0).
    pub fn counts(&self, name: &str) -> Result<Vec<usize>, RunError> {
        Ok(self
            .floats(name)?
            .into_iter()
            .map(|v| v.unwrap_or(0.0) as usize)
            .collect())
    }

    pub fn strings(&self, name: &str) -> Result<Vec<String>, RunError> {
        let error = polars_error(&self.path);
        let column = self.frame.column(name).map_err(&error)?;
        let column = column.cast(&DataType::String).map_err(&error)?;
        let values = column.str().map_err(&error)?;
        Ok((0..values.len())
            .map(|i| values.get(i).unwrap_or_default().to_string())
            .collect())
    }
}

/// Writes `columns` (each `rows` long) to `path` atomically, with a header.
pub(crate) fn write_atomically(
    path: &Path,
    rows: usize,
    columns: Vec<Column>,
) -> Result<(), RunError> {
    let error = polars_error(path);
    let mut frame = DataFrame::new(rows, columns).map_err(&error)?;
    let partial = path.with_extension("csv.partial");
    let mut file = std::fs::File::create(&partial).map_err(file_error(&partial))?;
    CsvWriter::new(&mut file)
        .include_header(true)
        .finish(&mut frame)
        .map_err(&error)?;
    file.sync_all().map_err(file_error(&partial))?;
    std::fs::rename(&partial, path).map_err(file_error(path))
}
