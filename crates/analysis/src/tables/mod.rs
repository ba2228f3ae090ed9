//! The paper's tables next to our runs: `results/<spec>/<run-id>/summary.json` → markdown and CSV.
//!
//! Each table has the paper's rows with a "paper" and an "ours" value per column. A run names its
//! table in `report_table` and contributes rows (see [`RunSummary`]); a run row matches a paper
//! row when its label equals the paper's, or starts with it followed by `" ("` (so
//! "Hedgehog (softmax_split)" fills "Hedgehog"). Rows only we have are listed after the paper's.
//! When several runs fill the same cell, the newest wins: the largest run number, then the latest
//! `summary.json` modification time.
//!
//! Run folders are read in `runs`; the paper's numbers are data in `paper_numbers`; `fill` puts our
//! runs into the paper's rows and `paper_table` renders a table; `measures_table` lists the
//! attention measures of every run, `passkey_table` every passkey stage's accuracy by length; `format` holds the cell text and CSV writing they share.

mod fill;
mod format;
mod measures_table;
mod paper_numbers;
mod paper_table;
mod passkey_table;
mod runs;

use std::path::Path;

pub use fill::{paper_tables, unknown_table_runs};
pub use format::NOT_AVAILABLE;
pub use measures_table::{MEASURES_TABLE_ID, measures_table};
pub use paper_numbers::TABLE_IDS;
pub use paper_table::{PaperTable, TableRow};
pub use passkey_table::{
    PASSKEY_TABLE_ID, PasskeyCell, PasskeyReport, PasskeySpeed, passkey_reports, passkey_table,
};
pub use runs::{RunRecord, RunSummary, StageKind, StageSummary, collect_runs};

use crate::AnalysisError;

/// Builds every table from `results_dir`, writes `<out_dir>/<id>.md` and `<out_dir>/<id>.csv`
/// (the paper tables, then [`MEASURES_TABLE_ID`] and [`PASSKEY_TABLE_ID`]), and returns all of the markdown, followed by
/// a line on any run that reports to an unknown table.
pub fn write_tables(results_dir: &Path, out_dir: &Path) -> Result<String, AnalysisError> {
    let runs = collect_runs(results_dir)?;
    std::fs::create_dir_all(out_dir).map_err(AnalysisError::io(out_dir))?;
    let mut all = Vec::new();
    for table in paper_tables(&runs) {
        let md = table.to_markdown();
        let md_path = out_dir.join(format!("{}.md", table.id));
        std::fs::write(&md_path, &md).map_err(AnalysisError::io(&md_path))?;
        let csv_path = out_dir.join(format!("{}.csv", table.id));
        std::fs::write(&csv_path, table.to_csv()?).map_err(AnalysisError::io(&csv_path))?;
        all.push(md);
    }
    for (id, (md, csv)) in [
        (MEASURES_TABLE_ID, measures_table(&runs)?),
        (PASSKEY_TABLE_ID, passkey_table(&runs)?),
    ] {
        for (ext, text) in [("md", &md), ("csv", &csv)] {
            let path = out_dir.join(format!("{id}.{ext}"));
            std::fs::write(&path, text).map_err(AnalysisError::io(&path))?;
        }
        all.push(md);
    }
    let unknown = unknown_table_runs(&runs);
    if !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|(run, t)| format!("{run} (`{t}`)"))
            .collect();
        all.push(format!(
            "Runs reporting to no known table (known: {}): {}.\n",
            TABLE_IDS.join(", "),
            list.join(", ")
        ));
    }
    Ok(all.join("\n"))
}
