//! Binary token caches: a split tokenised once, stored as little-endian u32 beside a header
//! that records the source's hash, the tokenizer and the tokens' own hash, memory-mapped on
//! later runs and rebuilt when the source or tokenizer changes or the file was damaged.

use std::io::Write;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::SplitSource;
use crate::error::{DataError, io_error};

/// v2 added the body's hash: a cache whose tokens were damaged is rebuilt, not read.
const MAGIC: &[u8; 8] = b"HHTOKv2\0";
/// Magic, source hash, tokenizer name, token count, body hash.
const HEADER: usize = 8 + 8 + 64 + 8 + 8;

/// FNV-1a, 64 bit: a stable content hash (std's hasher may change between Rust releases).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    })
}

/// A memory-mapped token file.
pub struct TokenFile {
    map: Mmap,
    pub path: PathBuf,
    /// Whether this call tokenised the source (false: the cache was reused).
    pub rebuilt: bool,
}

impl TokenFile {
    pub fn tokens(&self) -> &[u32] {
        let body = &self.map[HEADER..];
        // The body starts at a multiple of 8 of a page-aligned map, so u32 alignment holds.
        let (prefix, tokens, suffix) = unsafe { body.align_to::<u32>() };
        assert!(
            prefix.is_empty() && suffix.is_empty(),
            "token cache body misaligned"
        );
        tokens
    }

    pub fn len(&self) -> usize {
        self.tokens().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn header(source_hash: u64, tokenizer: &str, count: u64, body_hash: u64) -> Vec<u8> {
    let mut header = Vec::with_capacity(HEADER);
    header.extend_from_slice(MAGIC);
    header.extend_from_slice(&source_hash.to_le_bytes());
    let mut name = [0u8; 64];
    let bytes = tokenizer.as_bytes();
    name[..bytes.len().min(64)].copy_from_slice(&bytes[..bytes.len().min(64)]);
    header.extend_from_slice(&name);
    header.extend_from_slice(&count.to_le_bytes());
    header.extend_from_slice(&body_hash.to_le_bytes());
    header
}

/// The cached tokens of `source` under `tokenizer` (a name identifying it, e.g. `gpt2-r50k`),
/// in `cache_dir`; `tokenize` runs only when the cache is missing or stale.
pub fn token_file(
    source: &SplitSource,
    tokenizer: &str,
    cache_dir: &Path,
    tokenize: impl FnOnce(&str) -> Result<Vec<u32>, DataError>,
) -> Result<TokenFile, DataError> {
    let bytes = source.bytes()?;
    let hash = fnv1a(&bytes);
    let stem = source
        .path()
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let path = cache_dir.join(format!("{stem}.{tokenizer}.bin"));
    let fresh = |path: &Path| -> Option<bool> {
        let existing = std::fs::read(path).ok()?;
        let count = u64::from_le_bytes(existing.get(HEADER - 16..HEADER - 8)?.try_into().ok()?);
        let length = usize::try_from(count)
            .ok()?
            .checked_mul(4)?
            .checked_add(HEADER)?;
        let body = existing.get(HEADER..)?;
        Some(
            existing.len() == length
                && existing[..HEADER] == header(hash, tokenizer, count, fnv1a(body))[..],
        )
    };
    let rebuilt = fresh(&path) != Some(true);
    if rebuilt {
        let text = String::from_utf8(bytes).map_err(|e| DataError::Invalid {
            path: source.path().to_path_buf(),
            reason: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
        })?;
        let tokens = tokenize(&text)?;
        std::fs::create_dir_all(cache_dir).map_err(io_error(cache_dir))?;
        // Per process: ranks of a distributed run on one machine build the same cache at
        // once, and each renames a whole file of its own into place (the same bytes).
        let partial = path.with_extension(format!("bin.{}.partial", std::process::id()));
        let mut file = std::fs::File::create(&partial).map_err(io_error(&partial))?;
        let body: Vec<u8> = tokens.iter().flat_map(|t| t.to_le_bytes()).collect();
        file.write_all(&header(hash, tokenizer, tokens.len() as u64, fnv1a(&body)))
            .map_err(io_error(&partial))?;
        file.write_all(&body).map_err(io_error(&partial))?;
        file.sync_all().map_err(io_error(&partial))?;
        std::fs::rename(&partial, &path).map_err(io_error(&path))?;
    }
    let file = std::fs::File::open(&path).map_err(io_error(&path))?;
    // Safety: the cache file is written atomically (rename) and not modified while mapped.
    let map = unsafe { Mmap::map(&file) }.map_err(io_error(&path))?;
    Ok(TokenFile { map, path, rebuilt })
}
