//! Language-modelling data: documents from WikiText files and the hub's parquet, token caches that rebuild when the
//! source or tokenizer changes, blocks, and sliding-window perplexity against brute force.

use std::path::PathBuf;

use burn::backend::NdArray;
use burn::tensor::{Int, Tensor, TensorData};
use hedgehog_tasks::DataError;
use hedgehog_tasks::lm::{self, CorpusSplit};

type B = NdArray<f32>;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hedgehog-lm-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const SAMPLE: &str = " \n = Valkyria Chronicles = \n \n The game began development in 2010 . \n \n = = Gameplay = = \n \n It is a tactical role @-@ playing game . \n \n = Tower Building = \n \n The tower is tall . \n";

#[test]
fn documents_split_at_top_level_headings_only() {
    let dir = temp_dir("docs");
    std::fs::write(dir.join("wiki.valid.tokens"), SAMPLE).unwrap();
    let documents = lm::read_documents(&dir, CorpusSplit::Valid).unwrap();
    let titles: Vec<&str> = documents.iter().map(|d| d.title.as_str()).collect();
    assert_eq!(titles, ["Valkyria Chronicles", "Tower Building"]);
    assert!(
        documents[0].text.contains("= = Gameplay = ="),
        "sub-headings stay inside their article"
    );
    // The raw variant is found when `.tokens` is absent.
    std::fs::write(
        dir.join("wiki.test.raw"),
        "Plain text without headings.\nSecond line.\n",
    )
    .unwrap();
    let documents = lm::read_documents(&dir, CorpusSplit::Test).unwrap();
    assert_eq!(documents.len(), 1);
    let err = lm::read_documents(&dir, CorpusSplit::Train).unwrap_err();
    assert!(matches!(err, DataError::Missing { .. }));
    assert!(err.to_string().contains("just fetch-data"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn token_cache_is_reused_and_rebuilt_when_source_or_tokenizer_changes() {
    let dir = temp_dir("cache");
    let path = dir.join("wiki.train.tokens");
    std::fs::write(&path, SAMPLE).unwrap();
    let source = lm::SplitSource::File(path.clone());
    let words = |text: &str| -> Result<Vec<u32>, DataError> {
        Ok(text.split_whitespace().map(|w| w.len() as u32).collect())
    };
    let cache = dir.join("cache");
    let first = lm::token_file(&source, "words", &cache, words).unwrap();
    assert!(first.rebuilt);
    let expected = words(SAMPLE).unwrap();
    assert_eq!(first.tokens(), &expected[..]);
    let second =
        lm::token_file(&source, "words", &cache, |_| panic!("must not re-tokenise")).unwrap();
    assert!(!second.rebuilt);
    assert_eq!(second.tokens(), &expected[..]);
    let other = lm::token_file(&source, "chars", &cache, |t| {
        Ok(t.chars().map(|c| c as u32).collect())
    })
    .unwrap();
    assert!(other.rebuilt, "another tokenizer has its own cache");
    std::fs::write(&path, format!("{SAMPLE} one more line .\n")).unwrap();
    let changed = lm::token_file(&source, "words", &cache, words).unwrap();
    assert!(changed.rebuilt, "a changed source rebuilds");
    assert_eq!(changed.len(), expected.len() + 4);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn blocks_are_contiguous_with_shifted_targets() {
    let tokens: Vec<u32> = (0..23).collect();
    assert_eq!(lm::block_count(tokens.len(), 5), 4);
    let (inputs, targets) = lm::block(&tokens, 5, 2);
    assert_eq!(inputs, &[10, 11, 12, 13, 14]);
    assert_eq!(targets, &[11, 12, 13, 14, 15]);
}

/// A fake "model" whose next-token distribution depends on the previous two tokens only.
fn fake_logits(window: Tensor<B, 2, Int>, vocab: usize) -> Tensor<B, 3> {
    let ids: Vec<i64> = window.to_data().convert::<i64>().to_vec().unwrap();
    let t = ids.len();
    let mut logits = vec![0.0f32; t * vocab];
    for p in 0..t {
        let previous = if p > 0 { ids[p - 1] } else { 0 };
        for v in 0..vocab {
            logits[p * vocab + v] = ((ids[p] * 7 + previous * 3 + v as i64 * 5) % 11) as f32 * 0.3;
        }
    }
    Tensor::from_data(TensorData::new(logits, [1, t, vocab]), &Default::default())
}

#[test]
fn sliding_window_perplexity_scores_every_token_once() {
    let vocab = 13;
    let tokens: Vec<u32> = (0..101).map(|i| ((i * 5 + i / 3) % vocab) as u32).collect();
    // Brute force: the fake model sees only two tokens of context, so any window that gives every
    // scored token ≥ 2 tokens of left context (stride ≤ context − 2) yields the same log-probabilities.
    let mut expected = 0.0;
    for p in 1..tokens.len() {
        let window: Vec<i64> = tokens[p.saturating_sub(2)..p]
            .iter()
            .map(|&t| t as i64)
            .collect();
        let logits: Vec<f64> = fake_logits(
            Tensor::from_data(
                TensorData::new(window.clone(), [1, window.len()]),
                &Default::default(),
            ),
            vocab,
        )
        .to_data()
        .convert::<f64>()
        .to_vec()
        .unwrap();
        let last = &logits[(window.len() - 1) * vocab..];
        let max = last.iter().copied().fold(f64::MIN, f64::max);
        let log_sum = last.iter().map(|l| (l - max).exp()).sum::<f64>().ln() + max;
        expected += log_sum - last[tokens[p] as usize];
    }
    let expected = expected / (tokens.len() - 1) as f64;
    for (context, stride) in [(16, 14), (16, 5), (7, 1), (128, 64)] {
        let mut calls = 0;
        let report = lm::perplexity::<B>(
            &tokens,
            context,
            stride,
            &Default::default(),
            |window| {
                calls += 1;
                Ok(fake_logits(window, vocab))
            },
            |_, _| {},
        )
        .unwrap();
        assert_eq!(
            report.tokens,
            tokens.len() - 1,
            "context {context}, stride {stride}: every token but the first"
        );
        assert!(
            (report.nll - expected).abs() < 1e-5,
            "context {context}, stride {stride}: {} vs {expected}",
            report.nll
        );
        assert!((report.perplexity - expected.exp()).abs() < 1e-4);
        assert!(calls >= 1);
    }
    let err = lm::perplexity::<B>(
        &tokens,
        8,
        8,
        &Default::default(),
        |w| Ok(fake_logits(w, vocab)),
        |_, _| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("stride"), "{err}");
}

#[test]
fn the_committed_wikitext_sample_tokenises_with_gpt2_and_round_trips() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples/wikitext");
    let cache = temp_dir("gpt2");
    for split in [CorpusSplit::Train, CorpusSplit::Valid, CorpusSplit::Test] {
        let documents = lm::read_documents(&dir, split).unwrap();
        assert!(
            !documents.is_empty() && documents.iter().all(|d| !d.title.is_empty()),
            "{split:?}: titled documents"
        );
        let tokens = lm::gpt2_split_tokens(&dir, split, &cache).unwrap();
        let text = lm::split_source(&dir, split).unwrap().text().unwrap();
        let tokenizer = hedgehog_models::tokenizer::TextTokenizer::gpt2().unwrap();
        assert_eq!(
            tokenizer.decode(tokens.tokens()).unwrap(),
            text,
            "{split:?}: GPT-2 BPE round trip"
        );
        let words = text.split_whitespace().count();
        assert!(
            tokens.len() > words,
            "{split:?}: BPE yields more tokens ({}) than words ({words})",
            tokens.len()
        );
    }
    std::fs::remove_dir_all(&cache).ok();
}

/// `tools/make_parquet_samples.py` wrote the WikiText sample the way the hub serves it (pyarrow,
/// one row per line, blank lines empty): the same documents and GPT-2 tokens as the files.
#[test]
fn the_hubs_parquet_shards_give_the_same_documents_and_tokens_as_the_tokens_files() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples");
    let (files, shards) = (samples.join("wikitext"), samples.join("wikitext-parquet"));
    let cache = temp_dir("parquet");
    for split in [CorpusSplit::Train, CorpusSplit::Valid, CorpusSplit::Test] {
        let source = lm::split_source(&shards, split).unwrap();
        assert!(matches!(source, lm::SplitSource::Parquet(_)), "{source:?}");
        assert_eq!(
            lm::read_documents(&shards, split).unwrap(),
            lm::read_documents(&files, split).unwrap(),
            "{split:?}: documents"
        );
        let from_files = lm::gpt2_split_tokens(&files, split, &cache).unwrap();
        let from_shards = lm::gpt2_split_tokens(&shards, split, &cache).unwrap();
        assert!(
            from_shards.rebuilt,
            "{split:?}: the parquet split has its own cache"
        );
        assert_eq!(
            from_files.tokens(),
            from_shards.tokens(),
            "{split:?}: tokens"
        );
    }
    std::fs::remove_dir_all(&cache).ok();
}

#[test]
fn incomplete_or_damaged_parquet_splits_are_clear_errors() {
    let samples = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/samples");
    let shard =
        std::fs::read(samples.join("wikitext-parquet/validation-00000-of-00001.parquet")).unwrap();
    let dir = temp_dir("parquet-bad");
    // One shard of two: not taken for the whole split.
    std::fs::write(dir.join("validation-00000-of-00002.parquet"), &shard).unwrap();
    let err = lm::read_documents(&dir, CorpusSplit::Valid).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 of the 2 `validation` parquet shards"),
        "{err}"
    );
    std::fs::remove_file(dir.join("validation-00000-of-00002.parquet")).unwrap();
    // A cut file.
    std::fs::write(
        dir.join("validation-00000-of-00001.parquet"),
        &shard[..shard.len() / 2],
    )
    .unwrap();
    let err = lm::read_documents(&dir, CorpusSplit::Valid).unwrap_err();
    assert!(
        err.to_string().contains("not a readable parquet file"),
        "{err}"
    );
    // A GLUE file where WikiText was expected: the column is named.
    std::fs::copy(
        samples.join("glue-parquet/sst2/validation-00000-of-00001.parquet"),
        dir.join("validation-00000-of-00001.parquet"),
    )
    .unwrap();
    let err = lm::read_documents(&dir, CorpusSplit::Valid).unwrap_err();
    assert!(err.to_string().contains("no `text` column"), "{err}");
    // Nothing there: the message names both layouts.
    let err = lm::read_documents(&dir, CorpusSplit::Test).unwrap_err();
    assert!(err.to_string().contains("test-*.parquet"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
