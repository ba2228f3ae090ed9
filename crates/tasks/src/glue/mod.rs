//! GLUE (Wang et al. 2019): the nine tasks' official TSV files and their metrics.
//!
//! File layouts (as distributed by the GLUE benchmark; `data/samples/glue/README.md`):
//! CoLA has no header (source, label, marker, sentence); the others have a header row and are
//! read by column name. MNLI has `dev_matched.tsv` and `dev_mismatched.tsv`.
//!
//! The Hugging Face Hub's copy (`nyu-mll/glue`) is read as well: a folder per task (`cola`,
//! `sst2`, ...) with parquet shards per split (`train-…`, `validation-…`, MNLI's
//! `validation_matched-…` and `validation_mismatched-…`), the hub's column names and integer
//! labels in the order of [`GlueTask::classes`].

pub mod metrics;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, fetch_hint, read_text};
use crate::parquet;

/// A GLUE task (MNLI's two dev sets are separate tasks for evaluation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GlueTask {
    #[serde(rename = "CoLA")]
    Cola,
    #[serde(rename = "SST-2")]
    Sst2,
    #[serde(rename = "MRPC")]
    Mrpc,
    #[serde(rename = "STS-B")]
    Stsb,
    #[serde(rename = "QQP")]
    Qqp,
    #[serde(rename = "MNLI")]
    Mnli,
    #[serde(rename = "MNLI-mm")]
    MnliMismatched,
    #[serde(rename = "QNLI")]
    Qnli,
    #[serde(rename = "RTE")]
    Rte,
    #[serde(rename = "WNLI")]
    Wnli,
}

/// The headline metric a task reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Headline {
    Matthews,
    Accuracy,
    /// Mean of F1 and accuracy (MRPC, QQP), as the GLUE leaderboard's average uses.
    F1Accuracy,
    /// Mean of Pearson and Spearman (STS-B).
    PearsonSpearman,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Label {
    Class(usize),
    Score(f64),
}

#[derive(Clone, Debug, PartialEq)]
pub struct GlueExample {
    pub text_a: String,
    pub text_b: Option<String>,
    pub label: Label,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    Train,
    Dev,
}

impl GlueTask {
    pub const ALL: [GlueTask; 10] = [
        Self::Cola,
        Self::Sst2,
        Self::Mrpc,
        Self::Stsb,
        Self::Qqp,
        Self::Mnli,
        Self::MnliMismatched,
        Self::Qnli,
        Self::Rte,
        Self::Wnli,
    ];

