//! Paper tables from a results folder built here, in the run-folder schema of the train crate.

use std::path::Path;

use hedgehog_analysis::tables::{NOT_AVAILABLE, TableRow};
use hedgehog_analysis::{PaperTable, collect_runs, paper_tables, write_tables};
use serde_json::{Value, json};

fn stage(attention: &str, metrics: Value, headline: Option<&str>, row: Option<&str>) -> Value {
    json!({
        "label": "finetune", "kind": "finetune", "steps": 10, "final_loss": 0.5,
        "attention": attention, "metrics": metrics, "headline": headline, "row": row,
        "seconds": 1.0, "stopped_early": false, "analysis": null,
        "a_field_from_the_future": [1, 2, 3]
    })
}

fn write_run(results: &Path, spec: &str, run: &str, summary: Value) {
    let dir = results.join(spec).join(run);
    std::fs::create_dir_all(dir.join("checkpoints")).unwrap();
    std::fs::write(
        dir.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
}

fn summary(name: &str, table: &str, setting: &str, finished: bool, stages: Vec<Value>) -> Value {
    json!({
        "name": name, "run_dir": format!("results/{name}/run-001"), "setting": setting,
        "report_table": table, "sweep": null, "parameters": 1234, "finished": finished,
        "glue_task": null, "stages": stages
    })
}

fn table<'a>(tables: &'a [PaperTable], id: &str) -> &'a PaperTable {
    tables.iter().find(|t| t.id == id).unwrap()
}

fn row<'a>(table: &'a PaperTable, label: &str) -> &'a TableRow {
    table
        .rows
        .iter()
        .find(|r| r.label == label)
        .unwrap_or_else(|| panic!("no row {label} in {}", table.to_markdown()))
}

/// A results folder with CoLA conversions, a recall sweep, a GLUE run, an unfinished run,
/// a run still going (no summary.json) and a benchmark folder.
fn results() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path();
    let cola = "MiniLM on the CoLA stand-in";
    let matthews = |v: f64| json!({"matthews": v});
    write_run(
        r,
        "cola",
        "run-001",
        summary(
            "cola",
            "finetuned_conversion",
            cola,
            true,
            vec![
                stage("softmax", matthews(40.0), Some("matthews"), Some("softmax")),
                stage("1+ELU", matthews(10.0), Some("matthews"), Some("1+ELU")),
            ],
        ),
    );
    // newer: its 1+ELU wins; it also gives the Hedgehog row through the prefix match
    write_run(
        r,
        "cola",
        "run-002",
        summary(
            "cola",
            "finetuned_conversion",
            cola,
            true,
            vec![
                stage("1+ELU", matthews(20.0), Some("matthews"), Some("1+ELU")),
                stage(
                    "Hedgehog (softmax_split)",
                    matthews(38.0),
                    Some("matthews"),
                    Some("Hedgehog (softmax_split)"),
                ),
                stage(
                    "Mystery map",
                    matthews(5.0),
                    Some("matthews"),
                    Some("Mystery map"),
                ),
            ],
        ),
    );
    write_run(
        r,
        "cola",
        "run-003",
        summary(
            "cola",
            "finetuned_conversion",
            cola,
            false,
            vec![stage(
                "1+ELU",
                matthews(99.0),
                Some("matthews"),
                Some("1+ELU"),
            )],
        ),
    );
    std::fs::create_dir_all(r.join("cola").join("run-004")).unwrap(); // still running
    // no `row`: the last stage with a headline gives one row, labelled with its attention
    let mqar = "GPT-2 2×64 from scratch on MQAR — stand-in for the paper's AR";
    write_run(
        r,
        "recall_sweep",
        "run-001",
        summary(
            "recall_sweep",
            "recall",
            mqar,
            true,
            vec![
                stage(
                    "Taylor-2",
                    json!({"accuracy": 97.26}),
                    Some("accuracy"),
                    None,
                ),
                json!({"label": "analyse", "kind": "analyze", "steps": 0, "attention": "Taylor-2",
               "metrics": {}, "headline": null, "row": null}),
            ],
        ),
    );
    let mut sst2 = summary(
        "glue_sst2",
        "glue",
        "MiniLM on the movie-review SST-2 stand-in",
        true,
        vec![
            stage(
                "softmax",
                json!({"accuracy": 90.0}),
                Some("accuracy"),
                Some("softmax"),
            ),
            stage(
                "Hedgehog",
                json!({"accuracy": 88.2}),
                Some("accuracy"),
                Some("Hedgehog"),
            ),
        ],
    );
    sst2["glue_task"] = json!("SST-2");
    write_run(r, "glue_sst2", "run-001", sst2);
    write_run(
        r,
        "typo",
        "run-001",
        summary(
            "typo",
            "recal",
            mqar,
            true,
            vec![stage(
                "softmax",
                json!({"accuracy": 50.0}),
                Some("accuracy"),
                None,
            )],
        ),
    );
    std::fs::create_dir_all(r.join("bench")).unwrap();
    std::fs::write(r.join("bench").join("rust_ndarray.csv"), "a,b\n").unwrap();
    dir
}

#[test]
fn runs_are_collected_and_unknown_fields_ignored() {
    let dir = results();
    let runs = collect_runs(dir.path()).unwrap();
    let ids: Vec<String> = runs
        .iter()
        .map(|r| format!("{}/{}", r.spec, r.run_id))
        .collect();
    assert_eq!(
        ids,
        [
            "cola/run-001",
            "cola/run-002",
            "cola/run-003",
            "glue_sst2/run-001",
            "recall_sweep/run-001",
            "typo/run-001",
        ]
    );
    assert!(!runs[2].summary.finished);
}

