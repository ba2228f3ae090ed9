//! Language modelling: WikiText-103 (its files or the hub's parquet, and any plain-text corpus
//! split by document), GPT-2 BPE
//! token caches, contiguous blocks, and sliding-window perplexity.

mod cache;
mod perplexity;
mod wikitext;

pub use cache::{TokenFile, token_file};
pub use perplexity::{PerplexityReport, perplexity, perplexity_from_nll};
pub use wikitext::{CorpusSplit, Document, SplitSource, read_documents, split_source};

/// Contiguous training blocks of `context + 1` tokens (inputs and shifted targets), non-overlapping.
pub fn block_count(tokens: usize, context: usize) -> usize {
    if tokens <= context {
        0
    } else {
        (tokens - 1) / context
    }
}

/// Block `index`: `(inputs, targets)`, each `context` tokens.
pub fn block(tokens: &[u32], context: usize, index: usize) -> (&[u32], &[u32]) {
    let start = index * context;
    (
        &tokens[start..start + context],
        &tokens[start + 1..start + context + 1],
    )
}

/// Name of the GPT-2 tokenizer in cache file names.
pub const GPT2_TOKENIZER: &str = "gpt2-r50k";

/// A split tokenised with GPT-2's BPE (the whole file, as the HF perplexity recipe does),
/// cached in `cache_dir` and memory-mapped.
pub fn gpt2_split_tokens(
    dir: &std::path::Path,
    split: CorpusSplit,
    cache_dir: &std::path::Path,
) -> Result<TokenFile, crate::DataError> {
    let source = split_source(dir, split)?;
    let tokenizer = hedgehog_models::tokenizer::TextTokenizer::gpt2()
        .map_err(|e| crate::DataError::Tokenizer(e.to_string()))?;
    token_file(&source, GPT2_TOKENIZER, cache_dir, |text| {
        tokenizer
            .encode(text)
            .map(|e| e.ids)
            .map_err(|e| crate::DataError::Tokenizer(e.to_string()))
    })
}