    /// The folder name in the GLUE download.
    pub fn folder(self) -> &'static str {
        match self {
            Self::Cola => "CoLA",
            Self::Sst2 => "SST-2",
            Self::Mrpc => "MRPC",
            Self::Stsb => "STS-B",
            Self::Qqp => "QQP",
            Self::Mnli | Self::MnliMismatched => "MNLI",
            Self::Qnli => "QNLI",
            Self::Rte => "RTE",
            Self::Wnli => "WNLI",
        }
    }

    pub fn file(self, split: Split) -> &'static str {
        match (self, split) {
            (_, Split::Train) => "train.tsv",
            (Self::Mnli, Split::Dev) => "dev_matched.tsv",
            (Self::MnliMismatched, Split::Dev) => "dev_mismatched.tsv",
            (_, Split::Dev) => "dev.tsv",
        }
    }

    /// Class names in label-index order; empty for the regression task.
    pub fn classes(self) -> &'static [&'static str] {
        match self {
            Self::Stsb => &[],
            Self::Mnli | Self::MnliMismatched => &["entailment", "neutral", "contradiction"],
            Self::Qnli | Self::Rte => &["entailment", "not_entailment"],
            _ => &["0", "1"],
        }
    }

    /// Outputs of the classifier (1 = regression).
    pub fn num_labels(self) -> usize {
        self.classes().len().max(1)
    }

    pub fn is_pair(self) -> bool {
        !matches!(self, Self::Cola | Self::Sst2)
    }

    pub fn headline(self) -> Headline {
        match self {
            Self::Cola => Headline::Matthews,
            Self::Mrpc | Self::Qqp => Headline::F1Accuracy,
            Self::Stsb => Headline::PearsonSpearman,
            _ => Headline::Accuracy,
        }
    }

    /// `(first text, second text, label)` column names, for files with a header.
    fn columns(self) -> (&'static str, Option<&'static str>, &'static str) {
        match self {
            Self::Cola => unreachable!("CoLA has no header"),
            Self::Sst2 => ("sentence", None, "label"),
            Self::Mrpc => ("#1 String", Some("#2 String"), "Quality"),
            Self::Stsb => ("sentence1", Some("sentence2"), "score"),
            Self::Qqp => ("question1", Some("question2"), "is_duplicate"),
            Self::Mnli | Self::MnliMismatched => ("sentence1", Some("sentence2"), "gold_label"),
            Self::Qnli => ("question", Some("sentence"), "label"),
            Self::Rte | Self::Wnli => ("sentence1", Some("sentence2"), "label"),
        }
    }

    /// The task's folder in the hub's `nyu-mll/glue` dataset.
    pub fn hub_folder(self) -> &'static str {
        match self {
            Self::Cola => "cola",
            Self::Sst2 => "sst2",
            Self::Mrpc => "mrpc",
            Self::Stsb => "stsb",
            Self::Qqp => "qqp",
            Self::Mnli | Self::MnliMismatched => "mnli",
            Self::Qnli => "qnli",
            Self::Rte => "rte",
            Self::Wnli => "wnli",
        }
    }

    /// The split's shard prefix in the hub's files.
    fn hub_split(self, split: Split) -> &'static str {
        match (self, split) {
            (_, Split::Train) => "train",
            (Self::Mnli, Split::Dev) => "validation_matched",
            (Self::MnliMismatched, Split::Dev) => "validation_mismatched",
            (_, Split::Dev) => "validation",
        }
    }

    /// `(first text, second text)` column names in the hub's files (the label is `label`).
    fn hub_columns(self) -> (&'static str, Option<&'static str>) {
        match self {
            Self::Cola | Self::Sst2 => ("sentence", None),
            Self::Mrpc | Self::Stsb | Self::Rte | Self::Wnli => ("sentence1", Some("sentence2")),
            Self::Qqp => ("question1", Some("question2")),
            Self::Mnli | Self::MnliMismatched => ("premise", Some("hypothesis")),
            Self::Qnli => ("question", Some("sentence")),
        }
    }

    /// Reads `dir/<file>` of this task (`dir` is the task folder, e.g. `glue/SST-2`), or the
    /// hub's parquet shards of the split there when the TSV is absent.
    pub fn load(self, dir: &Path, split: Split) -> Result<Vec<GlueExample>, DataError> {
        let path = dir.join(self.file(split));
        if !path.exists() {
            let shards = parquet::shards(dir, self.hub_split(split))?;
            if !shards.is_empty() {
                return self.load_parquet(&shards);
            }
        }
        let text = read_text(&path, || {
            format!(
                "(nor the hub's {}-*.parquet there). {}",
                self.hub_split(split),
                fetch_hint(
                    &format!("GLUE {}", self.folder()),
                    "https://gluebenchmark.com/tasks (or the parquet files of \
                     https://huggingface.co/datasets/nyu-mll/glue: `hedgehog fetch glue` puts \
                     them in data/glue)",
                )
            )
        })?;
        // The official MRPC files start with a UTF-8 byte-order mark.
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if self == Self::Cola {
            self.load_cola(&path, text)
        } else {
            self.load_with_header(&path, text)
        }
    }

    /// The rows of a task file with a header row, its columns found by name.
    fn load_with_header(self, path: &Path, text: &str) -> Result<Vec<GlueExample>, DataError> {
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| DataError::Invalid {
            path: path.to_path_buf(),
            reason: "empty file; expected a header row".into(),
        })?;
        let header: Vec<&str> = header.split('\t').collect();
        let (a, b, label) = self.columns();
        let index = |name: &str| {
            header
                .iter()
                .position(|h| *h == name)
                .ok_or_else(|| DataError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!(
                        "no `{name}` column in the header {header:?}; is this the GLUE {} file?",
                        self.folder()
                    ),
                })
        };
        let (ia, ib, il) = (index(a)?, b.map(index).transpose()?, index(label)?);
        let classes: HashMap<&str, usize> = self
            .classes()
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, i))
            .collect();
        let mut examples = Vec::new();
        for (number, line) in lines {
            if line.is_empty() {
                continue;
            }
            let fields: Vec<&str> = line.split('\t').collect();
            let malformed = |reason: String| DataError::Malformed {
                path: path.to_path_buf(),
                line: number + 1,
                reason,
            };
            let field = |i: usize| {
                fields.get(i).copied().ok_or_else(|| {
                    malformed(format!(
                        "{} fields, the header has {}",
                        fields.len(),
                        header.len()
                    ))
                })
            };
            let raw_label = field(il)?;
            let label = if self == Self::Stsb {
                Label::Score(
                    raw_label
                        .parse()
                        .map_err(|_| malformed(format!("score `{raw_label}` is not a number")))?,
                )
            } else {
                Label::Class(*classes.get(raw_label).ok_or_else(|| {
                    malformed(format!(
                        "label `{raw_label}` is not one of {:?}",
                        self.classes()
                    ))
                })?)
            };
            examples.push(GlueExample {
                text_a: field(ia)?.to_string(),
                text_b: ib.map(field).transpose()?.map(str::to_string),
                label,
            });
        }
        Ok(examples)
    }

    /// The rows of the hub's parquet shards of one split.
    fn load_parquet(self, shards: &[PathBuf]) -> Result<Vec<GlueExample>, DataError> {
        let (a, b) = self.hub_columns();
        let mut columns = vec![a, "label"];
        columns.extend(b);
        let mut examples = Vec::new();
        for shard in shards {
            let frame = parquet::read(shard, &columns)?;
            let texts_a = parquet::strings(&frame, shard, a)?;
            let texts_b = b.map(|b| parquet::strings(&frame, shard, b)).transpose()?;
            let labels = parquet::numbers(&frame, shard, "label")?;
            for (row, (text_a, value)) in texts_a.into_iter().zip(labels).enumerate() {
                let label = if self == Self::Stsb {
                    Label::Score(value)
                } else if value.fract() == 0.0 && (0.0..self.num_labels() as f64).contains(&value) {
                    Label::Class(value as usize)
                } else {
                    return Err(DataError::Invalid {
                        path: shard.clone(),
                        reason: format!(
                            "label {value} in row {row} is not a class index of {:?}{}",
                            self.classes(),
                            if value == -1.0 {
                                " (the hub's test splits carry no labels: use train or validation)"
                            } else {
                                ""
                            }
                        ),
                    });
                };
                examples.push(GlueExample {
                    text_a,
                    text_b: texts_b.as_ref().map(|texts| texts[row].clone()),
                    label,
                });
            }
        }
        Ok(examples)
    }

    fn load_cola(self, path: &Path, text: &str) -> Result<Vec<GlueExample>, DataError> {
        text.lines()
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(number, line)| {
                let fields: Vec<&str> = line.split('\t').collect();
                let malformed = |reason: String| DataError::Malformed {
                    path: path.to_path_buf(),
                    line: number + 1,
                    reason,
                };
                if fields.len() != 4 {
                    return Err(malformed(format!(
                        "{} fields; CoLA rows are source, label, marker, sentence (no header)",
                        fields.len()
                    )));
                }
                let label = match fields[1] {
                    "0" => 0,
                    "1" => 1,
                    other => return Err(malformed(format!("label `{other}` is not 0 or 1"))),
                };
                Ok(GlueExample {
                    text_a: fields[3].to_string(),
                    text_b: None,
                    label: Label::Class(label),
                })
            })
            .collect()
    }
}

/// The task folder under a GLUE root: `root/SST-2` (the GLUE download), else the hub's
/// `root/sst2` when only that is there.
pub fn task_dir(root: &Path, task: GlueTask) -> PathBuf {
    let official = root.join(task.folder());
    let hub = root.join(task.hub_folder());
    if !official.exists() && hub.exists() {
        hub
    } else {
        official
    }
}
