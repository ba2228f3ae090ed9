//! A miniature Hugging Face Hub on 127.0.0.1 for tests: the tree API
//! (`/api/{datasets|models}/<repo>/tree/<rev>/<folder>`) with sizes and LFS sha256s, and
//! `resolve/` downloads with byte ranges, served from memory. Faults on request: a connection
//! cut after some bytes, bytes that do not match the listed checksum. Every request is
//! recorded.

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::RepoKind;

/// One file of a repo on the miniature hub.
#[derive(Clone)]
pub struct MockFile {
    pub kind: RepoKind,
    pub repo: String,
    pub path: String,
    pub bytes: Vec<u8>,
    /// Listed with an `lfs` entry (size and sha256), as the hub lists weights and parquet.
    pub lfs: bool,
}

/// `Salesforce/wikitext`'s `wikitext-103-raw-v1` folder, served from a folder of
/// `<train|validation|test>-00000-of-00001.parquet` files (the committed samples).
pub fn wikitext_103(shards: &std::path::Path) -> std::io::Result<Vec<MockFile>> {
    ["train", "validation", "test"]
        .iter()
        .map(|split| {
            let name = format!("{split}-00000-of-00001.parquet");
            Ok(MockFile {
                kind: RepoKind::Dataset,
                repo: "Salesforce/wikitext".into(),
                path: format!("wikitext-103-raw-v1/{name}"),
                bytes: std::fs::read(shards.join(&name))?,
                lfs: true,
            })
        })
        .collect()
}

/// What a client asked.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
}

#[derive(Default)]
struct State {
    files: Vec<MockFile>,
    requests: Vec<Recorded>,
    cut_once: HashMap<String, usize>,
    wrong_bytes: HashSet<String>,
}

/// A running miniature hub; it serves until the test process ends.
pub struct MockHub {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl MockHub {
    pub fn start(files: Vec<MockFile>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(Mutex::new(State {
            files,
            ..State::default()
        }));
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = shared.clone();
                std::thread::spawn(move || {
                    // A client that hangs up mid-answer is what some tests do on purpose.
                    let _ = serve(stream, &state);
                });
            }
        });
        Ok(Self { endpoint, state })
    }

    /// The base URL to give as `HF_ENDPOINT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The next download of `path` sends its full length in the headers, then only `after`
    /// bytes, and closes the connection.
    pub fn cut_once(&self, path: &str, after: usize) {
        self.lock().cut_once.insert(path.into(), after);
    }

    /// Downloads of `path` serve bytes that differ from the listed sha256 (same length).
    pub fn serve_wrong_bytes(&self, path: &str) {
        self.lock().wrong_bytes.insert(path.into());
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.lock().requests.clone()
    }

    /// The requests for file bytes (`resolve/`).
    pub fn downloads(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| r.path.contains("/resolve/"))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn serve(stream: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or(target).to_string();
    let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
    state.requests.push(Recorded {
        path: path.clone(),
        range: headers.get("range").cloned(),
        authorization: headers.get("authorization").cloned(),
    });
    let mut stream = stream;
    if let Some(rest) = path.strip_prefix("/api/") {
        let answer = tree(&state, rest);
        drop(state);
        return match answer {
            Some(json) => respond(
                &mut stream,
                "200 OK",
                "application/json",
                &[],
                json.as_bytes(),
            ),
            None => not_found(&mut stream),
        };
    }
    let Some((kind, repo, file)) = resolve_target(&path) else {
        drop(state);
        return not_found(&mut stream);
    };
    let Some(found) = state
        .files
        .iter()
        .find(|f| f.kind == kind && f.repo == repo && f.path == file)
    else {
        drop(state);
        return not_found(&mut stream);
    };
    let mut bytes = found.bytes.clone();
    if state.wrong_bytes.contains(&file) && !bytes.is_empty() {
        bytes[0] ^= 0xff;
    }
    let cut = state.cut_once.remove(&file);
    drop(state);
    let start = headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<usize>().ok());
    let etag = format!("\"{}\"", sha256_hex(&bytes));
    match start {
        Some(start) if start >= bytes.len() => respond(
            &mut stream,
            "416 Range Not Satisfiable",
            "text/plain",
            &[("Content-Range", format!("bytes */{}", bytes.len()))],
            b"",
        ),
        Some(start) => respond(
            &mut stream,
            "206 Partial Content",
            "application/octet-stream",
            &[
                (
                    "Content-Range",
                    format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len()),
                ),
                ("ETag", etag),
            ],
            &bytes[start..],
        ),
        None => match cut {
            Some(after) => {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
                    bytes.len()
                );
                stream.write_all(head.as_bytes())?;
                stream.write_all(&bytes[..after.min(bytes.len())])?;
                stream.flush()?;
                stream.shutdown(std::net::Shutdown::Both)
            }
            None => respond(
                &mut stream,
                "200 OK",
                "application/octet-stream",
                &[("ETag", etag)],
                &bytes,
            ),
        },
    }
}

