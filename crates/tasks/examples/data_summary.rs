//! Sizes of every dataset present under `data/` (after `just fetch-data`): documents and GPT-2
//! tokens per corpus split, examples per GLUE file, images per class folder.
//! `cargo run --release -p hedgehog-tasks --example data_summary [-- DATA_DIR]`

use std::path::PathBuf;

use hedgehog_tasks::glue::{GlueTask, Split, task_dir};
use hedgehog_tasks::images::ImageFolder;
use hedgehog_tasks::lm::{self, CorpusSplit};

fn main() {
    let data = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("data"));
    println!("| dataset | split | examples | GPT-2 tokens |\n|---|---|---:|---:|");
    for corpus in ["kjv-austen", "samples/wikitext"] {
        let dir = data.join(corpus);
        for split in [CorpusSplit::Train, CorpusSplit::Valid, CorpusSplit::Test] {
            match (
                lm::read_documents(&dir, split),
                lm::gpt2_split_tokens(&dir, split, &data.join("cache")),
            ) {
                (Ok(documents), Ok(tokens)) => {
                    println!(
                        "| {corpus} | {} | {} documents | {} |",
                        split.name(),
                        documents.len(),
                        tokens.len()
                    )
                }
                (Err(e), _) | (_, Err(e)) => eprintln!("{corpus} {}: {e}", split.name()),
            }
        }
    }
    for (root, label) in [
        (data.join("glue"), "glue"),
        (data.join("samples/glue"), "samples/glue"),
    ] {
        for task in GlueTask::ALL {
            for split in [Split::Train, Split::Dev] {
                if let Ok(examples) = task.load(&task_dir(&root, task), split) {
                    println!(
                        "| {label}/{} | {} | {} | |",
                        task.folder(),
                        task.file(split),
                        examples.len()
                    );
                }
            }
        }
    }
    for root in ["mnist", "samples/mnist", "samples/images"] {
        match ImageFolder::train_val(&data.join(root)) {
            Ok((train, val)) => {
                println!(
                    "| {root} | train | {} images, {} classes | |",
                    train.items.len(),
                    train.classes.len()
                );
                println!("| {root} | val | {} images | |", val.items.len());
            }
            Err(e) => eprintln!("{root}: {e}"),
        }
    }
}
