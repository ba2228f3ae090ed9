//! `hedgehog fetch`: the paper's real datasets and weights from the Hugging Face Hub.
//!
//! Plain HTTPS through `ureq` against the hub's documented endpoints (the tree API for the
//! file list with sizes and LFS sha256s, `resolve/` for the bytes), rather than the `hf-hub`
//! crate: we need byte-range resume, checksum verification before a file is placed, and
//! placement in the folders the specs read (`data/wikitext-103`, `data/weights/gpt2`), not in
//! the hub's cache layout. [`mock`] serves a miniature hub on 127.0.0.1 for the tests.

mod assets;
mod fetch;
mod files;
mod listing;
pub mod mock;

use std::path::PathBuf;

pub use assets::{ASSETS, Asset, RepoKind, asset, asset_for_path};
pub use fetch::{FetchReport, Hub, MANIFEST};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no asset `{name}`; `hedgehog fetch` knows {known}")]
    UnknownAsset { name: String, known: String },
    #[error("{url}: HTTP {status}: {hint}")]
    Http {
        url: String,
        status: u16,
        hint: String,
    },
    #[error(
        "{url}: {message}. Check the network or HF_ENDPOINT; with the files already in place, \
         HF_HUB_OFFLINE=1 uses them without the network"
    )]
    Network { url: String, message: String },
    #[error("{url}: {message}")]
    Listing { url: String, message: String },
    #[error(
        "{path}: the download stopped at byte {have} of {size} ({message}); run the same \
         command again to resume from there"
    )]
    Interrupted {
        path: PathBuf,
        have: u64,
        size: u64,
        message: String,
    },
    #[error(
        "{path}: sha256 {actual} is not the hub's {expected}; the download was discarded and \
         nothing was placed (run again to fetch it anew)"
    )]
    Checksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("{path}: {actual} bytes arrived, the hub lists {expected}; nothing was placed")]
    Size {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error(
        "{name}: HF_HUB_OFFLINE is set and {problem}; unset HF_HUB_OFFLINE to fetch it into \
         {dest}, or place the files there by hand"
    )]
    Offline {
        name: String,
        dest: PathBuf,
        problem: String,
    },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}
