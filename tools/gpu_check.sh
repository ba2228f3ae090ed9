#!/usr/bin/env bash
# The CUDA checks of the README's CUDA section, prepared on a CPU machine and run on a GPU one
# that reaches no registry. Three parts, because one transfer to the GPU machine carries at most
# 64 MiB with the working tree, the three CUDA binaries are about 50 MB packed and the SmolLM2
# weights alone 94 MB; each part carries a piece of the weights, and the parts run back to back
# on one machine (what a part leaves there stays while the machine is held):
#
#   bash tools/gpu_check.sh build   here: stripped `--features cuda` release binaries, packed
#                                   with the weights and the corpus into .gpu/1, .gpu/2, .gpu/3
#                                   (git-ignored); each fits 64 MiB beside the working tree
#                                   without results/ (21 MB of run folders the checks do not
#                                   read: move it aside while the parts travel)
#   bash tools/gpu_check.sh 1       on the GPU (carry .gpu/1): the attention crate's agreement
#                                   test, every map and form on CUDA against the CPU backend
#   bash tools/gpu_check.sh 2       then (carry .gpu/2): the scaling benchmark on CUDA, and ours
#                                   against PyTorch eager and SDPA on the same GPU
#   bash tools/gpu_check.sh 3       then (carry .gpu/3): quickstart on CUDA, GPT-2 125M training
#                                   at context 1024 (softmax and Hedgehog; tok/s in the log,
#                                   bench-train measures the CPU only), the SmolLM2 conversion
#                                   spec, timed
#
# Each part writes under $OUT (at most 8 files come back) and caps every step with `timeout`,
# so one slow step cannot take the others' time; a scaling run cut short leaves its finished
# cases in its log, a comparison cut short (SIGINT) writes the rows it has. The machine stays
# held only 30 s after a call, so send the next part at once. f32 matrix products may run as
# TF32 on the tensor cores in burn's matmul: the agreement test's worst ratios show it (about
# 1e-3 relative), and PyTorch keeps full f32 unless told otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

GPU=.gpu
GGUF=data/weights/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
CORPUS=data/kjv-austen

step() { printf '\n== %s (%s)\n' "$*" "$(date -u +%H:%M:%S)"; }

