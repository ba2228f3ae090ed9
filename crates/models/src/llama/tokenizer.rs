//! The byte-level BPE tokenizer a llama.cpp GGUF file carries in its metadata.

use crate::error::ModelError;
use crate::gguf::GgufFile;
use crate::tokenizer::TextTokenizer;

/// The tokenizer stored in a GGUF file (`tokenizer.ggml.model = gpt2`, byte-level BPE).
pub fn gguf_tokenizer(file: &GgufFile) -> Result<TextTokenizer, ModelError> {
    let model = file
        .get("tokenizer.ggml.model")?
        .as_str()
        .unwrap_or_default();
    if model != "gpt2" {
        return Err(ModelError::Config(format!(
            "GGUF tokenizer model `{model}` is not supported (gpt2 byte-level BPE)"
        )));
    }
    let strings = |key: &str| -> Result<Vec<String>, ModelError> {
        file.get(key)?
            .as_strings()
            .ok_or_else(|| ModelError::Config(format!("`{key}` is not a list of strings")))
    };
    // llama.cpp's `smollm` pre-tokeniser splits digits one by one before the GPT-2 byte-level split.
    let split_digits = match file
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.as_str())
    {
        Some("smollm") => true,
        Some("gpt2") | Some("default") | None => false,
        Some(other) => {
            return Err(ModelError::Config(format!(
                "GGUF pre-tokeniser `{other}` is not supported (smollm, gpt2)"
            )));
        }
    };
    TextTokenizer::from_byte_level_bpe(
        &strings("tokenizer.ggml.tokens")?,
        &strings("tokenizer.ggml.merges")?,
        split_digits,
    )
    .map_err(|e| ModelError::Config(e.to_string()))
}
