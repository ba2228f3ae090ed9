//! The paper's tables as data: their layout and the paper's numbers.

/// A paper row: its label and its value per column (None: the paper has no number).
pub(super) struct PaperRow {
    pub(super) label: &'static str,
    pub(super) values: &'static [Option<f64>],
    /// The paper's own name for the row where it differs from ours.
    pub(super) paper_name: Option<&'static str>,
}

/// A table layout: id, caption, columns, and the paper's rows.
pub(super) struct TableSpec {
    pub(super) id: &'static str,
    pub(super) title: &'static str,
    /// The metric and its direction, shown in the caption.
    pub(super) metric: &'static str,
    pub(super) decimals: usize,
    pub(super) columns: &'static [&'static str],
    /// Header of a derived "row vs softmax" column: the ratio of the row's mean to softmax's mean
    /// over the columns both have, × 100 (for one column, simply row / softmax × 100).
    pub(super) relative: Option<&'static str>,
    pub(super) rows: &'static [PaperRow],
    pub(super) notes: &'static [&'static str],
}

const fn row(label: &'static str, values: &'static [Option<f64>]) -> PaperRow {
    PaperRow {
        label,
        values,
        paper_name: None,
    }
}

const GLUE_TASKS: &[&str] = &[
    "CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE",
];

/// The paper's numbers, as transcribed in shared/docs/method.md §4 (which takes them from
/// third-party transcriptions of the paper's tables). Change them only with a source.
pub(super) const TABLES: &[TableSpec] = &[
    TableSpec {
        id: "finetuned_conversion",
        title: "Table 1: BERT-base finetuned on CoLA with its attention swapped",
        metric: "Matthews correlation × 100, higher is better",
        decimals: 1,
        columns: &["CoLA"],
        relative: Some("% of softmax"),
        rows: &[
            row("softmax", &[Some(58.8)]),
            row("1+ELU", &[Some(28.1)]),
            row("ReLU", &[Some(39.5)]),
            row("Performer", &[Some(24.7)]),
            row("cosFormer", &[Some(39.9)]),
            row("exp(t=1)", &[Some(45.9)]),
            row("exp(t=2)", &[Some(50.0)]),
            row("Taylor-2", &[Some(58.4)]),
            row("Hedgehog", &[Some(59.2)]),
        ],
        notes: &[
            "Taylor-2 is Table 2's BERT-FT column; Hedgehog is the GLUE table's CoLA score.",
            "% of softmax: the row / softmax × 100, each column from its own source.",
        ],
    },
    TableSpec {
        id: "recall",
        title: "Table 2: associative recall",
        metric: "accuracy %, higher is better",
        decimals: 1,
        columns: &["accuracy"],
        relative: None,
        rows: &[
            row("softmax", &[Some(100.0)]),
            row("Taylor-2", &[Some(100.0)]),
            row("1+ELU", &[Some(17.0)]),
            row("Performer", &[Some(17.0)]),
            row("cosFormer", &[Some(17.0)]),
        ],
        notes: &["The paper reports associative recall only for these five attentions."],
    },
    TableSpec {
        id: "glue",
        title: "GLUE: BERT-base finetuned conversion",
        metric: "each task's headline metric × 100, higher is better",
        decimals: 1,
        columns: GLUE_TASKS,
        relative: Some("% recovered"),
        rows: &[
            row(
                "softmax",
                &[
                    Some(58.8),
                    Some(93.2),
                    Some(90.2),
                    Some(88.8),
                    Some(91.0),
                    Some(84.7),
                    Some(91.3),
                    Some(68.2),
                ],
            ),
            row(
                "Hedgehog",
                &[
                    Some(59.2),
                    Some(92.6),
                    Some(90.1),
                    Some(87.4),
                    Some(91.0),
                    Some(82.6),
                    Some(89.6),
                    Some(69.3),
                ],
            ),
        ],
        notes: &[
            "% recovered: the row's mean over tasks / softmax's mean over the same tasks × 100 \
             (the paper reports 99.3% for Hedgehog).",
        ],
    },
    TableSpec {
        id: "vit",
        title: "ViT-B/16 on ImageNet-1k, finetuned conversion",
        metric: "top-1 accuracy %, higher is better",
        decimals: 1,
        columns: &["top-1"],
        relative: None,
        rows: &[
            row("softmax", &[Some(80.3)]),
            PaperRow {
                label: "T2R",
                values: &[Some(77.0)],
                paper_name: Some("T2R-HH"),
            },
            row("Hedgehog", &[Some(79.5)]),
        ],
        notes: &[],
    },
    TableSpec {
        id: "gpt2_conversion",
        title: "GPT-2 125M pretrained conversion on WikiText-103",
        metric: "perplexity, lower is better",
        decimals: 2,
        columns: &["perplexity"],
        relative: None,
        rows: &[
            row("GPT-2 zero-shot", &[Some(28.0)]),
            row("GPT-2 finetuned", &[Some(15.8)]),
            row("Hybrid H3", &[Some(18.5)]),
            row("Hyena", &[Some(18.5)]),
            row("T2R", &[Some(19.4)]),
            row("Hedgehog", &[Some(16.7)]),
        ],
        notes: &[],
    },
    TableSpec {
        id: "lm_scratch",
        title: "Language modelling from scratch",
        metric: "perplexity, lower is better",
        decimals: 2,
        columns: &["perplexity"],
        relative: None,
        rows: &[],
        notes: &[
            "The paper's from-scratch WikiText-103 table was not available (method.md §4): \
             every paper cell is not available.",
        ],
    },
];

/// The ids a run's `report_table` may name.
pub const TABLE_IDS: &[&str] = &[
    "finetuned_conversion",
    "recall",
    "glue",
    "vit",
    "gpt2_conversion",
    "lm_scratch",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_ids_follow_the_specs() {
        let ids: Vec<&str> = TABLES.iter().map(|t| t.id).collect();
        assert_eq!(ids, TABLE_IDS);
        for t in TABLES {
            for r in t.rows {
                assert_eq!(r.values.len(), t.columns.len(), "{} {}", t.id, r.label);
            }
        }
    }
}
