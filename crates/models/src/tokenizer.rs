//! Tokenizers: GPT-2's byte-level BPE (`r50k_base`, embedded by `tiktoken-rs`, no download),
//! BERT WordPiece from `tokenizer.json` or `vocab.txt` (the `tokenizers` crate, padding and
//! truncation off), and byte-level BPE built from a vocabulary and merges (SmolLM2's GGUF).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{BPE, Vocab};
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::bert::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{PreTokenizerWrapper, Tokenizer};

/// Tokenizer errors name the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("{path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("tokenizer: {0}")]
    Encode(String),
}

/// An encoded text: ids and, for BERT pairs, token types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Encoding {
    pub ids: Vec<u32>,
    pub type_ids: Vec<u32>,
}

pub enum TextTokenizer {
    /// GPT-2 BPE via tiktoken.
    Gpt2(Box<tiktoken_rs::CoreBPE>),
    /// A `tokenizers` pipeline (WordPiece, byte-level BPE).
    Hf(Box<Tokenizer>),
}

impl TextTokenizer {
    /// GPT-2's tokenizer (`r50k_base`, 50257 tokens; `<|endoftext|>` = 50256).
    pub fn gpt2() -> Result<Self, TokenizerError> {
        tiktoken_rs::r50k_base()
            .map(|bpe| Self::Gpt2(Box::new(bpe)))
            .map_err(|e| TokenizerError::Encode(e.to_string()))
    }

    /// A HF `tokenizer.json` (e.g. BERT's), with padding and truncation switched off: the
    /// MiniLM file pads to 128 otherwise.
    pub fn from_tokenizer_json(path: impl AsRef<Path>) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let mut tokenizer = Tokenizer::from_file(path).map_err(|e| TokenizerError::File {
            path: path.to_path_buf(),
            reason: format!("cannot read tokenizer.json ({e}); fetch the model files again"),
        })?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(None)
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        Ok(Self::Hf(Box::new(tokenizer)))
    }

    /// Writes a `tokenizers` pipeline as a HF `tokenizer.json` (what [`Self::from_tokenizer_json`]
    /// reads back as the same pipeline), so a model converted from a GGUF file keeps its
    /// tokenizer beside its weights. GPT-2's tiktoken BPE has no such file: an error.
    pub fn save_tokenizer_json(&self, path: impl AsRef<Path>) -> Result<(), TokenizerError> {
        let path = path.as_ref();
        let Self::Hf(tokenizer) = self else {
            return Err(TokenizerError::File {
                path: path.to_path_buf(),
                reason: "GPT-2's built-in BPE is not written as a tokenizer.json; a GPT-2 \
                         checkpoint is read with it again by default"
                    .into(),
            });
        };
        tokenizer
            .save(path, false)
            .map_err(|e| TokenizerError::File {
                path: path.to_path_buf(),
                reason: format!("cannot write tokenizer.json ({e})"),
            })
    }

    /// BERT WordPiece from `vocab.txt` (one token a line), with BERT's normaliser and
    /// pre-tokeniser and `[CLS] … [SEP]` framing.
    pub fn from_bert_vocab(
        path: impl AsRef<Path>,
        lowercase: bool,
    ) -> Result<Self, TokenizerError> {
        let path = path.as_ref();
        let file_error = |reason: String| TokenizerError::File {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
        let vocab: HashMap<String, u32> = text
            .lines()
            .enumerate()
            .map(|(i, t)| (t.to_string(), i as u32))
            .collect();
        let id = |token: &str| {
            vocab.get(token).copied().ok_or_else(|| {
                file_error(format!(
                    "vocab.txt has no `{token}` token; is this a BERT vocabulary?"
                ))
            })
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        id("[UNK]")?;
        let model = WordPiece::builder()
            .vocab(vocab.into_iter().collect::<Vocab>())
            .unk_token("[UNK]".into())
            .build()
            .map_err(|e| file_error(e.to_string()))?;
        let mut tokenizer = Tokenizer::new(model);
        tokenizer
            .with_normalizer(Some(BertNormalizer::new(
                true,
                true,
                Some(lowercase),
                lowercase,
            )))
            .with_pre_tokenizer(Some(BertPreTokenizer))
            .with_post_processor(Some(BertProcessing::new(
                ("[SEP]".into(), sep),
                ("[CLS]".into(), cls),
            )));
        Ok(Self::Hf(Box::new(tokenizer)))
    }

    /// Byte-level BPE from a vocabulary (id order) and merges (`"a b"`), with digits split
    /// one by one before the byte-level step (SmolLM2 / llama.cpp `smollm` pre-tokeniser).
    pub fn from_byte_level_bpe(
        tokens: &[String],
        merges: &[String],
        split_digits: bool,
    ) -> Result<Self, TokenizerError> {
        let merges = merges
            .iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| TokenizerError::Encode(format!("merge `{m}` is not two tokens")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let model = BPE::builder()
            .vocab_and_merges(
                tokens
                    .iter()
                    .enumerate()
                    .map(|(i, t)| (t.clone(), i as u32))
                    .collect::<Vocab>(),
                merges,
            )
            .build()
            .map_err(|e| TokenizerError::Encode(e.to_string()))?;
        let mut tokenizer = Tokenizer::new(model);
        let byte_level = ByteLevel::new(false, true, true);
        let pre: PreTokenizerWrapper = if split_digits {
            Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into()
        } else {
            byte_level.into()
        };
        tokenizer
            .with_pre_tokenizer(Some(pre))
            .with_decoder(Some(ByteLevelDecoder::default()));
        Ok(Self::Hf(Box::new(tokenizer)))
    }

    /// Token ids of `text` (with the tokenizer's special framing, e.g. BERT's `[CLS] … [SEP]`).
    pub fn encode(&self, text: &str) -> Result<Encoding, TokenizerError> {
        match self {
            Self::Gpt2(bpe) => {
                let ids: Vec<u32> = bpe.encode_ordinary(text);
                let type_ids = vec![0; ids.len()];
                Ok(Encoding { ids, type_ids })
            }
            Self::Hf(tokenizer) => {
                let encoding = tokenizer
                    .encode(text, true)
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                Ok(Encoding {
                    ids: encoding.get_ids().to_vec(),
                    type_ids: encoding.get_type_ids().to_vec(),
                })
            }
        }
    }

    /// A sentence pair (`[CLS] a [SEP] b [SEP]`, token types 0 then 1) for BERT-style models.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<Encoding, TokenizerError> {
        match self {
            Self::Gpt2(_) => Err(TokenizerError::Encode(
                "GPT-2's tokenizer has no sentence-pair format".into(),
            )),
            Self::Hf(tokenizer) => {
                let encoding = tokenizer
                    .encode((first, second), true)
                    .map_err(|e| TokenizerError::Encode(e.to_string()))?;
                Ok(Encoding {
                    ids: encoding.get_ids().to_vec(),
                    type_ids: encoding.get_type_ids().to_vec(),
                })
            }
        }
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String, TokenizerError> {
        match self {
            Self::Gpt2(bpe) => bpe
                .decode(ids)
                .map_err(|e| TokenizerError::Encode(e.to_string())),
            Self::Hf(tokenizer) => tokenizer
                .decode(ids, true)
                .map_err(|e| TokenizerError::Encode(e.to_string())),
        }
    }

    pub fn vocab_size(&self) -> usize {
        match self {
            Self::Gpt2(_) => 50257,
            Self::Hf(tokenizer) => tokenizer.get_vocab_size(true),
        }
    }
}
