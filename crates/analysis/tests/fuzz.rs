//! The `metrics.csv` reader behind the training-curve figures (`plots::metrics_series`) on
//! damaged copies of committed run folders' files (`hedgehog-fuzz`): a damaged file is an
//! error or fewer points, never a panic, a hang or an allocation past 1 GiB. (`--resume` reads
//! the same files through the train crate; its fuzz target is `crates/train/tests/fuzz.rs`.)

use std::path::Path;

use hedgehog_analysis::plots;
use hedgehog_fuzz::{CappedAllocator, fuzz};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator { limit: 1 << 30 };

#[test]
fn damaged_metrics_files_are_errors() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results");
    let corpus: Vec<Vec<u8>> = ["quickstart/run-002", "lm_scratch_cpu/run-001"]
        .iter()
        .filter_map(|run| std::fs::read(results.join(run).join("metrics.csv")).ok())
        .collect();
    assert!(
        !corpus.is_empty(),
        "no committed metrics.csv under {results:?}"
    );
    let dir = std::env::temp_dir().join(format!("hedgehog-fuzz-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("metrics.csv");
    fuzz("metrics-csv", corpus, 2000, move |bytes| {
        std::fs::write(&path, bytes).unwrap();
        for column in ["loss", "val_perplexity", "lr"] {
            let _ = plots::metrics_series(&path, column);
        }
    });
}
