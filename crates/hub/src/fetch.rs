//! Fetching an asset: list its files through the hub's tree API (sizes, and the sha256 of
//! every LFS file), download each into `<file>.partial` (resumed with a byte range after a cut
//! connection), check size and sha256, and only then rename it into place. A manifest of what
//! was placed lets offline mode (`HF_HUB_OFFLINE=1`) check the copy without the network.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::FetchError;
use crate::assets::Asset;

/// The revision every asset is fetched at.
const REVISION: &str = "main";
/// Written into the destination after a complete fetch.
pub const MANIFEST: &str = ".hedgehog-fetch.json";

/// Where files come from and how.
pub struct Hub {
    endpoint: String,
    token: Option<String>,
    offline: bool,
    progress: bool,
    agent: ureq::Agent,
}

/// What a fetch did.
#[derive(Debug)]
pub struct FetchReport {
    pub dest: PathBuf,
    /// Files downloaded by this call.
    pub downloaded: Vec<PathBuf>,
    /// Files that were already there, whole.
    pub present: Vec<PathBuf>,
    pub bytes_downloaded: u64,
}

/// One file of an asset, as the hub lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RemoteFile {
    /// The path in the repo.
    path: String,
    /// The path under the destination folder.
    placed: String,
    size: u64,
    /// LFS files (weights, parquet) carry their sha256; small git files only a size.
    sha256: Option<String>,
}

#[derive(Serialize, Deserialize)]
struct Manifest {
    asset: String,
    repo: String,
    files: Vec<RemoteFile>,
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

fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "on"
    )
}

