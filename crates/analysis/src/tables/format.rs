//! What the tables share: the text of a missing cell, and CSV through polars.

use std::io::Cursor;

use polars::prelude::{CsvWriter, DataFrame, SerWriter};

use crate::AnalysisError;

/// What a missing cell says.
pub const NOT_AVAILABLE: &str = "not available";

pub(super) fn table_error(table: &str, e: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Table {
        table: table.to_string(),
        message: e.to_string(),
    }
}

/// A frame as CSV text, through polars.
pub(super) fn csv_text(frame: &mut DataFrame, table: &str) -> Result<String, AnalysisError> {
    let mut buffer = Cursor::new(Vec::new());
    CsvWriter::new(&mut buffer)
        .finish(frame)
        .map_err(|e| table_error(table, e))?;
    String::from_utf8(buffer.into_inner()).map_err(|e| table_error(table, e))
}
