//! WikiText-103 files: `wiki.{train,valid,test}.tokens` (or the raw variant `.raw`), or the
//! parquet shards the Hugging Face Hub serves (`train-00000-of-00002.parquet`, `validation-…`,
//! `test-…`, one `text` row per line). Articles start with a top-level heading line
//! ` = Title = `; sub-headings are ` = = … = = `.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, fetch_hint, io_error, read_text};
use crate::parquet;

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

impl CorpusSplit {
    /// The split's name in the hub's parquet files.
    fn hub_name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Valid => "validation",
            Self::Test => "test",
        }
    }
}

/// Where a split's text is.
#[derive(Clone, Debug, PartialEq)]
pub enum SplitSource {
    /// `wiki.<split>.tokens` or `wiki.<split>.raw`.
    File(PathBuf),
    /// The hub's parquet shards of the split, in order.
    Parquet(Vec<PathBuf>),
}

impl SplitSource {
    /// The file (the first shard) the split is read from, for messages and cache names.
    pub fn path(&self) -> &Path {
        match self {
            Self::File(path) => path,
            Self::Parquet(shards) => &shards[0],
        }
    }

    /// The split's text. From parquet, the file the rows came from: the hub's WikiText rows are
    /// the file's lines with their newlines, and its blank lines (` ` in every WikiText file)
    /// as empty strings, so an empty row is ` \n` again; documents, tokens and perplexity then
    /// match the `.tokens` file's.
    pub fn text(&self) -> Result<String, DataError> {
        match self {
            Self::File(path) => read_text(path, String::new),
            Self::Parquet(shards) => {
                let mut text = String::new();
                for shard in shards {
                    let frame = parquet::read(shard, &["text"])?;
                    for row in parquet::strings(&frame, shard, "text")? {
                        text.push_str(if row.is_empty() { " \n" } else { &row });
                    }
                }
                Ok(text)
            }
        }
    }

    /// The bytes the token cache is keyed on: the file itself, or the text rebuilt from parquet.
    pub fn bytes(&self) -> Result<Vec<u8>, DataError> {
        match self {
            Self::File(path) => std::fs::read(path).map_err(io_error(path)),
            Self::Parquet(_) => Ok(self.text()?.into_bytes()),
        }
    }
}

/// `dir/wiki.<split>.tokens`, else `dir/wiki.<split>.raw`, else the hub's parquet shards
/// `dir/<train|validation|test>-*.parquet`.
pub fn split_source(dir: &Path, split: CorpusSplit) -> Result<SplitSource, DataError> {
    let tokens = dir.join(format!("wiki.{}.tokens", split.name()));
    let raw = dir.join(format!("wiki.{}.raw", split.name()));
    if tokens.exists() {
        return Ok(SplitSource::File(tokens));
    }
    if raw.exists() {
        return Ok(SplitSource::File(raw));
    }
    let shards = parquet::shards(dir, split.hub_name())?;
    if !shards.is_empty() {
        return Ok(SplitSource::Parquet(shards));
    }
    Err(DataError::Missing {
        path: tokens,
        hint: format!(
            "(nor {}, nor the hub's {}-*.parquet there). {}",
            raw.display(),
            split.hub_name(),
            fetch_hint(
                "WikiText-103",
                "https://huggingface.co/datasets/Salesforce/wikitext (its folder \
                 wikitext-103-raw-v1; `hedgehog fetch wikitext-103` puts those parquet files in \
                 data/wikitext-103)"
            )
        ),
    })
}

fn title_of(line: &str) -> Option<&str> {
    let inner = line.trim().strip_prefix("= ")?.strip_suffix(" =")?;
    // ` = = Section = = ` is a sub-heading, not a new article.
    (!inner.starts_with('=')).then_some(inner.trim())
}

/// The documents of a split. Text before the first heading is one untitled document; a plain
/// text corpus without headings is a single document.
pub fn read_documents(dir: &Path, split: CorpusSplit) -> Result<Vec<Document>, DataError> {
    let source = split_source(dir, split)?;
    let text = source.text()?;
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
            path: source.path().to_path_buf(),
            reason: "the split holds no text".into(),
        });
    }
    Ok(documents)
}
