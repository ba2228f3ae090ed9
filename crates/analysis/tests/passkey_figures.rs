//! The passkey figures, drawn from run folders written the way the passkey stage writes them.
//! Set `HEDGEHOG_PLOT_DIR=<dir>` to keep the figures for a look.

use std::path::{Path, PathBuf};

use hedgehog_analysis::figures::{FigureList, draw_all};
use hedgehog_analysis::plots::{PlotFiles, generation_memory, passkey_heatmaps};
use hedgehog_analysis::tables::PasskeyReport;
use hedgehog_analysis::{AnalysisError, collect_runs};

const LENGTHS: [usize; 3] = [256, 512, 1024];
const DEPTHS: [f64; 3] = [0.0, 0.5, 1.0];

/// A passkey report: `accuracy(length, depth)` per cell; the cache grows with the length when
/// `growing_cache` (softmax's KV cache) and stays fixed otherwise (a linear map's state).
fn report_json(
    attention: &str,
    label: &str,
    accuracy: impl Fn(usize, f64) -> f64,
    growing_cache: bool,
) -> serde_json::Value {
    let cells: Vec<_> = LENGTHS
        .iter()
        .flat_map(|&length| DEPTHS.iter().map(move |&depth| (length, depth)))
        .map(|(length, depth)| {
            let a = accuracy(length, depth);
            serde_json::json!({"length": length, "depth": depth, "trials": 4,
                               "correct": (a * 4.0) as usize, "accuracy": a})
        })
        .collect();
    let speed: Vec<_> = LENGTHS
        .iter()
        .map(|&length| {
            let cache = if growing_cache { 4096 * length } else { 65536 };
            serde_json::json!({"length": length, "prompt_tokens": length, "prefill_ms": 10.0,
                "decode_steps": 8, "ms_per_token": if growing_cache { 2.0 + length as f64 / 256.0 } else { 3.0 },
                "cache_bytes_after_prefill": cache, "cache_bytes": cache + 4096,
                "peak_rss_mib": 300.0})
        })
        .collect();
    let length_accuracy: serde_json::Map<String, serde_json::Value> = LENGTHS
        .iter()
        .map(|&l| {
            let mean = DEPTHS.iter().map(|&d| accuracy(l, d)).sum::<f64>() / DEPTHS.len() as f64;
            (l.to_string(), mean.into())
        })
        .collect();
    serde_json::json!({
        "attention": attention, "label": label, "lengths": LENGTHS, "depths": DEPTHS,
        "trials_per_cell": 4, "seed": 0, "length_accuracy": length_accuracy,
        "cells": cells, "speed": speed, "trials": [],
    })
}

/// A finished run of `spec` with one passkey stage per report.
fn write_run(results: &Path, spec: &str, run: &str, reports: &[serde_json::Value]) {
    let dir = results.join(spec).join(run);
    std::fs::create_dir_all(dir.join("analysis")).unwrap();
    let mut stages = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        let relative = format!("analysis/passkey-stage-{i}.json");
        std::fs::write(dir.join(&relative), report.to_string()).unwrap();
        stages.push(
            serde_json::json!({"label": report["label"], "kind": "passkey",
            "attention": report["attention"], "analysis": relative}),
        );
    }
    let summary = serde_json::json!({"name": spec, "finished": true, "stages": stages});
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
}

fn softmax_accuracy(_: usize, _: f64) -> f64 {
    1.0
}

/// Retrieval that fades with the length, worst for keys at the start.
fn hedgehog_accuracy(length: usize, depth: f64) -> f64 {
    (256.0 / length as f64) * (0.5 + 0.5 * depth)
}

fn out_dir() -> (Option<tempfile::TempDir>, PathBuf) {
    match std::env::var_os("HEDGEHOG_PLOT_DIR") {
        Some(dir) => (None, PathBuf::from(dir)),
        None => {
            let tmp = tempfile::tempdir().unwrap();
            let path = tmp.path().to_path_buf();
            (Some(tmp), path)
        }
    }
}

/// Both files are there and not empty, and the SVG writes every text in `texts`.
fn check(files: &PlotFiles, texts: &[&str]) {
    for path in [&files.png, &files.svg] {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 1000,
            "{} is missing or nearly empty ({len} bytes)",
            path.display()
        );
    }
    let shown = svg_texts(&files.svg);
    for text in texts {
        assert!(
            shown.iter().any(|t| t == text),
            "{} does not show `{text}`; it shows {shown:?}",
            files.svg.display()
        );
    }
}

