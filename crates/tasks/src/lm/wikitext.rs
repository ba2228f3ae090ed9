//! WikiText-103 files: `wiki.{train,valid,test}.tokens` (or the raw variant `.raw`).
//! Articles start with a top-level heading line ` = Title = `; sub-headings are ` = = … = = `.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, fetch_hint, read_text};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorpusSplit {
    Train,
    Valid,
    Test,
}

impl CorpusSplit {
    pub fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "valid",
            Self::Test => "test",
        }
    }
}

/// One article (document) of the corpus.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub title: String,
    /// The article's lines, heading included, joined with newlines as in the file.
    pub text: String,
}

/// `dir/wiki.<split>.tokens`, or `dir/wiki.<split>.raw` when only the raw variant is there.
pub fn split_path(dir: &Path, split: CorpusSplit) -> Result<PathBuf, DataError> {
    let tokens = dir.join(format!("wiki.{}.tokens", split.name()));
    let raw = dir.join(format!("wiki.{}.raw", split.name()));
    if tokens.exists() {
        Ok(tokens)
    } else if raw.exists() {
        Ok(raw)
    } else {
        Err(DataError::Missing {
            path: tokens,
            hint: format!(
                "(nor {}). {}",
                raw.display(),
                fetch_hint(
                    "WikiText-103",
                    "https://huggingface.co/datasets/Salesforce/wikitext"
                )
            ),
        })
    }
}

fn title_of(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix("= ")?.strip_suffix(" =")?;
    // ` = = Section = = ` is a sub-heading, not a new article.
    (!inner.starts_with('=')).then_some(inner.trim())
}

/// The documents of a split. Text before the first heading is one untitled document; a plain
/// text corpus without headings is a single document.
pub fn read_documents(dir: &Path, split: CorpusSplit) -> Result<Vec<Document>, DataError> {
    let path = split_path(dir, split)?;
    let text = read_text(&path, String::new)?;
    let mut documents: Vec<Document> = Vec::new();
    for line in text.lines() {
        match title_of(line) {
            Some(title) => documents.push(Document {
                title: title.to_string(),
                text: format!("{line}\n"),
            }),
            None => match documents.last_mut() {
                Some(document) => {
                    document.text.push_str(line);
                    document.text.push('\n');
                }
                None if line.trim().is_empty() => {}
                None => documents.push(Document {
                    title: String::new(),
                    text: format!("{line}\n"),
                }),
            },
        }
    }
    if documents.is_empty() {
        return Err(DataError::Invalid {
            path,
            reason: "the split holds no text".into(),
        });
    }
    Ok(documents)
}
