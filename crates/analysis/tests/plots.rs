//! Smoke tests: every figure writes a non-empty PNG and SVG, and bad input is an error.
//! Set `HEDGEHOG_PLOT_DIR=<dir>` to keep the figures for a look.

use std::path::{Path, PathBuf};

use hedgehog_analysis::plots::{
    PlotFiles, attention_maps, entropy_bars, kl_heatmap, kl_heatmaps, metrics_series,
    monotonicity_panels, training_curves,
};
use hedgehog_analysis::{
    AnalysisConfig, AnalysisError, AttentionAnalyzer, AttentionMap, AttentionReport, LayerAttention,
};

/// A fixed xorshift stream, enough for test inputs.
struct Rng(u64);

impl Rng {
    fn normal(&mut self) -> f64 {
        let mut uniform = || {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        };
        let (u, v) = (uniform(), uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

#[derive(Clone, Copy)]
enum Map {
    Softmax,
    Elu,
    Relu,
    Exp,
}

impl Map {
    fn phi(self, x: f64) -> f64 {
        match self {
            Map::Softmax => unreachable!("softmax has no feature map"),
            Map::Elu => {
                if x > 0.0 {
                    x + 1.0
                } else {
                    x.exp()
                }
            }
            Map::Relu => x.max(1e-6),
            Map::Exp => x.exp(),
        }
    }
}

struct Attention {
    teacher: Vec<f32>,
    student: Option<Vec<f32>>,
    kernel: Option<Vec<f32>>,
    scores: Vec<f32>,
}

/// Causal attention of one `[1, H, T, T]` batch from random q, k (d = 8).
fn attention(rng: &mut Rng, heads: usize, t: usize, map: Map, layer: usize) -> Attention {
    let d = 8;
    let n = heads * t * t;
    let (mut teacher, mut student, mut kernel, mut scores) =
        (vec![0f32; n], vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    for h in 0..heads {
        let scale = 0.8 + 0.4 * (h + layer) as f64;
        let q: Vec<f64> = (0..t * d).map(|_| rng.normal() * scale).collect();
        let k: Vec<f64> = (0..t * d).map(|_| rng.normal()).collect();
        for i in 0..t {
            let row = (h * t + i) * t;
            let s: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d).map(|c| q[i * d + c] * k[j * d + c]).sum::<f64>() / (d as f64).sqrt()
                })
                .collect();
            let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - max).exp()).collect();
            let z: f64 = e.iter().sum();
            for j in 0..=i {
                scores[row + j] = s[j] as f32;
                teacher[row + j] = (e[j] / z) as f32;
            }
            if let Map::Softmax = map {
                continue;
            }
            let kv: Vec<f64> = (0..=i)
                .map(|j| {
                    (0..d)
                        .map(|c| map.phi(q[i * d + c]) * map.phi(k[j * d + c]))
                        .sum()
                })
                .collect();
            let kz: f64 = kv.iter().sum();
            for j in 0..=i {
                kernel[row + j] = kv[j] as f32;
                student[row + j] = (kv[j] / kz) as f32;
            }
        }
    }
    let linear = !matches!(map, Map::Softmax);
    Attention {
        teacher,
        student: linear.then_some(student),
        kernel: linear.then_some(kernel),
        scores,
    }
}

fn report(label: &str, map: Map, seed: u64) -> AttentionReport {
    let (layers, heads, t) = (2, 4, 16);
    let mut rng = Rng(seed);
    let mut analyzer = AttentionAnalyzer::new(
        layers,
        heads,
        AnalysisConfig {
            bins: 20,
            score_range: Some((-4.0, 4.0)),
        },
    );
    let mut example = None;
    for layer in 0..layers {
        let a = attention(&mut rng, heads, t, map, layer);
        let batch = LayerAttention {
            shape: [1, heads, t, t],
            teacher: &a.teacher,
            student: a.student.as_deref(),
            kernel: a.kernel.as_deref(),
            scores: &a.scores,
            causal: true,
            lengths: None,
        };
        analyzer.add(layer, &batch).unwrap();
        if layer == 1 {
            let head = 1;
            let cells = head * t * t..(head + 1) * t * t;
            example = Some(AttentionMap {
                layer,
                head,
                tokens: "In the beginning God created the heaven and the earth . And the earth was without"
                    .split(' ')
                    .map(String::from)
                    .collect(),
                size: t,
                teacher: a.teacher[cells.clone()].to_vec(),
                student: a.student.as_ref().map(|s| s[cells].to_vec()),
            });
        }
    }
    let mut report = analyzer.finish(label.into());
    report.example = example;
    report
}

fn reports() -> Vec<AttentionReport> {
    vec![
        report("softmax", Map::Softmax, 7),
        report("1+ELU", Map::Elu, 7),
        report("ReLU", Map::Relu, 7),
        report("exp(t=1)", Map::Exp, 7),
    ]
}

