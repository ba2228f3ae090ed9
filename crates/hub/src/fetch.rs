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

use crate::FetchError;
use crate::assets::Asset;
use crate::files::{io, is_whole, mib, partial_path, sha256_of, write_atomic};
use crate::listing::RemoteFile;

/// The revision every asset is fetched at.
pub(crate) const REVISION: &str = "main";
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

#[derive(Serialize, Deserialize)]
struct Manifest {
    asset: String,
    repo: String,
    files: Vec<RemoteFile>,
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

    pub(crate) fn request(&self, url: &str) -> ureq::Request {
        let request = self.agent.get(url);
        match &self.token {
            Some(token) => request.set("Authorization", &format!("Bearer {token}")),
            None => request,
        }
    }

    /// `Err` with the hub's answer explained.
    pub(crate) fn http_error(
        &self,
        asset: &Asset,
        what: &str,
        url: &str,
        error: ureq::Error,
    ) -> FetchError {
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

#[cfg(test)]
mod tests {
    use super::truthy;

    #[test]
    fn offline_takes_the_usual_spellings_of_yes() {
        assert!(truthy("1") && truthy("TRUE") && truthy(" yes") && !truthy("0") && !truthy(""));
    }
}