/// The contents of every `<text>` element of an SVG, trimmed.
fn svg_texts(svg: &Path) -> Vec<String> {
    let svg = std::fs::read_to_string(svg).unwrap();
    svg.split("</text>")
        .filter_map(|chunk| chunk.rsplit_once("<text").map(|(_, element)| element))
        .filter_map(|element| {
            element
                .split_once('>')
                .map(|(_, text)| text.trim().to_string())
        })
        .collect()
}

fn reports() -> Vec<PasskeyReport> {
    [
        report_json("softmax", "zero-shot", softmax_accuracy, true),
        report_json("Hedgehog", "zero-shot", hedgehog_accuracy, false),
    ]
    .iter()
    .map(|json| serde_json::from_value(json.clone()).unwrap())
    .collect()
}

#[test]
fn passkey_figures_draw_each_attention_and_reject_empty_input() {
    let (_keep, dir) = out_dir();
    let reports = reports();
    // The heatmap writes each cell's accuracy: 0.25 is Hedgehog's at 1024 tokens, depth 0.5.
    check(
        &passkey_heatmaps(&reports, &dir.join("passkey_accuracy")).unwrap(),
        &["softmax", "Hedgehog", "0.25", "1024", "0.50"],
    );
    check(
        &generation_memory(&reports, &dir.join("passkey_memory")).unwrap(),
        &["softmax", "Hedgehog", "Decoding cache after the prompt"],
    );
    let bad = dir.join("bad");
    assert!(matches!(
        passkey_heatmaps(&[], &bad),
        Err(AnalysisError::Data(_))
    ));
    let mut no_speed = reports.clone();
    no_speed.iter_mut().for_each(|r| r.speed.clear());
    let err = generation_memory(&no_speed, &bad).unwrap_err().to_string();
    assert!(err.contains("speed"), "{err}");
}

#[test]
fn passkey_figure_kinds_read_run_folders_and_name_the_spec_to_run() {
    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let spec = "passkey_smollm2_cpu";
    write_run(
        r,
        spec,
        "run-001",
        &[report_json("softmax", "zero-shot", softmax_accuracy, true)],
    );
    write_run(
        r,
        spec,
        "run-002",
        &[
            report_json("Hedgehog", "zero-shot", hedgehog_accuracy, false),
            report_json("Hedgehog", "finetuned", softmax_accuracy, false),
        ],
    );
    let out = tempfile::tempdir().unwrap();
    let o = out.path().display();
    let yaml = format!(
        "figures:\n\
         - {{kind: passkey_heatmaps, out: {o}/accuracy, spec: {spec}, stage: zero-shot}}\n\
         - {{kind: generation_memory, out: {o}/memory, spec: {spec}}}\n\
         - {{kind: generation_memory, out: {o}/missing, spec: passkey_not_run}}\n"
    );
    let path = out.path().join("figures.yaml");
    std::fs::write(&path, yaml).unwrap();
    let (written, skipped) = draw_all(&FigureList::load(&path).unwrap(), r).unwrap();
    assert_eq!(written.len(), 2, "{skipped:?}");
    // `stage:` keeps the zero-shot stages; without it both of Hedgehog's stages are lines,
    // told apart by their stage labels.
    check(&written[0], &["softmax", "Hedgehog"]);
    assert!(
        !svg_texts(&written[0].svg)
            .iter()
            .any(|t| t.contains("finetuned")),
        "the stage filter let a stage through"
    );
    check(
        &written[1],
        &[
            "softmax (zero-shot)",
            "Hedgehog (zero-shot)",
            "Hedgehog (finetuned)",
        ],
    );
    assert_eq!(skipped.len(), 1);
    let message = &skipped[0].1;
    assert!(
        message.contains("`passkey_not_run`")
            && message.contains("hedgehog run experiments/passkey_not_run.yaml"),
        "{message}"
    );
    assert_eq!(collect_runs(r).unwrap().len(), 2);

    // A misspelt field is a parse error, not a figure drawn from defaults.
    std::fs::write(
        &path,
        format!(
            "figures:\n- {{kind: passkey_heatmaps, out: {o}/x, spec: {spec}, stag: zero-shot}}\n"
        ),
    )
    .unwrap();
    let err = FigureList::load(&path).unwrap_err();
    assert!(matches!(err, AnalysisError::Config(_)), "{err:?}");
}
