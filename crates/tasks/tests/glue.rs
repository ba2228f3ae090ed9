//! GLUE loaders on the committed samples (official TSVs and the hub's parquet) and metrics against
//! scikit-learn/scipy values (`tools/reference_metrics.py`) and hand computation.

use std::path::PathBuf;

use hedgehog_tasks::glue::metrics::{self, Predictions};
use hedgehog_tasks::glue::{GlueTask, Label, Split, task_dir};
use serde_json::Value;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples/glue")
}

#[test]
fn every_task_loads_train_and_dev_from_the_official_layout() {
    for task in GlueTask::ALL {
        for split in [Split::Train, Split::Dev] {
            let examples = task
                .load(&task_dir(&samples(), task), split)
                .unwrap_or_else(|e| panic!("{task:?} {split:?}: {e}"));
            assert!(!examples.is_empty(), "{task:?} {split:?}: no rows");
            for example in &examples {
                assert!(!example.text_a.is_empty());
                assert_eq!(
                    example.text_b.is_some(),
                    task.is_pair(),
                    "{task:?}: pair handling"
                );
                match example.label {
                    Label::Class(c) => assert!(c < task.num_labels(), "{task:?}: label {c}"),
                    Label::Score(s) => {
                        assert_eq!(task, GlueTask::Stsb);
                        assert!((0.0..=5.0).contains(&s), "STS-B score {s}");
                    }
                }
            }
        }
    }
}

