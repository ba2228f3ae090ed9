//! Experiments from YAML: the spec format, and the pipelines that train from scratch, convert a
//! softmax model by attention distillation, finetune and evaluate, with run folders, metrics,
//! checkpoints and exact resume.

pub mod run;
pub mod spec;

pub use run::{RunError, RunOptions, RunSummary, run};
pub use spec::{Spec, SpecError};
