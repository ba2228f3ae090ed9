//! A paper table with our numbers beside the paper's, and its markdown and CSV.

use polars::prelude::{Column, DataFrame};
use serde::{Deserialize, Serialize};

use super::format::{NOT_AVAILABLE, csv_text, table_error};
use crate::AnalysisError;

/// One row of a [`PaperTable`]: a value per column from the paper and from our newest run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// The paper's label, or ours where we ran a named variant of it ("Hedgehog (softmax_split)").
    pub label: String,
    pub paper: Vec<Option<f64>>,
    pub ours: Vec<Option<f64>>,
    /// `relative` column of the table (None where the table has none or a side lacks numbers).
    pub paper_relative: Option<f64>,
    pub ours_relative: Option<f64>,
    /// The runs our values came from (`spec/run-id`).
    pub runs: Vec<String>,
}

/// A paper table with our numbers beside the paper's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PaperTable {
    pub id: String,
    pub title: String,
    pub metric: String,
    /// Decimals shown for values (2 for perplexity, 1 otherwise); relative columns show 1.
    pub decimals: usize,
    pub columns: Vec<String>,
    /// Header of the derived relative column, if the table has one.
    pub relative: Option<String>,
    pub rows: Vec<TableRow>,
    /// One line per setting our numbers come from, e.g. "MiniLM on the SST-2 stand-in".
    pub settings: Vec<String>,
    pub notes: Vec<String>,
}

impl PaperTable {
    fn format(&self, value: Option<f64>, decimals: usize) -> String {
        value.map_or_else(|| NOT_AVAILABLE.to_string(), |v| format!("{v:.decimals$}"))
    }

    /// Column headers after the label: `paper`/`ours` per column (prefixed with the column's name
    /// when there are several), then the relative pair.
    pub fn headers(&self) -> Vec<String> {
        let mut headers = Vec::new();
        for c in &self.columns {
            for side in ["paper", "ours"] {
                headers.push(if self.columns.len() == 1 {
                    side.to_string()
                } else {
                    format!("{c} {side}")
                });
            }
        }
        if let Some(rel) = &self.relative {
            headers.push(format!("paper {rel}"));
            headers.push(format!("ours {rel}"));
        }
        headers
    }

    /// Each row as its label followed by formatted cells in [`Self::headers`] order.
    pub fn cells(&self) -> Vec<Vec<String>> {
        self.rows
            .iter()
            .map(|row| {
                let mut cells = vec![row.label.clone()];
                for (p, o) in row.paper.iter().zip(&row.ours) {
                    cells.push(self.format(*p, self.decimals));
                    cells.push(self.format(*o, self.decimals));
                }
                if self.relative.is_some() {
                    cells.push(self.format(row.paper_relative, 1));
                    cells.push(self.format(row.ours_relative, 1));
                }
                cells
            })
            .collect()
    }

    /// A markdown section: caption, the settings of "ours", the table, and the notes.
    pub fn to_markdown(&self) -> String {
        let mut md = format!("### {} (`{}`)\n\n{}.\n\n", self.title, self.id, self.metric);
        for s in &self.settings {
            md.push_str(&format!("Ours: {s}.\n"));
        }
        md.push('\n');
        let headers = self.headers();
        md.push_str(&format!("| attention | {} |\n", headers.join(" | ")));
        md.push_str(&format!("|---|{}\n", "---:|".repeat(headers.len())));
        for cells in self.cells() {
            md.push_str(&format!("| {} |\n", cells.join(" | ")));
        }
        if !self.notes.is_empty() {
            md.push('\n');
            for n in &self.notes {
                md.push_str(&format!("- {n}\n"));
            }
        }
        md
    }

    /// The table as a polars frame of formatted strings (what the markdown shows).
    pub fn to_dataframe(&self) -> Result<DataFrame, AnalysisError> {
        let cells = self.cells();
        let names = std::iter::once("attention".to_string()).chain(self.headers());
        let columns: Vec<Column> = names
            .enumerate()
            .map(|(i, name)| {
                let values: Vec<String> = cells.iter().map(|row| row[i].clone()).collect();
                Column::new(name.into(), values)
            })
            .collect();
        DataFrame::new(cells.len(), columns).map_err(|e| self.polars_error(e))
    }

    /// The table as CSV text (through polars), with the same cells as the markdown.
    pub fn to_csv(&self) -> Result<String, AnalysisError> {
        csv_text(&mut self.to_dataframe()?, &self.id)
    }

    fn polars_error(&self, e: polars::error::PolarsError) -> AnalysisError {
        table_error(&self.id, e)
    }
}