/// `tools/make_parquet_samples.py` wrote the TSV samples as the hub serves them (pyarrow,
/// `nyu-mll/glue` folders and column names, integer labels, float32 scores): the same examples.
#[test]
fn the_hubs_parquet_files_give_the_same_examples_as_the_tsvs() {
    let hub = samples().with_file_name("glue-parquet");
    for task in GlueTask::ALL {
        let dir = task_dir(&hub, task);
        assert!(dir.ends_with(task.hub_folder()), "{}", dir.display());
        for split in [Split::Train, Split::Dev] {
            let from_tsv = task.load(&task_dir(&samples(), task), split).unwrap();
            let from_parquet = task
                .load(&dir, split)
                .unwrap_or_else(|e| panic!("{task:?} {split:?}: {e}"));
            assert_eq!(from_tsv.len(), from_parquet.len(), "{task:?} {split:?}");
            for (tsv, parquet) in from_tsv.iter().zip(&from_parquet) {
                assert_eq!(tsv.text_a, parquet.text_a, "{task:?} {split:?}");
                assert_eq!(tsv.text_b, parquet.text_b, "{task:?} {split:?}");
                match (&tsv.label, &parquet.label) {
                    // The hub stores STS-B scores as float32.
                    (Label::Score(a), Label::Score(b)) => {
                        assert!((a - b).abs() < 1e-6, "{task:?}: {a} vs {b}")
                    }
                    (a, b) => assert_eq!(a, b, "{task:?} {split:?}"),
                }
            }
        }
    }
    // Another task's file, and a split that is not there, are named.
    let dir = std::env::temp_dir().join(format!("hedgehog-glue-hub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        hub.join("sst2/validation-00000-of-00001.parquet"),
        dir.join("validation-00000-of-00001.parquet"),
    )
    .unwrap();
    let err = GlueTask::Mrpc.load(&dir, Split::Dev).unwrap_err();
    assert!(err.to_string().contains("no `sentence1` column"), "{err}");
    let err = GlueTask::Mrpc.load(&dir, Split::Train).unwrap_err();
    assert!(err.to_string().contains("train-*.parquet"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

fn temp_task(name: &str, file: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-glue-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(file), content).unwrap();
    dir
}

#[test]
fn rows_are_read_by_column_and_bad_files_are_clear_errors() {
    let dir = temp_task(
        "rte",
        "train.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tA cat sat.\tAn animal sat.\tentailment\n1\tIt rained.\tIt was dry.\tnot_entailment\n",
    );
    let rows = GlueTask::Rte.load(&dir, Split::Train).unwrap();
    assert_eq!(rows[1].text_a, "It rained.");
    assert_eq!(rows[1].text_b.as_deref(), Some("It was dry."));
    assert_eq!(rows[1].label, Label::Class(1));

    let dir = temp_task(
        "cola",
        "train.tsv",
        "gj04\t1\t\tThe cat sat.\ngj04\t0\t*\tCat the sat.\n",
    );
    let rows = GlueTask::Cola.load(&dir, Split::Train).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
        vec![Label::Class(1), Label::Class(0)]
    );

    let dir = temp_task(
        "bad-label",
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\ta\tb\tmaybe\n",
    );
    let err = GlueTask::Rte
        .load(&dir, Split::Dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dev.tsv:2") && err.contains("maybe"), "{err}");
    let dir = temp_task("bad-header", "dev.tsv", "idx\ttext\n0\ta\n");
    let err = GlueTask::Rte
        .load(&dir, Split::Dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains("no `sentence1` column"), "{err}");
    let dir = temp_task(
        "short-row",
        "dev.tsv",
        "index\tsentence1\tsentence2\tlabel\n0\tonly one field\n",
    );
    let err = GlueTask::Rte
        .load(&dir, Split::Dev)
        .unwrap_err()
        .to_string();
    assert!(err.contains(":2:") && err.contains("fields"), "{err}");
    let err = GlueTask::Qqp
        .load(&dir, Split::Train)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train.tsv") && err.contains("just fetch-data"),
        "{err}"
    );
}

#[test]
fn metrics_match_hand_computation() {
    let predicted = [1, 1, 0, 0, 1, 0];
    let labels = [1, 0, 0, 1, 1, 0];
    // tp 2, tn 2, fp 1, fn 1.
    assert!((metrics::accuracy(&predicted, &labels) - 4.0 / 6.0).abs() < 1e-12);
    assert!((metrics::f1(&predicted, &labels) - 2.0 / 3.0).abs() < 1e-12);
    assert!((metrics::matthews(&predicted, &labels) - 1.0 / 3.0).abs() < 1e-12);
    assert!((metrics::spearman(&[1.0, 2.0, 3.0], &[10.0, 20.0, 15.0]) - 0.5).abs() < 1e-12);
    let (all, headline) = metrics::task_metrics(
        GlueTask::Mrpc,
        &Predictions::Classes {
            predicted: predicted.to_vec(),
            labels: labels.to_vec(),
        },
    );
    assert!((headline - (all["f1"] + all["accuracy"]) / 2.0).abs() < 1e-12);
    assert!(
        (metrics::glue_average(&[(GlueTask::Cola, 50.0), (GlueTask::Sst2, 90.0)]) - 70.0).abs()
            < 1e-12
    );
}

#[test]
fn metrics_match_scikit_learn_and_scipy() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics.json");
    let fixture: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let ints = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect::<Vec<_>>()
    };
    let floats = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let close = |a: f64, b: &Value, what: &str, name: &str| match b.as_f64() {
        Some(b) => assert!((a - b).abs() < 1e-9, "{name}: {what} {a} vs {b}"),
        None => assert!(a.is_nan(), "{name}: {what} {a} vs NaN"),
    };
    let classification = fixture["classification"]
        .as_array()
        .expect("classification cases");
    assert!(classification.len() >= 4);
    for case in classification {
        let name = case["name"].as_str().unwrap();
        let (p, l) = (ints(&case["y_pred"]), ints(&case["y_true"]));
        close(
            metrics::accuracy(&p, &l),
            &case["accuracy"],
            "accuracy",
            name,
        );
        // F1 and MCC are binary here; the multi-class case records no F1.
        if !case["f1"].is_null() {
            close(metrics::f1(&p, &l), &case["f1"], "f1", name);
            close(metrics::matthews(&p, &l), &case["mcc"], "mcc", name);
        }
    }
    let correlation = fixture["correlation"]
        .as_array()
        .expect("correlation cases");
    assert!(correlation.len() >= 4);
    for case in correlation {
        let name = case["name"].as_str().unwrap();
        let (x, y) = (floats(&case["x"]), floats(&case["y"]));
        close(metrics::pearson(&x, &y), &case["pearson"], "pearson", name);
        close(
            metrics::spearman(&x, &y),
            &case["spearman"],
            "spearman",
            name,
        );
    }
}
