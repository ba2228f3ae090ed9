//! Tasks and data: WikiText-103-style corpora with token caches and perplexity, GLUE with its
//! metrics (both also from the Hugging Face Hub's parquet files), ImageNet-style image folders, multi-query associative recall, and passkey retrieval prompts. Every loader reads
//! the official file formats and names the file, the problem and the fix when something is off.

pub mod error;
pub mod glue;
pub mod images;
pub mod lm;
mod parquet;
pub mod passkey;
pub mod recall;

pub use error::DataError;
