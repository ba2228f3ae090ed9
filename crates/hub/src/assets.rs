//! The paper's real assets on the Hugging Face Hub, and where the specs expect them.

use std::path::{Component, Path};

use crate::FetchError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoKind {
    Dataset,
    Model,
}

impl RepoKind {
    /// The segment of the hub's API paths (`/api/datasets/...`).
    pub(crate) fn api(self) -> &'static str {
        match self {
            Self::Dataset => "datasets",
            Self::Model => "models",
        }
    }

    /// What precedes the repo in file URLs (`/datasets/owner/name/resolve/...`).
    pub(crate) fn resolve_prefix(self) -> &'static str {
        match self {
            Self::Dataset => "datasets/",
            Self::Model => "",
        }
    }
}

/// One named thing `hedgehog fetch` can get.
#[derive(Debug)]
pub struct Asset {
    pub name: &'static str,
    pub kind: RepoKind,
    /// `owner/name` on the hub.
    pub repo: &'static str,
    /// Folders of the repo whose files are all fetched.
    pub folders: &'static [&'static str],
    /// Single files at the repo's top level.
    pub files: &'static [&'static str],
    /// Place a folder's files directly in `dest` (`wikitext-103-raw-v1/train-…` →
    /// `dest/train-…`) rather than under the folder's name.
    pub flatten: bool,
    /// Where the specs in `experiments/` read it from (relative to the working directory).
    pub dest: &'static str,
    pub about: &'static str,
}

const GLUE_TASKS: &[&str] = &[
    "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli",
];

pub const ASSETS: &[Asset] = &[
    Asset {
        name: "wikitext-103",
        kind: RepoKind::Dataset,
        repo: "Salesforce/wikitext",
        folders: &["wikitext-103-raw-v1"],
        files: &[],
        flatten: true,
        dest: "data/wikitext-103",
        about: "WikiText-103 (raw), parquet shards of the train, validation and test splits",
    },
    Asset {
        name: "wikitext-2",
        kind: RepoKind::Dataset,
        repo: "Salesforce/wikitext",
        folders: &["wikitext-2-raw-v1"],
        files: &[],
        flatten: true,
        dest: "data/wikitext-2",
        about: "WikiText-2 (raw), parquet",
    },
    Asset {
        name: "glue",
        kind: RepoKind::Dataset,
        repo: "nyu-mll/glue",
        folders: GLUE_TASKS,
        files: &[],
        flatten: false,
        dest: "data/glue",
        about: "the nine GLUE tasks, parquet, one folder per task",
    },
    Asset {
        name: "gpt2",
        kind: RepoKind::Model,
        repo: "openai-community/gpt2",
        folders: &[],
        files: &["config.json", "model.safetensors"],
        flatten: false,
        dest: "data/weights/gpt2",
        about: "GPT-2 small (124M), safetensors",
    },
    Asset {
        name: "bert-base-uncased",
        kind: RepoKind::Model,
        repo: "google-bert/bert-base-uncased",
        folders: &[],
        files: &[
            "config.json",
            "model.safetensors",
            "vocab.txt",
            "tokenizer.json",
            "tokenizer_config.json",
        ],
        flatten: false,
        dest: "data/weights/bert-base-uncased",
        about: "BERT-base uncased (110M), safetensors and tokenizer",
    },
    Asset {
        name: "vit-base-patch16-224",
        kind: RepoKind::Model,
        repo: "google/vit-base-patch16-224",
        folders: &[],
        files: &["config.json", "model.safetensors"],
        flatten: false,
        dest: "data/weights/vit-base-patch16-224",
        about: "ViT-B/16 at 224 px (86M), safetensors",
    },
];

impl Asset {
    /// The repo's page on huggingface.co, for downloading by hand.
    pub fn page_url(&self) -> String {
        format!(
            "https://huggingface.co/{}{}",
            self.kind.resolve_prefix(),
            self.repo
        )
    }
}

/// The asset called `name`.
pub fn asset(name: &str) -> Result<&'static Asset, FetchError> {
    ASSETS
        .iter()
        .find(|a| a.name == name)
        .ok_or_else(|| FetchError::UnknownAsset {
            name: name.to_string(),
            known: ASSETS.iter().map(|a| a.name).collect::<Vec<_>>().join(", "),
        })
}

/// The asset the specs read from `path` (`data/wikitext-103`, `./data/weights/gpt2`), if any.
pub fn asset_for_path(path: &Path) -> Option<&'static Asset> {
    let normal: Vec<Component> = path
        .components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect();
    ASSETS.iter().find(|a| {
        let dest: Vec<Component> = Path::new(a.dest).components().collect();
        dest == normal
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_paths_name_their_assets() {
        assert_eq!(
            asset_for_path(Path::new("./data/wikitext-103")).map(|a| a.name),
            Some("wikitext-103")
        );
        assert_eq!(
            asset_for_path(Path::new("data/weights/gpt2/")).map(|a| a.name),
            Some("gpt2")
        );
        assert!(asset_for_path(Path::new("data/kjv-austen")).is_none());
        let err = asset("gpt3").unwrap_err().to_string();
        assert!(
            err.contains("gpt3") && err.contains("wikitext-103, wikitext-2"),
            "{err}"
        );
    }
}