/// `datasets/<owner>/<name>/resolve/<rev>/<file>` or `<owner>/<name>/resolve/<rev>/<file>`.
fn resolve_target(path: &str) -> Option<(RepoKind, String, String)> {
    let path = path.strip_prefix('/')?;
    let (kind, rest) = match path.strip_prefix("datasets/") {
        Some(rest) => (RepoKind::Dataset, rest),
        None => (RepoKind::Model, path),
    };
    let parts: Vec<&str> = rest.splitn(5, '/').collect();
    match parts.as_slice() {
        [owner, name, "resolve", _revision, file] => {
            Some((kind, format!("{owner}/{name}"), file.to_string()))
        }
        _ => None,
    }
}

/// The tree listing of `<datasets|models>/<owner>/<name>/tree/<rev>[/<folder>]`.
fn tree(state: &State, rest: &str) -> Option<String> {
    let parts: Vec<&str> = rest.splitn(6, '/').collect();
    let (kind, owner, name, folder) = match parts.as_slice() {
        [kind, owner, name, "tree", _revision] => (*kind, *owner, *name, ""),
        [kind, owner, name, "tree", _revision, folder] => (*kind, *owner, *name, *folder),
        _ => return None,
    };
    let kind = match kind {
        "datasets" => RepoKind::Dataset,
        "models" => RepoKind::Model,
        _ => return None,
    };
    let repo = format!("{owner}/{name}");
    let prefix = format!("{}/", folder.trim_end_matches('/'));
    let entries: Vec<serde_json::Value> = state
        .files
        .iter()
        .filter(|f| f.kind == kind && f.repo == repo)
        .filter(|f| folder.is_empty() || f.path.starts_with(&prefix))
        .map(|f| {
            let mut entry = serde_json::json!({
                "type": "file",
                "oid": &sha256_hex(&f.bytes)[..40],
                "size": f.bytes.len(),
                "path": f.path,
            });
            if f.lfs {
                entry["lfs"] = serde_json::json!({
                    "oid": sha256_hex(&f.bytes),
                    "size": f.bytes.len(),
                    "pointerSize": 134,
                });
            }
            entry
        })
        .collect();
    let repo_exists = state.files.iter().any(|f| f.kind == kind && f.repo == repo);
    (repo_exists && (folder.is_empty() || !entries.is_empty()))
        .then(|| serde_json::Value::Array(entries).to_string())
}

fn not_found(stream: &mut TcpStream) -> std::io::Result<()> {
    respond(
        stream,
        "404 Not Found",
        "application/json",
        &[("X-Error-Code", "EntryNotFound".into())],
        br#"{"error":"Entry not found"}"#,
    )
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    extra: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Accept-Ranges: bytes\r\nX-Repo-Commit: 0000000000000000000000000000000000000000\r\n\
         Connection: close\r\n",
        body.len()
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    stream.flush()
}
