//! Experiments from YAML: the spec format, and the pipelines that train from scratch, convert a
//! softmax model by attention distillation, finetune, evaluate and analyse, for language
//! modelling (GPT-2, Llama), associative recall, GLUE (BERT) and images (ViT), with run folders,
//! metrics, checkpoints and exact resume.

pub mod bench;
mod checkpoint;
mod csv_table;
pub mod distributed;
mod error;
pub mod layer_metrics;
mod memory;
pub mod metrics;
pub mod optim;
mod progress;
pub mod run;
mod seeds;
pub mod spec;
mod stage;
mod summary;
pub mod task;

pub use run::{LayerLosses, RunError, RunOptions, RunSummary, StageResult, run, run_point};
pub use spec::{Spec, SpecError, SweepPoint};
