//! The fetch code against a miniature hub on 127.0.0.1 that serves the committed parquet
//! samples as `Salesforce/wikitext` and the GPT-2 test fixture as `openai-community/gpt2`:
//! a full fetch, a second one that downloads nothing, a resumed fetch after a cut connection,
//! a checksum mismatch, a 404, a token, and offline mode.

use std::path::{Path, PathBuf};

use hedgehog_hub::mock::{self, MockFile, MockHub};
use hedgehog_hub::{FetchError, Hub, MANIFEST, RepoKind, asset};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-hub-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The WikiText-103 shards (the samples, under the hub's folder and names) and GPT-2's files.
fn miniature() -> Vec<MockFile> {
    let mut files = mock::wikitext_103(&repo_root().join("data/samples/wikitext-parquet")).unwrap();
    let gpt2 = repo_root().join("crates/models/tests/fixtures/gpt2");
    for (name, lfs) in [("config.json", false), ("model.safetensors", true)] {
        files.push(MockFile {
            kind: RepoKind::Model,
            repo: "openai-community/gpt2".into(),
            path: name.into(),
            bytes: std::fs::read(gpt2.join(name)).unwrap(),
            lfs,
        });
    }
    files
}

#[test]
fn a_fetch_places_every_file_whole_and_a_second_one_downloads_nothing() {
    let files = miniature();
    let hub = MockHub::start(files.clone()).unwrap();
    let dest = temp("full").join("wikitext-103");
    let client = Hub::new(hub.endpoint())
        .with_token(Some("hf_test".into()))
        .quiet();
    let report = client.fetch(asset("wikitext-103").unwrap(), &dest).unwrap();
    assert_eq!(report.downloaded.len(), 3);
    for file in files.iter().filter(|f| f.kind == RepoKind::Dataset) {
        let placed = dest.join(file.path.strip_prefix("wikitext-103-raw-v1/").unwrap());
        assert_eq!(std::fs::read(&placed).unwrap(), file.bytes);
    }
    assert!(dest.join(MANIFEST).exists());
    assert!(
        hub.requests()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer hf_test")),
        "HF_TOKEN goes with every request"
    );
    let again = client.fetch(asset("wikitext-103").unwrap(), &dest).unwrap();
    assert!(again.downloaded.is_empty() && again.present.len() == 3);
    assert_eq!(hub.downloads().len(), 3, "nothing downloaded twice");

    // Weights: small git files (sizes only) and LFS files (sha256) side by side.
    let weights = temp("full").join("gpt2");
    let report = client.fetch(asset("gpt2").unwrap(), &weights).unwrap();
    assert_eq!(report.downloaded.len(), 2);
    let fixture = repo_root().join("crates/models/tests/fixtures/gpt2/model.safetensors");
    assert_eq!(
        std::fs::read(weights.join("model.safetensors")).unwrap(),
        std::fs::read(fixture).unwrap()
    );
}

#[test]
fn a_cut_connection_leaves_a_partial_file_that_the_next_fetch_resumes() {
    let files = miniature();
    let hub = MockHub::start(files.clone()).unwrap();
    let train = "wikitext-103-raw-v1/train-00000-of-00001.parquet";
    hub.cut_once(train, 10_000);
    let dest = temp("resume");
    let client = Hub::new(hub.endpoint()).quiet();
    let err = client
        .fetch(asset("wikitext-103").unwrap(), &dest)
        .unwrap_err();
    assert!(
        matches!(err, FetchError::Interrupted { have: 10_000, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("run the same command again"),
        "{err}"
    );
    let placed = dest.join("train-00000-of-00001.parquet");
    assert!(!placed.exists(), "no half file in place");
    assert_eq!(
        std::fs::metadata(dest.join("train-00000-of-00001.parquet.partial"))
            .unwrap()
            .len(),
        10_000
    );
    client.fetch(asset("wikitext-103").unwrap(), &dest).unwrap();
    let resumed = hub
        .downloads()
        .into_iter()
        .rev()
        .find(|r| r.path.ends_with(train))
        .unwrap();
    assert_eq!(resumed.range.as_deref(), Some("bytes=10000-"));
    let whole = files.iter().find(|f| f.path == train).unwrap();
    assert_eq!(std::fs::read(&placed).unwrap(), whole.bytes);
    assert!(!dest.join("train-00000-of-00001.parquet.partial").exists());
}

#[test]
fn a_checksum_mismatch_places_nothing() {
    let hub = MockHub::start(miniature()).unwrap();
    hub.serve_wrong_bytes("model.safetensors");
    let dest = temp("checksum");
    let err = Hub::new(hub.endpoint())
        .quiet()
        .fetch(asset("gpt2").unwrap(), &dest)
        .unwrap_err();
    assert!(matches!(err, FetchError::Checksum { .. }), "{err}");
    assert!(err.to_string().contains("nothing was placed"), "{err}");
    assert!(!dest.join("model.safetensors").exists());
    assert!(!dest.join("model.safetensors.partial").exists());
    assert!(
        !dest.join(MANIFEST).exists(),
        "an incomplete fetch writes no manifest"
    );
}

#[test]
fn a_missing_repo_or_file_names_both() {
    let mut files = miniature();
    files.retain(|f| f.path != "model.safetensors");
    let hub = MockHub::start(files).unwrap();
    let client = Hub::new(hub.endpoint()).quiet();
    let err = client
        .fetch(asset("gpt2").unwrap(), &temp("404"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("openai-community/gpt2") && err.contains("model.safetensors"),
        "{err}"
    );
    let err = client
        .fetch(asset("glue").unwrap(), &temp("404-glue"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("404") && err.contains("nyu-mll/glue"), "{err}");
}

#[test]
fn offline_mode_uses_a_complete_copy_and_names_what_is_missing() {
    let hub = MockHub::start(miniature()).unwrap();
    let dest = temp("offline");
    let offline = Hub::new(hub.endpoint()).quiet().offline(true);
    let err = offline
        .fetch(asset("wikitext-103").unwrap(), &dest)
        .unwrap_err();
    assert!(matches!(err, FetchError::Offline { .. }), "{err}");
    assert!(err.to_string().contains("HF_HUB_OFFLINE"), "{err}");
    assert!(hub.requests().is_empty(), "offline asks nothing");
    Hub::new(hub.endpoint())
        .quiet()
        .fetch(asset("wikitext-103").unwrap(), &dest)
        .unwrap();
    let asked = hub.requests().len();
    let report = offline
        .fetch(asset("wikitext-103").unwrap(), &dest)
        .unwrap();
    assert_eq!(report.present.len(), 3);
    assert_eq!(hub.requests().len(), asked);
    std::fs::remove_file(dest.join("test-00000-of-00001.parquet")).unwrap();
    let err = offline
        .fetch(asset("wikitext-103").unwrap(), &dest)
        .unwrap_err()
        .to_string();
    assert!(err.contains("test-00000-of-00001.parquet"), "{err}");
}

#[test]
fn no_hub_at_the_endpoint_is_a_network_error_that_says_what_to_check() {
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Hub::new(format!("http://127.0.0.1:{port}"))
        .quiet()
        .fetch(asset("gpt2").unwrap(), &temp("refused"))
        .unwrap_err();
    assert!(matches!(err, FetchError::Network { .. }), "{err}");
    assert!(err.to_string().contains("HF_ENDPOINT"), "{err}");
}
