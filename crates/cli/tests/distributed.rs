//! A spec split over two `hedgehog run` processes on 127.0.0.1 (`distributed:`) against the
//! same spec in one process: the same losses and weights after every step, to f32 tolerance;
//! and a rank whose peer dies mid-run stops with an error instead of hanging.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use safetensors::SafeTensors;

mod common;
use common::{fresh_dir, repo_root};

/// A GPT small enough for seconds per run, without dropout (whose masks would differ between
/// a half batch and a whole one): a softmax stage with gradient accumulation and clipping,
/// then Hedgehog maps distilled (a loss with per-layer parts).
fn write_spec(dir: &Path) -> PathBuf {
    let data = repo_root().join("data/samples/wikitext");
    let spec = format!(
        "name: two_ranks
seed: 5
device: cpu
model:
  family: gpt2
  preset: gpt2_tiny
  config: {{n_layer: 1, resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0}}
attention: [{{kind: softmax}}]
task: {{kind: language_modeling, path: {data}, context: 16, eval_tokens: 128}}
checkpoint: {{every: 2, keep: 1}}
stages:
  - kind: train
    steps: 4
    batch_size: 4
    grad_accumulation: 2
    optimizer: {{kind: adamw, lr: 3.0e-3, weight_decay: 0.01}}
    clip: 1.0
    log_every: 1
    eval_every: 2
  - kind: eval
    attention: [{{kind: linear, feature_map: {{kind: hedgehog, activation: softmax_split, feature_dim: 16}}}}]
  - kind: distill
    steps: 3
    batch_size: 4
    optimizer: {{kind: adamw, lr: 1.0e-2, weight_decay: 0.0}}
    log_every: 1
",
        data = data.display()
    );
    let path = dir.join("two_ranks.yaml");
    std::fs::write(&path, spec).unwrap();
    path
}

fn hedgehog(spec: &Path, results: &Path, extra: &[String]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hedgehog"));
    command
        .arg("run")
        .arg(spec)
        .arg("--results")
        .arg(results)
        .args(extra.iter().flat_map(|e| ["--set", e.as_str()]))
        .current_dir(repo_root())
        .env_remove("WORLD_SIZE")
        .env_remove("RANK")
        .env_remove("MASTER_ADDR")
        .env_remove("MASTER_PORT");
    command
}

/// A port free on 127.0.0.1 now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One rank, started the way a launcher starts it: through the environment.
fn spawn_rank(spec: &Path, results: &Path, rank: usize, port: u16, timeout_s: u32) -> Child {
    hedgehog(
        spec,
        results,
        &[format!("distributed.timeout_s={timeout_s}")],
    )
    .env("WORLD_SIZE", "2")
    .env("RANK", rank.to_string())
    .env("MASTER_ADDR", "127.0.0.1")
    .env("MASTER_PORT", port.to_string())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap()
}

/// Waits for `child` at most `limit`, killing it after that (a test never hangs).
fn finish(mut child: Child, limit: Duration) -> Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            child.kill().unwrap();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

fn check(output: &Output, who: &str) {
    assert!(
        output.status.success(),
        "{who} failed ({:?}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn run_folder(results: &Path) -> PathBuf {
    results.join("two_ranks/run-001")
}

/// (stage, step, loss) of every logged step.
fn losses(run: &Path) -> Vec<(String, String, f64)> {
    let text = std::fs::read_to_string(run.join("metrics.csv")).unwrap();
    let mut rows = text.lines();
    let header: Vec<&str> = rows.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (stage, step, loss) = (column("stage"), column("global_step"), column("loss"));
    rows.map(|row| row.split(',').collect::<Vec<_>>())
        .filter(|cells| !cells[loss].is_empty())
        .map(|cells| {
            let value = cells[loss].parse().unwrap();
            (cells[stage].to_string(), cells[step].to_string(), value)
        })
        .collect()
}

fn final_weights(run: &Path) -> Vec<(String, Vec<f32>)> {
    let bytes = std::fs::read(run.join("final/model.safetensors")).unwrap();
    let tensors = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = tensors.names().into_iter().map(String::from).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let data = tensors.tensor(&name).unwrap().data().to_vec();
            let values = data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            (name, values)
        })
        .collect()
}

#[test]
fn two_ranks_with_half_a_batch_each_match_one_process_with_all_of_it() {
    let dir = fresh_dir("equal");
    let spec = write_spec(&dir);
    let limit = Duration::from_secs(600);
    let alone = dir.join("alone");
    check(
        &finish(
            hedgehog(&spec, &alone, &[])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap(),
            limit,
        ),
        "the single process",
    );
    let split = dir.join("split");
    let port = free_port();
    let ranks: Vec<Child> = (0..2)
        .map(|r| spawn_rank(&spec, &split, r, port, 120))
        .collect();
    let outputs: Vec<Output> = ranks.into_iter().map(|c| finish(c, limit)).collect();
    check(&outputs[0], "rank 0");
    check(&outputs[1], "rank 1");

    let (one, two) = (run_folder(&alone), run_folder(&split));
    let rank_one = run_folder(&split.join(".rank-1"));
    let (expected, got, got_rank_one) = (losses(&one), losses(&two), losses(&rank_one));
    assert_eq!(expected.len(), 4 + 3, "{expected:?}");
    assert_eq!(got.len(), expected.len(), "{got:?}");
    for ((stage, step, a), (stage2, step2, b)) in expected.iter().zip(&got) {
        assert_eq!((stage, step), (stage2, step2));
        assert!(
            (a - b).abs() <= 1e-4 * a.abs().max(1.0),
            "step {step}: {a} vs {b}"
        );
    }
    assert_eq!(got, got_rank_one, "both ranks log the summed loss");

    let (expected, got) = (final_weights(&one), final_weights(&two));
    assert_eq!(
        final_weights(&rank_one),
        got,
        "the ranks' weights are identical"
    );
    assert_eq!(expected.len(), got.len());
    for ((name, a), (name2, b)) in expected.iter().zip(&got) {
        assert_eq!(name, name2);
        let worst = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max);
        // Adam divides by √v: a rounding difference in a near-zero gradient moves a weight by
        // a fraction of the step size. 1e-4 is 1% of one step at the distillation's lr 1e-2;
        // a wrong share or weighting moves weights by whole steps.
        assert!(worst <= 1e-4, "{name}: weights differ by {worst}");
    }
}

#[test]
fn when_a_rank_dies_the_other_stops_with_an_error_instead_of_hanging() {
    let dir = fresh_dir("died");
    let spec = write_spec(&dir);
    let results = dir.join("results");
    let port = free_port();
    let long = |rank: usize| {
        hedgehog(
            &spec,
            &results,
            &[
                "stages.0.steps=100000".into(),
                "distributed.timeout_s=5".into(),
            ],
        )
        .env("WORLD_SIZE", "2")
        .env("RANK", rank.to_string())
        .env("MASTER_PORT", port.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
    };
    let survivor = long(0);
    let mut victim = long(1);
    // Killed once it has trained a step, i.e. in the middle of the run.
    let stdout = victim.stdout.take().unwrap();
    let first_step = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains("] step "));
    assert!(first_step.is_some(), "rank 1 never trained a step");
    victim.kill().unwrap();
    victim.wait().unwrap();
    let started = Instant::now();
    let output = finish(survivor, Duration::from_secs(120));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("rank 0 of 2") && stderr.contains("rank 1 closed its connection"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(100), "{stderr}");
}
