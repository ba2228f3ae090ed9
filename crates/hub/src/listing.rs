//! The hub's tree API: an asset's files with their sizes and, for LFS files, sha256s,
//! following `Link: <…>; rel="next"` pages.

use serde::{Deserialize, Serialize};

use crate::FetchError;
use crate::assets::Asset;
use crate::fetch::{Hub, REVISION};

/// One file of an asset, as the hub lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct RemoteFile {
    /// The path in the repo.
    pub path: String,
    /// The path under the destination folder.
    pub placed: String,
    pub size: u64,
    /// LFS files (weights, parquet) carry their sha256; small git files only a size.
    pub sha256: Option<String>,
}

#[derive(Deserialize)]
struct TreeEntry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    size: u64,
    lfs: Option<LfsInfo>,
}

#[derive(Deserialize)]
struct LfsInfo {
    oid: String,
    size: u64,
}

impl Hub {
    /// Every file of the asset with its size and checksum.
    pub(crate) fn list(&self, asset: &Asset) -> Result<Vec<RemoteFile>, FetchError> {
        let mut files = Vec::new();
        for folder in asset.folders {
            let entries = self.tree(asset, folder)?;
            let before = files.len();
            for entry in entries.into_iter().filter(|e| e.kind == "file") {
                let placed = if asset.flatten {
                    entry
                        .path
                        .strip_prefix(&format!("{folder}/"))
                        .unwrap_or(&entry.path)
                        .to_string()
                } else {
                    entry.path.clone()
                };
                files.push(remote_file(entry, placed));
            }
            if files.len() == before {
                return Err(FetchError::Listing {
                    url: self.tree_url(asset, folder),
                    message: format!("{} lists no files under `{folder}`", asset.repo),
                });
            }
        }
        if !asset.files.is_empty() {
            let mut entries = self.tree(asset, "")?;
            for name in asset.files {
                let index = entries
                    .iter()
                    .position(|e| e.kind == "file" && e.path == *name)
                    .ok_or_else(|| FetchError::Http {
                        url: self.tree_url(asset, ""),
                        status: 404,
                        hint: format!(
                            "{} has no `{name}` at revision {REVISION} on {}",
                            asset.repo,
                            self.endpoint()
                        ),
                    })?;
                files.push(remote_file(entries.swap_remove(index), name.to_string()));
            }
        }
        for file in &files {
            if file
                .placed
                .split('/')
                .any(|part| part == ".." || part.is_empty())
            {
                return Err(FetchError::Listing {
                    url: self.tree_url(asset, ""),
                    message: format!("refusing the listed path `{}`", file.path),
                });
            }
        }
        Ok(files)
    }

    fn tree_url(&self, asset: &Asset, folder: &str) -> String {
        let folder = if folder.is_empty() {
            String::new()
        } else {
            format!("/{folder}")
        };
        format!(
            "{}/api/{}/{}/tree/{REVISION}{folder}?recursive=true",
            self.endpoint(),
            asset.kind.api(),
            asset.repo
        )
    }

    /// The tree API's entries under `folder`, following its `Link: <…>; rel="next"` pages.
    fn tree(&self, asset: &Asset, folder: &str) -> Result<Vec<TreeEntry>, FetchError> {
        let mut url = self.tree_url(asset, folder);
        let mut entries = Vec::new();
        loop {
            let what = if folder.is_empty() { "tree" } else { folder };
            let response = self
                .request(&url)
                .call()
                .map_err(|e| self.http_error(asset, what, &url, e))?;
            let next = response.header("Link").and_then(next_page);
            let text = response.into_string().map_err(|e| FetchError::Network {
                url: url.clone(),
                message: e.to_string(),
            })?;
            let page: Vec<TreeEntry> =
                serde_json::from_str(&text).map_err(|e| FetchError::Listing {
                    url: url.clone(),
                    message: format!("not the hub's tree listing: {e}"),
                })?;
            entries.extend(page);
            match next {
                Some(next) => url = next,
                None => return Ok(entries),
            }
        }
    }
}

fn remote_file(entry: TreeEntry, placed: String) -> RemoteFile {
    let (size, sha256) = match entry.lfs {
        Some(lfs) => (lfs.size, Some(lfs.oid.to_ascii_lowercase())),
        None => (entry.size, None),
    };
    RemoteFile {
        path: entry.path,
        placed,
        size,
        sha256,
    }
}

/// `<url>` of a `Link` header's `rel="next"` part.
fn next_page(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let link = r#"<https://hub/api/datasets/a/b/tree/main?cursor=xyz>; rel="next""#;
        assert_eq!(
            next_page(link).as_deref(),
            Some("https://hub/api/datasets/a/b/tree/main?cursor=xyz")
        );
        assert_eq!(next_page(r#"<https://hub/x>; rel="prev""#), None);
    }
}
