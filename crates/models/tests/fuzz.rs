//! The weight parsers on damaged copies of real files (`hedgehog-fuzz`): safetensors checkpoints
//! of every family, GGUF headers, and `config.json`. A damaged file must give an error, never a
//! panic, a hang or an allocation sized by a corrupt length field (capped at 1 GiB here).
//! `just fuzz` runs each target for minutes instead of the suite's few hundred cases.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use hedgehog_fuzz::{CappedAllocator, fuzz};
use hedgehog_models::bert::Bert;
use hedgehog_models::checkpoint;
use hedgehog_models::gguf::GgufFile;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::vit::Vit;

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator { limit: 1 << 30 };

/// A scratch folder per target, rewritten every case.
fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-fuzz-{target}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A checkpoint folder of `family`'s fixture whose `model.safetensors` is the fuzzed input.
fn fuzz_checkpoint<M>(family: &'static str)
where
    M: checkpoint::Checkpoint<B> + 'static,
{
    let fixture = fixture_dir(family);
    let dir = scratch(family);
    std::fs::copy(fixture.join("config.json"), dir.join("config.json")).unwrap();
    let corpus = vec![std::fs::read(fixture.join("model.safetensors")).unwrap()];
    fuzz(
        &format!("safetensors-{family}"),
        corpus,
        300,
        move |bytes| {
            std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
            let _ = checkpoint::load::<B, M>(&dir, None, &Default::default());
        },
    );
}

#[test]
fn damaged_safetensors_checkpoints_are_errors() {
    fuzz_checkpoint::<Gpt2<B>>("gpt2");
    fuzz_checkpoint::<Bert<B>>("bert");
    fuzz_checkpoint::<Llama<B>>("llama");
    fuzz_checkpoint::<Vit<B>>("vit");
}

#[test]
fn damaged_configs_are_errors() {
    let corpus: Vec<Vec<u8>> = ["gpt2", "bert", "llama", "vit"]
        .iter()
        .map(|f| std::fs::read(fixture_dir(f).join("config.json")).unwrap())
        .collect();
    let dir = scratch("config");
    fuzz("config-json", corpus, 2000, move |bytes| {
        std::fs::write(dir.join("config.json"), bytes).unwrap();
        let _ = checkpoint::read_config::<hedgehog_models::gpt2::Gpt2Config>(&dir);
        let _ = checkpoint::read_config::<hedgehog_models::llama::LlamaConfig>(&dir);
    });
}

/// A small GGUF v3 file in llama.cpp's layout: string, integer, float, boolean and array
/// metadata, and two F32 tensors.
fn small_gguf() -> Vec<u8> {
    fn string(bytes: &mut Vec<u8>, s: &str) {
        bytes.extend((s.len() as u64).to_le_bytes());
        bytes.extend(s.as_bytes());
    }
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(2u64.to_le_bytes()); // tensors
    bytes.extend(5u64.to_le_bytes()); // metadata entries
    string(&mut bytes, "general.architecture");
    bytes.extend(8u32.to_le_bytes());
    string(&mut bytes, "llama");
    string(&mut bytes, "llama.block_count");
    bytes.extend(4u32.to_le_bytes());
    bytes.extend(2u32.to_le_bytes());
    string(&mut bytes, "llama.rope.freq_base");
    bytes.extend(6u32.to_le_bytes());
    bytes.extend(10000f32.to_le_bytes());
    string(&mut bytes, "tokenizer.ggml.add_bos_token");
    bytes.extend(7u32.to_le_bytes());
    bytes.push(1);
    string(&mut bytes, "tokenizer.ggml.tokens");
    bytes.extend(9u32.to_le_bytes());
    bytes.extend(8u32.to_le_bytes());
    bytes.extend(3u64.to_le_bytes());
    for token in ["<s>", "a", "b"] {
        string(&mut bytes, token);
    }
    for (name, offset) in [("token_embd.weight", 0u64), ("output_norm.weight", 32)] {
        string(&mut bytes, name);
        bytes.extend(2u32.to_le_bytes());
        bytes.extend(2u64.to_le_bytes());
        bytes.extend(2u64.to_le_bytes());
        bytes.extend(0u32.to_le_bytes()); // F32
        bytes.extend(offset.to_le_bytes());
    }
    bytes.resize(bytes.len().div_ceil(32) * 32 + 48, 0);
    bytes
}

#[test]
fn damaged_gguf_files_are_errors() {
    let mut corpus = vec![small_gguf()];
    // The head of the real SmolLM2 file (metadata and tensor table) when it was fetched.
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/weights/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    if let Ok(bytes) = std::fs::read(&real) {
        corpus.push(bytes[..bytes.len().min(4 << 20)].to_vec());
    }
    GgufFile::open({
        let dir = scratch("gguf-good");
        std::fs::write(dir.join("small.gguf"), small_gguf()).unwrap();
        dir.join("small.gguf")
    })
    .expect("the hand-made file is valid GGUF");
    let dir = scratch("gguf");
    fuzz("gguf", corpus, 2000, move |bytes| {
        let path = dir.join("model.gguf");
        std::fs::write(&path, bytes).unwrap();
        if let Ok(file) = GgufFile::open(&path) {
            let _ = hedgehog_models::llama::LlamaConfig::from_gguf(&file);
        }
    });
}
