//! The data parsers on damaged copies of real files (`hedgehog-fuzz`): WikiText `.tokens` and
//! parquet, GLUE TSV and parquet, PNG and JPEG images, and token caches. A damaged file must be
//! an error, never a panic, a hang or an allocation sized by a corrupt length field (capped at
//! 1 GiB here); a damaged token cache is rebuilt, never used. `just fuzz` runs each target for
//! minutes instead of the suite's cases.

use std::path::{Path, PathBuf};

use hedgehog_fuzz::{CappedAllocator, fuzz};
use hedgehog_tasks::glue::{GlueTask, Split};
use hedgehog_tasks::images::ImageTransform;
use hedgehog_tasks::lm::{self, CorpusSplit, SplitSource};

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator { limit: 1 << 30 };

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/samples")
}

fn scratch(target: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn files_in(dir: &Path, extension: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

#[test]
fn damaged_wikitext_files_are_errors() {
    let corpus = files_in(&samples().join("wikitext"), "tokens");
    let dir = scratch("wikitext");
    fuzz("wikitext-tokens", corpus, 2000, move |bytes| {
        std::fs::write(dir.join("wiki.valid.tokens"), bytes).unwrap();
        let _ = lm::read_documents(&dir, CorpusSplit::Valid);
    });
    let corpus = files_in(&samples().join("wikitext-parquet"), "parquet");
    let dir = scratch("wikitext-parquet");
    fuzz("wikitext-parquet", corpus, 2000, move |bytes| {
        std::fs::write(dir.join("validation-00000-of-00001.parquet"), bytes).unwrap();
        let _ = lm::read_documents(&dir, CorpusSplit::Valid);
    });
}

#[test]
fn damaged_glue_files_are_errors() {
    let mut tsvs = Vec::new();
    let mut parquets = Vec::new();
    for task in [
        "CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI",
    ] {
        tsvs.extend(files_in(&samples().join("glue").join(task), "tsv"));
    }
    for task in GlueTask::ALL {
        parquets.extend(files_in(
            &samples().join("glue-parquet").join(task.hub_folder()),
            "parquet",
        ));
    }
    let dir = scratch("glue-tsv");
    fuzz("glue-tsv", tsvs, 2000, move |bytes| {
        std::fs::write(dir.join("train.tsv"), bytes).unwrap();
        for task in GlueTask::ALL {
            let _ = task.load(&dir, Split::Train);
        }
    });
    let dir = scratch("glue-parquet");
    fuzz("glue-parquet", parquets, 2000, move |bytes| {
        std::fs::write(dir.join("train-00000-of-00001.parquet"), bytes).unwrap();
        for task in GlueTask::ALL {
            let _ = task.load(&dir, Split::Train);
        }
    });
}

#[test]
fn damaged_images_are_errors() {
    let mut corpus = files_in(&samples().join("images/val_flat"), "png");
    let mut jpeg = Vec::new();
    let picture =
        image::RgbImage::from_fn(24, 16, |x, y| image::Rgb([x as u8 * 9, y as u8 * 13, 77]));
    image::DynamicImage::ImageRgb8(picture)
        .write_to(
            &mut std::io::Cursor::new(&mut jpeg),
            image::ImageFormat::Jpeg,
        )
        .unwrap();
    corpus.push(jpeg);
    let dir = scratch("images");
    let transform = ImageTransform::imagenet();
    fuzz("images", corpus, 1000, move |bytes| {
        let path = dir.join("picture.png");
        std::fs::write(&path, bytes).unwrap();
        let _ = transform.apply(&path, None);
    });
}

#[test]
fn a_damaged_token_cache_is_rebuilt_never_used() {
    let dir = scratch("token-cache");
    let source = dir.join("wiki.train.tokens");
    std::fs::copy(samples().join("wikitext/wiki.valid.tokens"), &source).unwrap();
    let source = SplitSource::File(source);
    let cache = dir.join("cache");
    let words = |text: &str| -> Result<Vec<u32>, hedgehog_tasks::DataError> {
        Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
    };
    let expected = lm::token_file(&source, "words", &cache, words)
        .unwrap()
        .tokens()
        .to_vec();
    let cache_file = cache.join("wiki.train.tokens.words.bin");
    let corpus = vec![std::fs::read(&cache_file).unwrap()];
    fuzz("token-cache", corpus, 2000, move |bytes| {
        std::fs::write(&cache_file, bytes).unwrap();
        let file = lm::token_file(&source, "words", &cache, words).unwrap();
        assert_eq!(file.tokens(), &expected[..], "a damaged cache was used");
    });
}

/// Files the fuzzer found that made polars' parquet decoder panic (a slice past its end, a
/// bitmap offset past its length): errors now.
#[test]
fn parquet_files_that_crashed_the_decoder_are_errors() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz");
    let dir = scratch("regressions");
    std::fs::copy(
        fixtures.join("wikitext-parquet-11.parquet"),
        dir.join("validation-00000-of-00001.parquet"),
    )
    .unwrap();
    let err = lm::read_documents(&dir, CorpusSplit::Valid).unwrap_err();
    assert!(err.to_string().contains("parquet"), "{err}");
    std::fs::copy(
        fixtures.join("glue-parquet-88.parquet"),
        dir.join("train-00000-of-00001.parquet"),
    )
    .unwrap();
    let failures: Vec<String> = GlueTask::ALL
        .iter()
        .filter_map(|task| task.load(&dir, Split::Train).err())
        .map(|e| e.to_string())
        .collect();
    assert!(
        failures.iter().any(|e| e.contains("damaged parquet file")),
        "{failures:?}"
    );
}
