//! GLUE metrics, checked against scikit-learn and scipy (`tools/reference_metrics.py`).

use std::collections::BTreeMap;

use super::{GlueTask, Headline};

/// Fraction of equal entries.
pub fn accuracy(predictions: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(
        predictions.len(),
        labels.len(),
        "predictions and labels differ in length"
    );
    if labels.is_empty() {
        return 0.0;
    }
    predictions
        .iter()
        .zip(labels)
        .filter(|(p, l)| p == l)
        .count() as f64
        / labels.len() as f64
}

fn confusion(predictions: &[usize], labels: &[usize]) -> (f64, f64, f64, f64) {
    let (mut tp, mut tn, mut fp, mut fn_) = (0.0, 0.0, 0.0, 0.0);
    for (&p, &l) in predictions.iter().zip(labels) {
        match (p == 1, l == 1) {
            (true, true) => tp += 1.0,
            (false, false) => tn += 1.0,
            (true, false) => fp += 1.0,
            (false, true) => fn_ += 1.0,
        }
    }
    (tp, tn, fp, fn_)
}

/// Binary F1 of the positive class 1 (0 when there are no true or predicted positives, as
/// scikit-learn's `zero_division=0`).
pub fn f1(predictions: &[usize], labels: &[usize]) -> f64 {
    let (tp, _, fp, fn_) = confusion(predictions, labels);
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// Matthews correlation (binary; 0 when a marginal is empty, as scikit-learn).
pub fn matthews(predictions: &[usize], labels: &[usize]) -> f64 {
    let (tp, tn, fp, fn_) = confusion(predictions, labels);
    let denominator = ((tp + fp) * (tp + fn_) * (tn + fp) * (tn + fn_)).sqrt();
    if denominator == 0.0 {
        0.0
    } else {
        (tp * tn - fp * fn_) / denominator
    }
}

/// Pearson correlation (NaN when either side is constant, as scipy).
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "inputs differ in length");
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Ranks from 1, ties given their average rank.
fn ranks(x: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut ranks = vec![0.0; x.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && x[order[j + 1]] == x[order[i]] {
            j += 1;
        }
        let average = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = average;
        }
        i = j + 1;
    }
    ranks
}

/// Spearman's ρ: Pearson correlation of the average ranks.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&ranks(x), &ranks(y))
}

/// Predictions of one task: classes, or scores for STS-B.
#[derive(Clone, Debug)]
pub enum Predictions {
    Classes {
        predicted: Vec<usize>,
        labels: Vec<usize>,
    },
    Scores {
        predicted: Vec<f64>,
        labels: Vec<f64>,
    },
}

/// Every metric of a task (as reported) and its headline number, all ×100.
pub fn task_metrics(
    task: GlueTask,
    predictions: &Predictions,
) -> (BTreeMap<&'static str, f64>, f64) {
    let mut metrics = BTreeMap::new();
    match predictions {
        Predictions::Classes { predicted, labels } => {
            metrics.insert("accuracy", 100.0 * accuracy(predicted, labels));
            if task.classes().len() == 2 {
                metrics.insert("f1", 100.0 * f1(predicted, labels));
                metrics.insert("matthews", 100.0 * matthews(predicted, labels));
            }
        }
        Predictions::Scores { predicted, labels } => {
            metrics.insert("pearson", 100.0 * pearson(predicted, labels));
            metrics.insert("spearman", 100.0 * spearman(predicted, labels));
        }
    }
    let headline = match task.headline() {
        Headline::Matthews => metrics["matthews"],
        Headline::Accuracy => metrics["accuracy"],
        Headline::F1Accuracy => (metrics["f1"] + metrics["accuracy"]) / 2.0,
        Headline::PearsonSpearman => (metrics["pearson"] + metrics["spearman"]) / 2.0,
    };
    (metrics, headline)
}

/// The GLUE score: the mean of the tasks' headline numbers.
pub fn glue_average(headlines: &[(GlueTask, f64)]) -> f64 {
    headlines.iter().map(|(_, h)| h).sum::<f64>() / headlines.len().max(1) as f64
}