impl Hub {
    /// `endpoint` is the hub's base URL (`https://huggingface.co`).
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token: None,
            offline: false,
            progress: true,
            agent: ureq::AgentBuilder::new()
                .timeout_connect(Duration::from_secs(30))
                .timeout_read(Duration::from_secs(120))
                .build(),
        }
    }

    /// The hub's own environment variables: `HF_ENDPOINT`, `HF_TOKEN` (or the older
    /// `HUGGING_FACE_HUB_TOKEN`) and `HF_HUB_OFFLINE`.
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        Self::new(var("HF_ENDPOINT").unwrap_or_else(|| "https://huggingface.co".into()))
            .with_token(var("HF_TOKEN").or_else(|| var("HUGGING_FACE_HUB_TOKEN")))
            .offline(var("HF_HUB_OFFLINE").is_some_and(|v| truthy(&v)))
    }

    pub fn with_token(mut self, token: Option<String>) -> Self {
        self.token = token;
        self
    }

    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// No progress bar or lines (tests).
    pub fn quiet(mut self) -> Self {
        self.progress = false;
        self
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Makes `dest` hold every file of `asset`, downloading what is missing or incomplete.
    pub fn fetch(&self, asset: &Asset, dest: &Path) -> Result<FetchReport, FetchError> {
        if self.offline {
            return self.check_offline(asset, dest);
        }
        let files = self.list(asset)?;
        std::fs::create_dir_all(dest).map_err(io(dest))?;
        let mut report = FetchReport {
            dest: dest.to_path_buf(),
            downloaded: Vec::new(),
            present: Vec::new(),
            bytes_downloaded: 0,
        };
        let total: u64 = files.iter().map(|f| f.size).sum();
        self.say(format!(
            "{}: {} files, {} from {}/{}{}",
            asset.name,
            files.len(),
            mib(total),
            self.endpoint,
            asset.kind.resolve_prefix(),
            asset.repo
        ));
        for file in &files {
            let target = dest.join(&file.placed);
            if is_whole(&target, file)? {
                report.present.push(target);
                continue;
            }
            report.bytes_downloaded += self.download(asset, file, &target)?;
            report.downloaded.push(target);
        }
        let manifest = Manifest {
            asset: asset.name.into(),
            repo: asset.repo.into(),
            files,
        };
        let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises");
        write_atomic(&dest.join(MANIFEST), text.as_bytes())?;
        Ok(report)
    }

    fn say(&self, line: String) {
        if self.progress {
            eprintln!("{line}");
        }
    }

    /// Offline: the manifest of an earlier complete fetch, every file still there and whole.
    fn check_offline(&self, asset: &Asset, dest: &Path) -> Result<FetchReport, FetchError> {
        let offline = |problem: String| FetchError::Offline {
            name: asset.name.into(),
            dest: dest.to_path_buf(),
            problem,
        };
        let path = dest.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|_| {
            offline(format!(
                "{} is not there (no complete fetch)",
                path.display()
            ))
        })?;
        let manifest: Manifest = serde_json::from_str(&text)
            .map_err(|e| offline(format!("{} is damaged ({e})", path.display())))?;
        let mut present = Vec::new();
        for file in &manifest.files {
            let target = dest.join(&file.placed);
            let size = std::fs::metadata(&target).map(|m| m.len()).ok();
            if size != Some(file.size) {
                return Err(offline(format!(
                    "{} is missing or not {} bytes",
                    target.display(),
                    file.size
                )));
            }
            present.push(target);
        }
        Ok(FetchReport {
            dest: dest.to_path_buf(),
            downloaded: Vec::new(),
            present,
            bytes_downloaded: 0,
        })
    }

    fn request(&self, url: &str) -> ureq::Request {
        let request = self.agent.get(url);
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// `Err` with the hub's answer explained.
    fn http_error(&self, asset: &Asset, what: &str, url: &str, error: ureq::Error) -> FetchError {
        match error {
            ureq::Error::Status(status, _) => {
                let hint = match status {
                    401 | 403 => format!(
                        "the hub refused access: set HF_TOKEN to a token that can read {} \
                         (gated repos also need their terms accepted on the hub's page)",
                        asset.repo
                    ),
                    404 => format!(
                        "{} has no `{what}` at revision {REVISION} on {} (check HF_ENDPOINT)",
                        asset.repo, self.endpoint
                    ),
                    _ => "the hub answered with an error; try again later".into(),
                };
                FetchError::Http {
                    url: url.into(),
                    status,
                    hint,
                }
            }
            ureq::Error::Transport(transport) => FetchError::Network {
                url: url.into(),
                message: transport.to_string(),
            },
        }
    }

    /// Every file of the asset with its size and checksum.
    fn list(&self, asset: &Asset) -> Result<Vec<RemoteFile>, FetchError> {
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
                            asset.repo, self.endpoint
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
            self.endpoint,
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

    /// Downloads `file` to `target` through `target.partial`; returns the bytes transferred.
    fn download(&self, asset: &Asset, file: &RemoteFile, target: &Path) -> Result<u64, FetchError> {
        let url = format!(
            "{}/{}{}/resolve/{REVISION}/{}",
            self.endpoint,
            asset.kind.resolve_prefix(),
            asset.repo,
            file.path
        );
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let partial = partial_path(target);
        let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if have > file.size {
            std::fs::remove_file(&partial).map_err(io(&partial))?;
            have = 0;
        }
        let mut request = self.request(&url);
        if have > 0 {
            request = request.set("Range", &format!("bytes={have}-"));
        }
        let response = match request.call() {
            // The server had no more to give: the partial file may already be whole.
            Err(ureq::Error::Status(416, _)) if have == file.size => None,
            Err(e) => return Err(self.http_error(asset, &file.path, &url, e)),
            Ok(response) => Some(response),
        };
        let mut transferred = 0;
        if let Some(response) = response {
            let resumed = response.status() == 206 && have > 0;
            let mut out = if resumed {
                OpenOptions::new().append(true).open(&partial)
            } else {
                have = 0;
                File::create(&partial)
            }
            .map_err(io(&partial))?;
            let bar = self.bar(&file.placed, file.size, have);
            let mut reader = response.into_reader();
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let read = match reader.read(&mut buffer) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        bar.abandon();
                        out.flush().map_err(io(&partial))?;
                        return Err(FetchError::Interrupted {
                            path: target.to_path_buf(),
                            have: have + transferred,
                            size: file.size,
                            message: e.to_string(),
                        });
                    }
                };
                out.write_all(&buffer[..read]).map_err(io(&partial))?;
                transferred += read as u64;
                bar.inc(read as u64);
            }
            out.sync_all().map_err(io(&partial))?;
            bar.finish_and_clear();
        }
        let size = std::fs::metadata(&partial).map_err(io(&partial))?.len();
        if size < file.size {
            return Err(FetchError::Interrupted {
                path: target.to_path_buf(),
                have: size,
                size: file.size,
                message: "the connection ended early".into(),
            });
        }
        if size > file.size {
            std::fs::remove_file(&partial).map_err(io(&partial))?;
            return Err(FetchError::Size {
                path: target.to_path_buf(),
                expected: file.size,
                actual: size,
            });
        }
        if let Some(expected) = &file.sha256 {
            let actual = sha256_of(&partial)?;
            if &actual != expected {
                std::fs::remove_file(&partial).map_err(io(&partial))?;
                return Err(FetchError::Checksum {
                    path: target.to_path_buf(),
                    expected: expected.clone(),
                    actual,
                });
            }
        }
        std::fs::rename(&partial, target).map_err(io(target))?;
        self.say(format!("  {} ({})", target.display(), mib(file.size)));
        Ok(transferred)
    }

    fn bar(&self, name: &str, size: u64, have: u64) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template(
                "  {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} (eta {eta})",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(name.to_string());
        bar.set_position(have);
        bar
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

/// Whether `target` is already the listed file (size, and sha256 where the hub gives one).
fn is_whole(target: &Path, file: &RemoteFile) -> Result<bool, FetchError> {
    match std::fs::metadata(target) {
        Ok(meta) if meta.len() == file.size => match &file.sha256 {
            Some(expected) => Ok(&sha256_of(target)? == expected),
            None => Ok(true),
        },
        _ => Ok(false),
    }
}

fn partial_path(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    target.with_file_name(name)
}

fn sha256_of(path: &Path) -> Result<String, FetchError> {
    let mut file = File::open(path).map_err(io(path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(io(path))?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FetchError> {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes).map_err(io(&partial))?;
    std::fs::rename(&partial, path).map_err(io(path))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn mib(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
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
        assert!(truthy("1") && truthy("TRUE") && !truthy("0") && !truthy(""));
    }
}