#[test]
fn finetuned_conversion_table() {
    let dir = results();
    let tables = paper_tables(&collect_runs(dir.path()).unwrap());
    let t = table(&tables, "finetuned_conversion");
    // newest run wins, and the unfinished run-003 (99.0) is skipped with a note
    assert_eq!(row(t, "1+ELU").ours, vec![Some(20.0)]);
    assert_eq!(row(t, "1+ELU").runs, vec!["cola/run-002".to_string()]);
    assert!(
        t.notes
            .iter()
            .any(|n| n.contains("cola/run-003") && n.contains("not finished"))
    );
    // the Hedgehog variant fills the paper's Hedgehog row
    let hh = row(t, "Hedgehog (softmax_split)");
    assert_eq!((hh.paper[0], hh.ours[0]), (Some(59.2), Some(38.0)));
    assert!((hh.ours_relative.unwrap() - 95.0).abs() < 1e-9);
    assert!((hh.paper_relative.unwrap() - 59.2 / 58.8 * 100.0).abs() < 1e-9);
    // a paper row without a run
    let relu = row(t, "ReLU");
    assert_eq!(
        (relu.paper[0], relu.ours[0], relu.ours_relative),
        (Some(39.5), None, None)
    );
    // an ours-only row comes after the paper's rows
    let last = t.rows.last().unwrap();
    assert_eq!(
        (last.label.as_str(), last.paper[0], last.ours[0]),
        ("Mystery map", None, Some(5.0))
    );
    let md = t.to_markdown();
    assert!(
        md.contains("Ours: MiniLM on the CoLA stand-in (cola/run-001, cola/run-002)."),
        "{md}"
    );
    assert!(
        md.contains("| ReLU | 39.5 | not available | 67.2 | not available |"),
        "{md}"
    );
    assert!(
        md.contains("| softmax | 58.8 | 40.0 | 100.0 | 100.0 |"),
        "{md}"
    );
}

#[test]
fn recall_uses_the_last_headline_stage_and_marks_the_stand_in() {
    let dir = results();
    let tables = paper_tables(&collect_runs(dir.path()).unwrap());
    let t = table(&tables, "recall");
    assert_eq!(row(t, "Taylor-2").ours, vec![Some(97.26)]);
    assert_eq!(row(t, "softmax").ours, vec![None]);
    let md = t.to_markdown();
    assert!(md.contains("stand-in for the paper's AR"), "{md}");
    assert!(md.contains("| Taylor-2 | 100.0 | 97.3 |"), "{md}"); // 1 decimal
}

#[test]
fn glue_fills_the_task_column_of_the_run() {
    let dir = results();
    let tables = paper_tables(&collect_runs(dir.path()).unwrap());
    let t = table(&tables, "glue");
    let hh = row(t, "Hedgehog");
    assert_eq!(hh.ours[1], Some(88.2));
    assert_eq!(hh.ours.iter().flatten().count(), 1);
    // the paper's 99.3% is the ratio of the two averages (method.md §4)
    assert!((hh.paper_relative.unwrap() - 99.3).abs() < 0.05);
    assert!((hh.ours_relative.unwrap() - 98.0).abs() < 1e-9);
    assert!(t.notes.iter().any(|n| n.contains("covers only SST-2")));
    assert!(t.headers().contains(&"SST-2 ours".to_string()));
}

#[test]
fn empty_tables_say_not_available() {
    let dir = results();
    let tables = paper_tables(&collect_runs(dir.path()).unwrap());
    let gpt2 = table(&tables, "gpt2_conversion");
    assert!(gpt2.rows.iter().all(|r| r.ours == vec![None]));
    assert!(gpt2.settings[0].contains("no finished run"));
    assert!(
        gpt2.to_markdown()
            .contains("| GPT-2 zero-shot | 28.00 | not available |")
    );
    let scratch = table(&tables, "lm_scratch");
    assert!(scratch.rows.is_empty());
    assert!(scratch.notes[0].contains("not available"));
    let vit = table(&tables, "vit");
    assert!(vit.notes.iter().any(|n| n.contains("T2R-HH")));
}

#[test]
fn write_tables_writes_markdown_and_csv() {
    let dir = results();
    let out = dir.path().join("tables");
    let md = write_tables(dir.path(), &out).unwrap();
    assert!(md.contains("finetuned_conversion") && md.contains("lm_scratch"));
    assert!(md.contains("typo/run-001 (`recal`)"), "{md}");
    for id in hedgehog_analysis::tables::TABLE_IDS {
        assert!(out.join(format!("{id}.md")).is_file());
    }
    let csv = std::fs::read_to_string(out.join("finetuned_conversion.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "attention,paper,ours,paper % of softmax,ours % of softmax"
    );
    assert!(
        csv.contains(&format!("ReLU,39.5,{NOT_AVAILABLE},67.2,{NOT_AVAILABLE}")),
        "{csv}"
    );
}

#[test]
fn broken_inputs_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    assert!(collect_runs(&missing).is_err());
    write_run(dir.path(), "x", "run-001", json!({"stages": 3}));
    let err = collect_runs(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("summary.json") && err.contains("run summary"),
        "{err}"
    );
}
