//! Filling the paper's tables with the finished runs that report to them.

use std::collections::{BTreeMap, BTreeSet};

use super::paper_numbers::{TABLE_IDS, TABLES, TableSpec};
use super::paper_table::{PaperTable, TableRow};
use super::runs::{RunRecord, StageSummary};

/// A run's value for one cell.
struct Contribution<'a> {
    label: String,
    column: usize,
    value: f64,
    run: &'a RunRecord,
}

/// Every paper table (in [`TABLE_IDS`] order) filled with the finished runs that report to it.
/// Unfinished runs and stages without a usable headline metric are left out with a note in
/// their table; runs naming a table id this crate does not know are in none (see
/// [`unknown_table_runs`]).
pub fn paper_tables(runs: &[RunRecord]) -> Vec<PaperTable> {
    TABLES.iter().map(|spec| build_table(spec, runs)).collect()
}

fn build_table(spec: &TableSpec, runs: &[RunRecord]) -> PaperTable {
    let mut notes = spec_notes(spec);
    let contributions = finished_contributions(spec, runs, &mut notes);
    let (cells, ours_only) = newest_cells(spec, &contributions);
    let mut rows = table_rows(spec, &cells, ours_only);
    if let Some(header) = spec.relative {
        fill_relative(&mut rows, spec, header, &mut notes);
    }
    PaperTable {
        id: spec.id.to_string(),
        title: spec.title.to_string(),
        metric: spec.metric.to_string(),
        decimals: spec.decimals,
        columns: spec.columns.iter().map(|c| c.to_string()).collect(),
        relative: spec.relative.map(str::to_string),
        rows,
        settings: settings(&cells),
        notes,
    }
}

/// The newest run's contribution per (row key, column): the key is the paper row a label fills,
/// or the label itself for a row the paper lacks.
type Cells<'c, 'a> = BTreeMap<(String, usize), &'c Contribution<'a>>;

/// The table's own notes, then one for each row the paper names differently.
fn spec_notes(spec: &TableSpec) -> Vec<String> {
    let mut notes: Vec<String> = spec.notes.iter().map(|n| n.to_string()).collect();
    for r in spec.rows.iter() {
        if let Some(name) = r.paper_name {
            notes.push(format!("{}: the paper's row is {name}.", r.label));
        }
    }
    notes
}

/// The cells of every finished run that reports to the table; the others get a note.
fn finished_contributions<'a>(
    spec: &TableSpec,
    runs: &'a [RunRecord],
    notes: &mut Vec<String>,
) -> Vec<Contribution<'a>> {
    let mut contributions = Vec::new();
    for run in runs {
        if run.summary.report_table.as_deref() != Some(spec.id) {
            continue;
        }
        if !run.summary.finished {
            notes.push(format!(
                "Skipped {}: not finished (summary.json has no `finished: true`).",
                run.name()
            ));
            continue;
        }
        contributions.extend(run_contributions(spec, run, notes));
    }
    contributions
}

/// The newest run per (row, column), and the labels of the rows the paper lacks. Those keep the
/// order of the runs (a sweep's order), not the alphabet's.
fn newest_cells<'c, 'a>(
    spec: &TableSpec,
    contributions: &'c [Contribution<'a>],
) -> (Cells<'c, 'a>, Vec<String>) {
    let mut cells: Cells = BTreeMap::new();
    let mut ours_only: Vec<String> = Vec::new();
    for c in contributions {
        let key = match spec.rows.iter().find(|r| matches_row(&c.label, r.label)) {
            Some(r) => r.label.to_string(),
            None => {
                if !ours_only.contains(&c.label) {
                    ours_only.push(c.label.clone());
                }
                c.label.clone()
            }
        };
        let slot = cells.entry((key, c.column)).or_insert(c);
        if c.run.age_key() > slot.run.age_key() {
            *slot = c;
        }
    }
    (cells, ours_only)
}

/// The paper's rows, then ours only, each with the paper's values and the newest of ours.
fn table_rows(spec: &TableSpec, cells: &Cells, ours_only: Vec<String>) -> Vec<TableRow> {
    let width = spec.columns.len();
    let paper_rows = spec.rows.iter().map(|r| (r.label.to_string(), r.values));
    let extra_rows = ours_only.into_iter().map(|l| (l, &[][..]));
    paper_rows
        .chain(extra_rows)
        .map(|(key, paper_values)| {
            let winners: Vec<Option<&Contribution>> = (0..width)
                .map(|c| cells.get(&(key.clone(), c)).copied())
                .collect();
            let newest = winners
                .iter()
                .flatten()
                .max_by(|a, b| a.run.age_key().cmp(&b.run.age_key()));
            let runs: BTreeSet<String> = winners.iter().flatten().map(|c| c.run.name()).collect();
            TableRow {
                label: newest.map_or(key.clone(), |c| c.label.clone()),
                paper: (0..width)
                    .map(|c| paper_values.get(c).copied().flatten())
                    .collect(),
                ours: winners.iter().map(|c| c.map(|c| c.value)).collect(),
                paper_relative: None,
                ours_relative: None,
                runs: runs.into_iter().collect(),
            }
        })
        .collect()
}