build() {
    set -e
    [[ -f $GGUF ]] || { echo "missing $GGUF: run just fetch-weights" >&2; exit 1; }
    [[ -d $CORPUS ]] || { echo "missing $CORPUS: run just fetch-data" >&2; exit 1; }
    local target=${CARGO_TARGET_DIR:-target}
    # No nvcc here: cudarc would bind the newest CUDA it knows; the GPU image's driver is 13.0.
    export CUDARC_CUDA_VERSION=${CUDARC_CUDA_VERSION:-13000}
    cargo build --release -p hedgehog-cli --features cuda
    cargo build --release -p hedgehog-attention --features cuda --example scaling
    local test_bin
    test_bin=$(cargo test --release -p hedgehog-attention --features cuda --test backend_agreement \
        --no-run --message-format=json |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "backend_agreement":
        print(m["executable"])')
    rm -rf "$GPU" && mkdir -p "$GPU/1" "$GPU/2" "$GPU/3"
    strip -o "$GPU/1/backend_agreement" "$test_bin"
    strip -o "$GPU/2/scaling" "$target/release/examples/scaling"
    strip -o "$GPU/3/hedgehog" "$target/release/hedgehog"
    xz -T2 -6 "$GPU/1/backend_agreement" "$GPU/2/scaling" "$GPU/3/hedgehog"
    tar -cJf "$GPU/3/corpus.tar.xz" "$CORPUS"
    sha256sum "$GGUF" | cut -d' ' -f1 > "$GPU/3/weights.sha256"
    # The weights in pieces that fill each part up to 62 MiB beside the working tree.
    local offset=0 part room
    for part in 1 2 3; do
        room=$(( 62 * 1024 * 1024 - $(du -cb "$GPU/$part"/* | tail -1 | cut -f1) - $(tree_bytes) ))
        dd if="$GGUF" of="$GPU/$part/weights.part" bs=1M iflag=skip_bytes,count_bytes \
            skip="$offset" count="$room" status=none
        offset=$(( offset + $(stat -c %s "$GPU/$part/weights.part") ))
    done
    if (( offset < $(stat -c %s "$GGUF") )); then
        echo "the weights do not fit the three parts ($offset of $(stat -c %s "$GGUF") bytes)" >&2
        exit 1
    fi
    du -b "$GPU"/*/*
    echo "working tree without results/: $(tree_bytes) bytes"
}

# What travels besides the carried folder: the tracked and untracked-not-ignored files.
tree_bytes() {
    git ls-files -z --cached --others --exclude-standard -- . ':!results' |
        du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1
}

setup_device() {
    : "${OUT:?OUT is where the results go}"
    # cubecl loads NVRTC at run time; the image's toolkit and PyTorch's wheels both carry one.
    local dirs
    dirs=$(find /usr/local/cuda*/lib64 /usr/local/cuda*/targets/*/lib \
        "$(python3 -c 'import site; print(site.getsitepackages()[0])' 2>/dev/null)/nvidia" \
        -name 'libnvrtc.so*' -printf '%h\n' 2>/dev/null | sort -u | tr '\n' ':')
    export LD_LIBRARY_PATH="${dirs}${LD_LIBRARY_PATH:-}"
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
    echo "nvrtc from: $dirs"
    for f in "$@"; do
        [[ -f $GPU/$f.xz ]] && xz -d -k -f "$GPU/$f.xz"
        chmod +x "$GPU/$f"
    done
}

# Samples the GPU's memory in use every 100 ms into $1 until the caller kills it.
sample_memory() {
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$1" 2>/dev/null &
    echo $!
}

peak_of() { sort -n "$1" | tail -1; }

part_1() {
    setup_device 1/backend_agreement > "$OUT/1_gpu.txt" 2>&1; cat "$OUT/1_gpu.txt"
    step "agreement: every map and form on CUDA against the CPU backend"
    HEDGEHOG_AGREEMENT_BACKEND=cuda timeout 100 "$GPU/1/backend_agreement" --nocapture \
        --test-threads 1 > "$OUT/1_agreement.txt" 2>&1
    echo "exit $?" | tee -a "$OUT/1_agreement.txt"
    grep -E "^T=|cases|FAIL" "$OUT/1_agreement.txt" | tail -12
}

part_2() {
    setup_device 2/scaling > "$OUT/2_gpu.txt" 2>&1; cat "$OUT/2_gpu.txt"
    step "scaling on CUDA"
    timeout 100 "$GPU/2/scaling" --backend cuda --lengths 1024,4096,16384,65536 \
        --variants softmax,softmax_flash,elu,hedgehog_split --repeats 3 --max-gib 100 \
        --out "$OUT/2_scaling_cuda.csv" > "$OUT/2_scaling_cuda.md" 2> "$OUT/2_scaling_cuda.log"
    echo "exit $?"
    tail -4 "$OUT/2_scaling_cuda.log"
    step "ours against PyTorch on the same GPU, alternating case by case"
    PYTHONUNBUFFERED=1 timeout -s INT 80 python3 tools/bench_compare.py --device cuda \
        --rust "$GPU/2/scaling" --lengths 1024,4096,16384 --variants softmax,elu,hedgehog_split \
        --repeats 3 --max-gib 60 --max-gflop 100000 --out "$OUT/2_compare_cuda" 2> "$OUT/2_compare_cuda.log"
    echo "exit $?"
    tail -3 "$OUT/2_compare_cuda.log"
}

part_3() {
    setup_device 3/hedgehog > "$OUT/3_gpu.txt" 2>&1; cat "$OUT/3_gpu.txt"
    local bin=$GPU/3/hedgehog results=/tmp/gpu-results log=$OUT/3_log.txt sampler
    mkdir -p "$(dirname "$GGUF")"
    tar -xJf "$GPU/3/corpus.tar.xz"
    cat "$GPU"/{1,2,3}/weights.part > "$GGUF" 2>/dev/null
    if [[ $(sha256sum "$GGUF" | cut -d' ' -f1) != $(cat "$GPU/3/weights.sha256") ]]; then
        echo "the weights' pieces are not all here (another machine ran parts 1-2): no SmolLM2" | tee -a "$log"
        rm -f "$GGUF"
    fi
    {
        step "quickstart on CUDA"
        timeout 75 "$bin" run experiments/quickstart.yaml --set device=cuda --results "$results"
        echo "exit $?"
        for attention in '[{kind: softmax}]' \
            '[{kind: linear, feature_map: {kind: hedgehog, activation: softmax_split, feature_dim: 64}}]'; do
            step "GPT-2 125M training, context 1024, batch 8, 30 steps: $attention"
            sampler=$(sample_memory /tmp/memory.txt)
            timeout 60 "$bin" run experiments/bench_gpt2_125m.yaml --set device=cuda \
                --set "attention=$attention" --set stages.0.batch_size=8 \
                --set stages.0.steps=30 --set stages.0.log_every=5 --results "$results"
            echo "exit $?"
            kill "$sampler"
            echo "peak GPU memory in use during it: $(peak_of /tmp/memory.txt) MiB (nvidia-smi, 100 ms samples)"
        done
        if [[ -f $GGUF ]]; then
            step "SmolLM2-135M conversion spec on CUDA"
            sampler=$(sample_memory /tmp/memory.txt)
            SECONDS=0
            timeout 120 "$bin" run experiments/smollm2_convert_cpu.yaml --set device=cuda \
                --results "$results"
            echo "exit $? after $SECONDS s"
            kill "$sampler"
            echo "peak GPU memory in use during it: $(peak_of /tmp/memory.txt) MiB"
        fi
    } >> "$log" 2>&1
    tail -40 "$log"
    for run in "$results"/*/run-*; do
        cp "$run/summary.json" "$OUT/3_$(basename "$(dirname "$run")")_$(basename "$run").json" 2>/dev/null
    done
}

case "${1:-}" in
    build) build ;;
    1) part_1 ;;
    2) part_2 ;;
    3) part_3 ;;
    *) echo "usage: bash tools/gpu_check.sh build|1|2|3 (see the header)" >&2; exit 2 ;;
esac
