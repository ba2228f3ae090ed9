//! The passkey table from run folders written the way the passkey stage writes them.

use std::path::Path;

use hedgehog_analysis::collect_runs;
use hedgehog_analysis::tables::passkey_table;

fn write_run(results: &Path, run: &str, attention: &str, accuracy: [f64; 2], finished: bool) {
    let dir = results.join("passkey_spec").join(run);
    std::fs::create_dir_all(dir.join("analysis")).unwrap();
    let summary = serde_json::json!({
        "name": "passkey_spec",
        "finished": finished,
        "stages": [{"label": "zero-shot", "kind": "passkey", "attention": attention,
                    "analysis": "analysis/passkey-stage-0.json"}],
    });
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
    let report = serde_json::json!({
        "attention": attention, "label": "zero-shot", "lengths": [256, 512], "depths": [0.0, 1.0],
        "trials_per_cell": 1, "seed": 0,
        "length_accuracy": {"256": accuracy[0], "512": accuracy[1]},
        "cells": [{"length": 256, "depth": 0.0, "trials": 1, "correct": 1, "accuracy": 1.0}],
        "speed": [{"length": 256, "ms_per_token": 3.5, "cache_bytes": 1024}],
        "trials": [],
    });
    std::fs::write(
        dir.join("analysis/passkey-stage-0.json"),
        report.to_string(),
    )
    .unwrap();
}

#[test]
fn the_table_lists_each_runs_accuracy_by_length_with_its_folder() {
    let results =
        std::env::temp_dir().join(format!("hedgehog-passkey-table-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&results);
    write_run(&results, "run-001", "softmax", [1.0, 0.75], true);
    write_run(
        &results,
        "run-002",
        "Hedgehog (softmax_split)",
        [0.25, 0.0],
        true,
    );
    write_run(&results, "run-003", "T2R", [0.5, 0.5], false);
    let runs = collect_runs(&results).unwrap();
    let (md, csv) = passkey_table(&runs).unwrap();
    assert!(
        md.contains("| attention | run | 256 tokens | 512 tokens |"),
        "{md}"
    );
    assert!(
        md.contains("| softmax | passkey_spec/run-001 | 1.00 | 0.75 |"),
        "{md}"
    );
    assert!(
        md.contains("| Hedgehog (softmax_split) | passkey_spec/run-002 | 0.25 | 0.00 |"),
        "{md}"
    );
    assert!(!md.contains("T2R"), "unfinished runs are left out");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    std::fs::remove_dir_all(&results).ok();
}
