//! The design card's command as a new user meets it: `hedgehog run experiments/wikitext_gpt2.yaml`
//! on a machine with no GPU and no WikiText-103, once with a (miniature) hub behind
//! HF_ENDPOINT and once with none reachable.

use std::path::Path;
use std::process::{Command, Output};

use hedgehog_hub::mock::{self, MockHub};

mod common;
use common::{fresh_dir, repo_root};

/// `hedgehog run experiments/wikitext_gpt2.yaml` in `work` (relative data paths land there).
fn run_design_card(work: &Path, endpoint: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hedgehog"))
        .arg("run")
        .arg(repo_root().join("experiments/wikitext_gpt2.yaml"))
        .arg("--results")
        .arg(work.join("results"))
        .current_dir(work)
        .env("HF_ENDPOINT", endpoint)
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_TOKEN")
        .env_remove("CUDA_VISIBLE_DEVICES")
        .output()
        .unwrap()
}

#[test]
fn with_a_hub_it_fetches_wikitext_picks_the_device_and_asks_before_a_run_of_weeks() {
    let files = mock::wikitext_103(&repo_root().join("data/samples/wikitext-parquet")).unwrap();
    let hub = MockHub::start(files).unwrap();
    let work = fresh_dir("hub");
    let output = run_design_card(&work, hub.endpoint());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(!output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("fetching `wikitext-103`"), "{stdout}");
    assert!(
        work.join("data/wikitext-103/train-00000-of-00001.parquet")
            .exists()
    );
    assert!(stdout.contains("device: cpu (auto:"), "{stdout}");
    assert!(stdout.contains("cost of wikitext_gpt2"), "{stdout}");
    assert!(
        stderr.contains("--yes") && stderr.contains("experiments/lm_scratch_cpu.yaml"),
        "{stderr}"
    );
    let runs = std::fs::read_dir(work.join("results/wikitext_gpt2"))
        .map(|entries| entries.count())
        .unwrap_or(0);
    assert_eq!(runs, 0, "an unconfirmed run leaves no folder");
    std::fs::remove_dir_all(&work).ok();
}

#[test]
fn without_a_hub_it_says_what_it_needs_and_how_to_get_it() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let work = fresh_dir("nohub");
    let output = run_design_card(&work, &format!("http://127.0.0.1:{port}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    for needed in [
        "hedgehog fetch wikitext-103",
        "https://huggingface.co/datasets/Salesforce/wikitext",
        "just fetch-data",
        "HF_ENDPOINT",
    ] {
        assert!(stderr.contains(needed), "`{needed}` in: {stderr}");
    }
    std::fs::remove_dir_all(&work).ok();
}