/// A place for the figures: `HEDGEHOG_PLOT_DIR` if set (kept), else a temporary folder.
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

fn check(files: &PlotFiles) {
    for path in [&files.png, &files.svg] {
        let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        assert!(
            len > 1000,
            "{} is missing or nearly empty ({len} bytes)",
            path.display()
        );
    }
    let svg = std::fs::read_to_string(&files.svg).unwrap();
    assert!(svg.contains("<text"), "the SVG has no text");
}

fn is_data_error(result: Result<PlotFiles, AnalysisError>) -> bool {
    matches!(result, Err(AnalysisError::Data(_)))
}

#[test]
fn entropy_bars_draws_and_rejects_bad_input() {
    let (_keep, dir) = out_dir();
    let reports = reports();
    let rows: Vec<(String, f64)> = reports[1..]
        .iter()
        .map(|r| (r.attention.clone(), r.summary().student_entropy.unwrap()))
        .chain([("Hedgehog (softmax_split)".to_string(), 1.02)])
        .collect();
    let softmax = reports[0].summary().teacher_entropy.unwrap();
    check(&entropy_bars(&rows, softmax, &dir.join("entropy")).unwrap());
    assert!(is_data_error(entropy_bars(&[], softmax, &dir.join("bad"))));
    assert!(is_data_error(entropy_bars(
        &rows,
        f64::NAN,
        &dir.join("bad")
    )));
    check(&entropy_bars(&rows[..1], softmax, &dir.join("entropy_one")).unwrap());
}

#[test]
fn monotonicity_panels_draws_and_rejects_bad_input() {
    let (_keep, dir) = out_dir();
    check(&monotonicity_panels(&reports(), &dir.join("monotonicity")).unwrap());
    assert!(is_data_error(monotonicity_panels(&[], &dir.join("bad"))));
    let empty = AttentionAnalyzer::new(1, 1, AnalysisConfig::default()).finish("empty".into());
    assert!(is_data_error(monotonicity_panels(
        &[empty],
        &dir.join("bad")
    )));
}

#[test]
fn kl_heatmaps_draw_and_reject_bad_input() {
    let (_keep, dir) = out_dir();
    let reports = reports();
    check(&kl_heatmap(&reports[1], &dir.join("kl_elu")).unwrap());
    check(&kl_heatmaps(&reports, &dir.join("kl")).unwrap());
    // softmax has no student, so no KL
    assert!(is_data_error(kl_heatmap(&reports[0], &dir.join("bad"))));
    assert!(is_data_error(kl_heatmaps(&[], &dir.join("bad"))));
}

#[test]
fn training_curves_draw_and_reject_bad_input() {
    let (_keep, dir) = out_dir();
    let curve = |scale: f64| -> Vec<(f64, f64)> {
        (0..200)
            .map(|s| (s as f64, scale * (1.0 + 50.0 * (-(s as f64) / 30.0).exp())))
            .collect()
    };
    let series = vec![
        ("softmax".to_string(), curve(1.0)),
        ("Hedgehog (softmax_split)".to_string(), curve(1.1)),
        ("1+ELU".to_string(), curve(1.6)),
    ];
    check(&training_curves(&series, "training loss", false, &dir.join("loss")).unwrap());
    check(&training_curves(&series, "validation perplexity", true, &dir.join("ppl")).unwrap());
    let single = vec![("one point".to_string(), vec![(3.0, 2.0)])];
    check(&training_curves(&single, "loss", true, &dir.join("single")).unwrap());
    assert!(is_data_error(training_curves(
        &[],
        "loss",
        false,
        &dir.join("bad")
    )));
    let empty = vec![("empty".to_string(), vec![])];
    assert!(is_data_error(training_curves(
        &empty,
        "loss",
        false,
        &dir.join("bad")
    )));
    let zero = vec![("zero".to_string(), vec![(0.0, 0.0), (1.0, 1.0)])];
    assert!(is_data_error(training_curves(
        &zero,
        "loss",
        true,
        &dir.join("bad")
    )));
    check(&training_curves(&zero, "loss", false, &dir.join("zero")).unwrap());
}