/// One line per setting that "ours" comes from, with the runs that have it.
fn settings(cells: &Cells) -> Vec<String> {
    let mut settings: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for c in cells.values() {
        let setting = c
            .run
            .summary
            .setting
            .clone()
            .unwrap_or_else(|| format!("{} (the run states no setting)", c.run.summary.name));
        settings.entry(setting).or_default().insert(c.run.name());
    }
    if settings.is_empty() {
        vec!["no finished run reports to this table yet".to_string()]
    } else {
        settings
            .into_iter()
            .map(|(s, runs)| format!("{s} ({})", Vec::from_iter(runs).join(", ")))
            .collect()
    }
}

/// `label` fills the paper row `paper` when equal, or when it names a variant: `"paper (…"`.
fn matches_row(label: &str, paper: &str) -> bool {
    label == paper
        || label
            .strip_prefix(paper)
            .is_some_and(|rest| rest.starts_with(" ("))
}

/// The rows a run gives: every stage with a `row`, or else its last stage with a headline,
/// labelled with that stage's attention.
fn run_contributions<'a>(
    spec: &TableSpec,
    run: &'a RunRecord,
    notes: &mut Vec<String>,
) -> Vec<Contribution<'a>> {
    let column = if spec.columns.len() == 1 {
        0
    } else {
        let task = run.summary.glue_task.as_deref();
        match task.and_then(|t| spec.columns.iter().position(|c| *c == t)) {
            Some(c) => c,
            None => {
                notes.push(format!(
                    "Skipped {}: its glue_task {:?} is not one of {}.",
                    run.name(),
                    task,
                    spec.columns.join(", ")
                ));
                return Vec::new();
            }
        }
    };
    let stages = &run.summary.stages;
    let chosen: Vec<(&StageSummary, String)> = if stages.iter().any(|s| s.row.is_some()) {
        stages
            .iter()
            .filter_map(|s| s.row.clone().map(|r| (s, r)))
            .collect()
    } else {
        stages
            .iter()
            .rev()
            .find(|s| s.headline.is_some())
            .map(|s| (s, s.attention.clone()))
            .into_iter()
            .collect()
    };
    if chosen.is_empty() {
        notes.push(format!(
            "Skipped {}: no stage has a row or a headline metric.",
            run.name()
        ));
    }
    let mut out = Vec::new();
    for (stage, label) in chosen {
        let headline = stage.headline.as_deref();
        match headline.and_then(|h| stage.metrics.get(h).copied().flatten()) {
            Some(value) if value.is_finite() => out.push(Contribution {
                label,
                column,
                value,
                run,
            }),
            _ => notes.push(format!(
                "Skipped {} stage `{}` (row {label}): its headline metric {headline:?} has no \
                 finite value.",
                run.name(),
                stage.label
            )),
        }
    }
    out
}

/// The relative column: mean(row) / mean(softmax) × 100 over the columns both have, per source.
fn fill_relative(rows: &mut [TableRow], spec: &TableSpec, header: &str, notes: &mut Vec<String>) {
    let Some(softmax) = rows.iter().position(|r| matches_row(&r.label, "softmax")) else {
        return;
    };
    let (paper_base, ours_base) = (rows[softmax].paper.clone(), rows[softmax].ours.clone());
    let ratio = |values: &[Option<f64>], base: &[Option<f64>]| {
        let both: Vec<(f64, f64)> = values
            .iter()
            .zip(base)
            .filter_map(|(v, b)| v.zip(*b))
            .collect();
        let (sum_v, sum_b) = both
            .iter()
            .fold((0.0, 0.0), |(sv, sb), (v, b)| (sv + v, sb + b));
        (!both.is_empty() && sum_b != 0.0).then(|| (sum_v / sum_b * 100.0, both.len()))
    };
    for row in rows.iter_mut() {
        row.paper_relative = ratio(&row.paper, &paper_base).map(|(r, _)| r);
        if let Some((r, used)) = ratio(&row.ours, &ours_base) {
            row.ours_relative = Some(r);
            if used < spec.columns.len() {
                let tasks: Vec<&str> = (0..spec.columns.len())
                    .filter(|&c| row.ours[c].is_some() && ours_base[c].is_some())
                    .map(|c| spec.columns[c])
                    .collect();
                notes.push(format!(
                    "Ours {header} for {} covers only {}.",
                    row.label,
                    tasks.join(", ")
                ));
            }
        }
    }
}

/// Runs whose `report_table` is not one of [`TABLE_IDS`] (a typo in a spec, or a table newer
/// than this crate), as `(spec/run-id, table id)`.
pub fn unknown_table_runs(runs: &[RunRecord]) -> Vec<(String, String)> {
    runs.iter()
        .filter_map(|r| {
            let table = r.summary.report_table.as_deref()?;
            (!TABLE_IDS.contains(&table)).then(|| (r.name(), table.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_matching() {
        assert!(matches_row("Hedgehog", "Hedgehog"));
        assert!(matches_row("Hedgehog (softmax_split)", "Hedgehog"));
        assert!(!matches_row("Hedgehogs", "Hedgehog"));
        assert!(!matches_row("exp(t=1)", "exp(t=2)"));
    }
}
