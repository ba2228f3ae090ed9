//! The attention-measures table: every analyze stage's means, one row each.

use polars::prelude::{Column, DataFrame};

use super::format::{NOT_AVAILABLE, csv_text, table_error};
use super::runs::{RunRecord, StageKind};
use crate::AnalysisError;

/// The id (file stem) of the attention-measures table that
/// [`write_tables`](super::write_tables) writes beside the paper tables.
pub const MEASURES_TABLE_ID: &str = "attention_measures";

/// The means over layers and heads of every analyze stage of every finished run: softmax and
/// map entropy (nats), KL(softmax ‖ map) and the map's Spearman ρ against q·k; as markdown and
/// as CSV (through polars). ρ is taken within each row, where softmax's is 1 by construction
/// and the raw kernel's equals the weights' (a row's normaliser does not change ranks), so
/// those two are left out. The figures show the same reports per layer and head.
pub fn measures_table(runs: &[RunRecord]) -> Result<(String, String), AnalysisError> {
    const HEADERS: [&str; 7] = [
        "run",
        "stage",
        "attention",
        "softmax entropy",
        "map entropy",
        "KL(softmax ‖ map)",
        "map ρ",
    ];
    let mut text: [Vec<String>; 3] = Default::default();
    let mut values: [Vec<Option<f64>>; 4] = Default::default();
    for run in runs.iter().filter(|r| r.summary.finished) {
        for stage in &run.summary.stages {
            let (StageKind::Analyze, Some(relative)) = (stage.kind, &stage.analysis) else {
                continue;
            };
            let report = crate::AttentionReport::load(&run.dir.join(relative))?;
            let s = report.summary();
            for (column, v) in
                text.iter_mut()
                    .zip([run.name(), stage.label.clone(), report.attention.clone()])
            {
                column.push(v);
            }
            let numbers = [
                s.teacher_entropy,
                s.student_entropy,
                s.kl,
                s.student_spearman,
            ];
            for (column, v) in values.iter_mut().zip(numbers) {
                column.push(v);
            }
        }
    }
    let rows = text[0].len();
    let format =
        |v: &Option<f64>| v.map_or_else(|| NOT_AVAILABLE.to_string(), |v| format!("{v:.3}"));
    let mut md = String::from(
        "### Attention measures of every analyze stage (`attention_measures`)\n\n\
         Means over layers and heads; entropy and KL in nats; map ρ is Spearman's rank \
         correlation of the map's weights with q·k within each row (softmax's is 1). Softmax is \
         the teacher on the same queries and keys. Per layer and head: the run's \
         `analysis/*.json` and `just plots`.\n\n",
    );
    md.push_str(&format!("| {} |\n", HEADERS.join(" | ")));
    md.push_str(&format!("|---|---|---|{}\n", "---:|".repeat(values.len())));
    for i in 0..rows {
        let cells: Vec<String> = text
            .iter()
            .map(|c| c[i].clone())
            .chain(values.iter().map(|c| format(&c[i])))
            .collect();
        md.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    if rows == 0 {
        md.push_str("\nNo finished run has an analyze stage yet.\n");
    }
    let columns: Vec<Column> = HEADERS
        .iter()
        .zip(text.iter())
        .map(|(name, c)| Column::new((*name).into(), c.clone()))
        .chain(
            HEADERS[3..]
                .iter()
                .zip(values.iter())
                .map(|(name, c)| Column::new((*name).into(), c.clone())),
        )
        .collect();
    let mut frame = DataFrame::new(rows, columns).map_err(|e| table_error(MEASURES_TABLE_ID, e))?;
    Ok((md, csv_text(&mut frame, MEASURES_TABLE_ID)?))
}