#[test]
fn attention_maps_draw_and_reject_bad_input() {
    let (_keep, dir) = out_dir();
    let maps: Vec<(String, AttentionMap)> = reports()
        .into_iter()
        .map(|r| (r.attention.clone(), r.example.unwrap()))
        .collect();
    check(&attention_maps(&maps, &dir.join("attention_maps")).unwrap());
    assert!(is_data_error(attention_maps(&[], &dir.join("bad"))));
    let mut wrong = maps[1].clone();
    wrong.1.teacher.pop();
    assert!(is_data_error(attention_maps(&[wrong], &dir.join("bad"))));
    let mut untokenised = maps[1].clone();
    untokenised.1.tokens.clear();
    check(&attention_maps(&[untokenised], &dir.join("attention_untokenised")).unwrap());
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn metrics_csv_becomes_series_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let csv = write(
        dir.path(),
        "metrics.csv",
        "stage,label,step,global_step,loss,lr,tokens_per_second,val_perplexity,val_accuracy\n\
         0,softmax,1,1,5.0,0.001,100.0,,\n\
         0,softmax,2,2,4.5,0.001,100.0,90.0,\n\
         1,hedgehog (distilling),1,3,2.5,0.01,80.0,,\n\
         2,hedgehog (finetuned),1,4,4.4,0.001,90.0,85.5,\n",
    );
    let loss = metrics_series(&csv, "loss").unwrap();
    let labels: Vec<&str> = loss.iter().map(|(l, _)| l.as_str()).collect();
    assert_eq!(
        labels,
        ["softmax", "hedgehog (distilling)", "hedgehog (finetuned)"]
    );
    assert_eq!(loss[0].1, vec![(1.0, 5.0), (2.0, 4.5)]);
    let ppl = metrics_series(&csv, "val_perplexity").unwrap();
    assert_eq!(
        ppl,
        vec![
            ("softmax".to_string(), vec![(2.0, 90.0)]),
            ("hedgehog (finetuned)".to_string(), vec![(4.0, 85.5)]),
        ]
    );
    // a column that is never filled gives no series
    assert!(metrics_series(&csv, "val_accuracy").unwrap().is_empty());
    let err = metrics_series(&csv, "val_bleu").unwrap_err().to_string();
    assert!(
        err.contains("no column `val_bleu`") && err.contains("val_perplexity"),
        "{err}"
    );
    let bad = write(dir.path(), "bad.csv", "label,global_step,loss\na,1,high\n");
    assert!(matches!(
        metrics_series(&bad, "loss"),
        Err(AnalysisError::Csv { .. })
    ));
    assert!(matches!(
        metrics_series(&dir.path().join("none.csv"), "loss"),
        Err(AnalysisError::Io { .. })
    ));
}

/// A finished run of `spec` whose analyze stages (`stage`, report) are saved in its folder.
fn write_analysis_run(results: &Path, spec: &str, run: &str, stages: &[(&str, &AttentionReport)]) {
    let dir = results.join(spec).join(run);
    std::fs::create_dir_all(dir.join("analysis")).unwrap();
    let mut summaries = Vec::new();
    for (i, (label, report)) in stages.iter().enumerate() {
        let relative = format!("analysis/stage-{i}.json");
        report.save(&dir.join(&relative)).unwrap();
        summaries.push(serde_json::json!({
            "label": label, "kind": "analyze", "attention": report.attention,
            "analysis": relative
        }));
    }
    let summary = serde_json::json!({"name": spec, "finished": true, "stages": summaries});
    std::fs::write(dir.join("summary.json"), summary.to_string()).unwrap();
}

#[test]
fn figures_read_reports_from_run_folders() {
    use hedgehog_analysis::collect_runs;
    use hedgehog_analysis::figures::{AnalysisSource, FigureList, draw_all, source_reports};

    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let (elu_old, elu_new) = (report("1+ELU", Map::Elu, 1), report("1+ELU", Map::Elu, 2));
    let relu = report("ReLU", Map::Relu, 3);
    write_analysis_run(r, "maps", "run-001", &[("swapped in", &elu_old)]);
    write_analysis_run(r, "maps", "run-002", &[("swapped in", &relu)]);
    // A rerun of the 1+ELU point: the newer report wins, in the place of the first.
    write_analysis_run(r, "maps", "run-003", &[("swapped in", &elu_new)]);
    let runs = collect_runs(r).unwrap();

    let source = |attention: &[&str], suffix: &str| AnalysisSource {
        spec: "maps".into(),
        stage: "swapped in".into(),
        suffix: suffix.into(),
        attention: attention.iter().map(|a| a.to_string()).collect(),
    };
    let all = source_reports(&runs, &source(&[], " before")).unwrap();
    let labels: Vec<&str> = all.iter().map(|r| r.attention.as_str()).collect();
    assert_eq!(labels, ["1+ELU before", "ReLU before"]);
    assert_eq!(
        all[0].row_curve, elu_new.row_curve,
        "the newest 1+ELU run is used"
    );

    let relu_only = source_reports(&runs, &source(&["ReLU"], "")).unwrap();
    assert_eq!(relu_only.len(), 1);
    assert_eq!(relu_only[0].attention, "ReLU");

    let err = source_reports(&runs, &source(&["Hedgehog"], ""))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("Hedgehog") && err.contains("hedgehog run experiments/maps.yaml"),
        "{err}"
    );

    // The measures table has one row per analyze stage, with the report's means.
    let (md, csv) = hedgehog_analysis::tables::measures_table(&runs).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| maps/")).count(), 3);
    let relu_kl = format!("{:.3}", relu.summary().kl.unwrap());
    let relu_row = md.lines().find(|l| l.contains("maps/run-002")).unwrap();
    assert!(relu_row.contains(&relu_kl), "{relu_row} lacks KL {relu_kl}");
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(
        csv.starts_with("run,stage,attention,softmax entropy"),
        "{csv}"
    );

    let out = tempfile::tempdir().unwrap();
    let yaml = format!(
        "figures:\n  - kind: kl_heatmaps\n    out: {0}/kl\n    sources:\n      - {{spec: maps, stage: swapped in, attention: [ReLU]}}\n  - kind: entropy\n    out: {0}/missing\n    sources:\n      - {{spec: not_run, stage: swapped in}}\n",
        out.path().display()
    );
    let list_path = write(out.path(), "figures.yaml", &yaml);
    let (written, skipped) = draw_all(&FigureList::load(&list_path).unwrap(), r).unwrap();
    assert_eq!(written.len(), 1);
    check(&written[0]);
    assert_eq!(skipped.len(), 1);
    assert!(skipped[0].1.contains("not_run"), "{:?}", skipped[0]);
}

