//! Attention distillation (Hedgehog, Zhang et al., ICLR 2024, §4; method.md §3; LoLCATs): the
//! student's linear attention is trained to match the frozen softmax teacher's.
//!
//! Per layer and head, each loss is averaged over the valid query rows:
//! - on the weights (Hedgehog): soft cross-entropy `−Σ_j a_ij log â_ij`, or
//!   `KL(a‖â) = Σ_j a_ij (log a_ij − log â_ij)` (they differ by the teacher's entropy, a
//!   constant for the student);
//! - on the outputs (LoLCATs' stage 1): `(1/dv) Σ_c (y_ic − ŷ_ic)²`, the teacher's
//!   `y = a v` against the student's `ŷ` on the same `q, k, v`.
//!
//! Reference: HazyResearch/lolcats `src/trainer/distill_attention_xent_mse.py`, which averages
//! the output MSE over batch, heads, rows and `dv` per layer (what [`layerwise_output_loss`]
//! gives without padding) and scales it by 1000 in its configs.

use burn::tensor::{Bool, Tensor, backend::Backend};

use crate::error::{AttentionError, check_rank4};
use crate::softmax::check_padding_opt;

/// Probabilities are floored here before `log`; terms with `a_ij = 0` then contribute exactly 0.
pub const PROB_FLOOR: f64 = 1e-12;

/// Which row loss to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RowLoss {
    SoftCrossEntropy,
    Kl,
}

/// How per-(layer, head) losses combine into one scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reduction {
    Mean,
    Sum,
}

/// Per-(batch, head) loss `[B, H]`: the row loss averaged over the valid query rows.
///
/// `teacher, student: [B, H, T, S]`; `query_padding: [B, T]` (true = padding) drops rows.
pub fn row_loss<B: Backend>(
    teacher: Tensor<B, 4>,
    student: Tensor<B, 4>,
    loss: RowLoss,
    query_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<Tensor<B, 2>, AttentionError> {
    let [b, h, t, s] = teacher.dims();
    check_rank4(
        "student attention weights",
        student.dims(),
        [Some(b), Some(h), Some(t), Some(s)],
        &format!("[{b}, {h}, {t}, {s}] like the teacher's"),
    )?;
    check_padding_opt(query_padding, b, t)?;
    let teacher = teacher.detach();
    let log_student = student.clamp_min(PROB_FLOOR).log();
    let per_row = match loss {
        RowLoss::SoftCrossEntropy => (teacher * log_student).neg(),
        RowLoss::Kl => {
            let log_teacher = teacher.clone().clamp_min(PROB_FLOOR).log();
            teacher * (log_teacher - log_student)
        }
    }
    .sum_dim(3); // [B, H, T, 1]
    Ok(mean_over_valid_rows(per_row, query_padding))
}

/// Per-(batch, head) output loss `[B, H]`: the squared error of the student's attention output
/// against the teacher's, averaged over `dv` and the valid query rows.
///
/// `teacher, student: [B, H, T, dv]`; `query_padding: [B, T]` (true = padding) drops rows, as
/// in [`row_loss`]: a padded query's output is whatever its form makes of no keys, not a target.
pub fn output_mse<B: Backend>(
    teacher: Tensor<B, 4>,
    student: Tensor<B, 4>,
    query_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<Tensor<B, 2>, AttentionError> {
    let [b, h, t, dv] = teacher.dims();
    check_rank4(
        "student attention output",
        student.dims(),
        [Some(b), Some(h), Some(t), Some(dv)],
        &format!("[{b}, {h}, {t}, {dv}] like the teacher's"),
    )?;
    check_padding_opt(query_padding, b, t)?;
    let per_row = (student - teacher.detach()).powi_scalar(2).mean_dim(3); // [B, H, T, 1]
    Ok(mean_over_valid_rows(per_row, query_padding))
}

/// `[B, H, T, 1]` per-row values → `[B, H]`, averaged over the rows `query_padding` keeps.
fn mean_over_valid_rows<B: Backend>(
    per_row: Tensor<B, 4>,
    query_padding: Option<&Tensor<B, 2, Bool>>,
) -> Tensor<B, 2> {
    let [b, h, t, _] = per_row.dims();
    match query_padding {
        Some(padding) => {
            let keep = padding.clone().bool_not().float().reshape([b, 1, t, 1]);
            let rows = keep.clone().sum_dim(2).clamp_min(1.0); // [B, 1, 1, 1]
            ((per_row * keep).sum_dim(2) / rows).reshape([b, h])
        }
        None => per_row.mean_dim(2).reshape([b, h]),
    }
}

/// Combined loss over layers: `pairs[l] = (teacher_l, student_l)`.
///
/// Returns the scalar to minimise (the row loss reduced over batch, heads and layers by
/// `reduction`; the batch is always averaged) and the per-(layer, head) table `[L, H]`
/// (batch-averaged) for logging and the KL heatmaps.
pub fn layerwise_loss<B: Backend>(
    pairs: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
    loss: RowLoss,
    reduction: Reduction,
    query_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<(Tensor<B, 1>, Tensor<B, 2>), AttentionError> {
    layerwise(pairs, reduction, |teacher, student| {
        row_loss(teacher, student, loss, query_padding)
    })
}

/// [`layerwise_loss`] for the outputs: `pairs[l] = (teacher output, student output)`, each
/// `[B, H, T, dv]`, through [`output_mse`].
pub fn layerwise_output_loss<B: Backend>(
    pairs: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
    reduction: Reduction,
    query_padding: Option<&Tensor<B, 2, Bool>>,
) -> Result<(Tensor<B, 1>, Tensor<B, 2>), AttentionError> {
    layerwise(pairs, reduction, |teacher, student| {
        output_mse(teacher, student, query_padding)
    })
}

/// The per-(layer, head) table `[L, H]` of `per_pair`'s `[B, H]` losses (batch-averaged) and
/// its reduction to the scalar.
fn layerwise<B: Backend>(
    pairs: Vec<(Tensor<B, 4>, Tensor<B, 4>)>,
    reduction: Reduction,
    per_pair: impl Fn(Tensor<B, 4>, Tensor<B, 4>) -> Result<Tensor<B, 2>, AttentionError>,
) -> Result<(Tensor<B, 1>, Tensor<B, 2>), AttentionError> {
    if pairs.is_empty() {
        return Err(crate::error::config_error(
            "distillation",
            "no layers to distil",
        ));
    }
    let per_layer = pairs
        .into_iter()
        .map(|(teacher, student)| {
            let h = teacher.dims()[1];
            per_pair(teacher, student).map(|l| l.mean_dim(0).reshape([1, h]))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let table = Tensor::cat(per_layer, 0); // [L, H]
    let total = match reduction {
        Reduction::Mean => table.clone().mean(),
        Reduction::Sum => table.clone().sum(),
    };
    Ok((total, table))
}