/// `report` as analyze stages wrote it before the curve was measured per query row: a `pooled`
/// curve (and a `curve` per layer) of raw (score, weight) pairs, and no `row_curve`.
fn old_format_json(report: &AttentionReport) -> String {
    let old_curve = serde_json::json!({
        "edges": [-4.0, 0.0, 4.0], "count": [10, 6],
        "teacher": [0.05, 0.3], "student": [0.1, 0.2], "kernel": [1.5, 2.5]
    });
    let mut json = serde_json::to_value(report).unwrap();
    let root = json.as_object_mut().unwrap();
    root.remove("row_curve");
    root.insert("pooled".into(), old_curve.clone());
    for layer in root["layers"].as_array_mut().unwrap() {
        let layer = layer.as_object_mut().unwrap();
        layer.remove("row_curve");
        layer.insert("curve".into(), old_curve.clone());
    }
    json.to_string()
}

#[test]
fn reports_from_before_per_row_curves_fail_only_the_monotonicity_figure() {
    use hedgehog_analysis::collect_runs;
    use hedgehog_analysis::figures::{FigureList, draw_all};

    let results = tempfile::tempdir().unwrap();
    let r = results.path();
    let elu = report("1+ELU", Map::Elu, 4);
    write_analysis_run(r, "maps", "run-001", &[("swapped in", &elu)]);
    let path = r.join("maps/run-001/analysis/stage-0.json");
    std::fs::write(&path, old_format_json(&elu)).unwrap();

    // The old file still loads for everything but the curve, which is not read as the new one.
    let old = AttentionReport::load(&path).unwrap();
    assert_eq!(old.row_curve, None);
    assert!(old.layers.iter().all(|l| l.row_curve.is_none()));
    assert_eq!((old.summary(), &old.example), (elu.summary(), &elu.example));
    let (_keep, dir) = out_dir();
    let err = monotonicity_panels(&[old], &dir.join("bad")).unwrap_err();
    assert!(matches!(err, AnalysisError::Data(_)), "{err:?}");
    let err = err.to_string();
    assert!(
        err.contains("no per-row monotonicity curve") && err.contains("re-run its analyze stage"),
        "{err}"
    );

    let out = tempfile::tempdir().unwrap();
    let figure = |kind: &str| {
        format!(
            "  - kind: {kind}\n    out: {}/{kind}\n    sources:\n      - {{spec: maps, stage: swapped in}}\n",
            out.path().display()
        )
    };
    let yaml: String = ["monotonicity", "entropy", "kl_heatmaps", "attention_maps"]
        .iter()
        .map(|kind| figure(kind))
        .collect();
    let list_path = write(out.path(), "figures.yaml", &format!("figures:\n{yaml}"));
    let runs = collect_runs(r).unwrap();
    let (written, skipped) = draw_all(&FigureList::load(&list_path).unwrap(), r).unwrap();
    assert_eq!(
        written.len(),
        3,
        "the other figures still draw: {skipped:?}"
    );
    written.iter().for_each(check);
    assert_eq!(skipped.len(), 1);
    let (figure_out, message) = &skipped[0];
    assert!(figure_out.ends_with("monotonicity"), "{figure_out:?}");
    assert!(
        message.contains("no per-row monotonicity curve")
            && message.contains("re-run the analyze stage `swapped in` of `maps`")
            && message.contains("hedgehog run experiments/maps.yaml"),
        "{message}"
    );
    assert_eq!(runs.len(), 1);
}
