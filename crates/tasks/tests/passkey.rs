//! Passkey prompts on the committed corpus sample, read with GPT-2's BPE: length, depth,
//! reproducibility, errors, and the scoring of answers.

use std::path::Path;

use hedgehog_models::tokenizer::TextTokenizer;
use hedgehog_tasks::DataError;
use hedgehog_tasks::passkey::{
    PASSKEY_INTRO, PASSKEY_QUESTION, PasskeyCorpus, PasskeyGrid, PasskeyModel, PasskeyRequest,
    passkey_correct, passkey_needle, passkey_prompt, run_passkey,
};

fn tokenizer() -> TextTokenizer {
    TextTokenizer::gpt2().expect("GPT-2's tokenizer is embedded")
}

fn encoder(tokenizer: &TextTokenizer) -> impl Fn(&str) -> Result<Vec<u32>, DataError> + '_ {
    |text| {
        tokenizer
            .encode(text)
            .map(|e| e.ids)
            .map_err(|e| DataError::Tokenizer(e.to_string()))
    }
}

fn sample_text() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/samples/wikitext/wiki.valid.tokens");
    std::fs::read_to_string(path).expect("the committed sample")
}

#[test]
fn prompts_have_the_asked_length_and_the_key_at_the_asked_depth() {
    let tokenizer = tokenizer();
    let encode = encoder(&tokenizer);
    let corpus = PasskeyCorpus::new(&sample_text(), &encode).unwrap();
    let longest_sentence = *corpus.counts.iter().max().unwrap();
    let intro = encode(PASSKEY_INTRO).unwrap().len();
    for length in [128, 256, 512, 1024] {
        for depth in [0.0, 0.25, 0.5, 0.75, 1.0] {
            let request = PasskeyRequest {
                length,
                depth,
                seed: 7,
            };
            let prompt = passkey_prompt(&corpus, &encode, request).unwrap();
            let miss = prompt.tokens.len().abs_diff(length);
            assert!(miss <= 2, "length {length}: built {}", prompt.tokens.len());
            assert!(prompt.text.starts_with(PASSKEY_INTRO));
            assert!(prompt.text.ends_with(PASSKEY_QUESTION));
            // Measured from the text itself, not from the builder's own bookkeeping.
            let needle = passkey_needle(&prompt.key);
            let at = prompt
                .text
                .find(&needle)
                .expect("the needle is in the prompt");
            let before = encode(prompt.text[..at].trim_end()).unwrap().len() - intro;
            let after_needle = &prompt.text[at + needle.len()..];
            let after = encode(after_needle).unwrap().len()
                - encode(&format!(" {PASSKEY_QUESTION}")).unwrap().len();
            let distractor = before + after;
            let wanted = depth * distractor as f64;
            assert!(
                (before as f64 - wanted).abs() <= longest_sentence as f64,
                "length {length}, depth {depth}: {before} of {distractor} distractor tokens before the needle"
            );
            if depth == 0.0 {
                assert_eq!(before, 0, "depth 0 puts the needle first");
            }
            if depth == 1.0 {
                assert!(
                    after_needle.trim() == PASSKEY_QUESTION,
                    "depth 1 puts the needle last"
                );
            }
        }
    }
}

#[test]
fn prompts_are_reproducible_from_their_seed() {
    let tokenizer = tokenizer();
    let encode = encoder(&tokenizer);
    let corpus = PasskeyCorpus::new(&sample_text(), &encode).unwrap();
    let request = PasskeyRequest {
        length: 300,
        depth: 0.5,
        seed: 11,
    };
    let a = passkey_prompt(&corpus, &encode, request).unwrap();
    let b = passkey_prompt(&corpus, &encode, request).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.key.len(), 5);
    assert!(a.key.chars().all(|c| c.is_ascii_digit()));
    let c = passkey_prompt(
        &corpus,
        &encode,
        PasskeyRequest {
            seed: 12,
            ..request
        },
    )
    .unwrap();
    assert_ne!(a.key, c.key);
    assert_ne!(a.text, c.text);
}

#[test]
fn a_short_corpus_or_a_tiny_length_is_a_clear_error() {
    let tokenizer = tokenizer();
    let encode = encoder(&tokenizer);
    let corpus = PasskeyCorpus::new(
        "In the beginning God created the heaven and the earth.",
        &encode,
    )
    .unwrap();
    let request = PasskeyRequest {
        length: 400,
        depth: 0.5,
        seed: 0,
    };
    let error = passkey_prompt(&corpus, &encode, request)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("fewer than") && error.contains("shorter lengths"),
        "{error}"
    );
    let error = passkey_prompt(
        &corpus,
        &encode,
        PasskeyRequest {
            length: 20,
            ..request
        },
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("leaves no room"), "{error}");
    let error = passkey_prompt(
        &corpus,
        &encode,
        PasskeyRequest {
            depth: 1.5,
            ..request
        },
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("outside 0..1"), "{error}");
    let error = PasskeyCorpus::new(" = Title = \n\n", &encode)
        .unwrap_err()
        .to_string();
    assert!(error.contains("no sentences"), "{error}");
}

#[test]
fn answers_score_by_exact_match_of_the_first_digits() {
    for (answer, correct) in [
        (" 48213.", true),
        ("48213", true),
        (" 48213 is the pass key", true),
        (": 48213", true),
        (" 4821", false),
        (" 482130", false),
        (" 48214.", false),
        (" The key is 48213", false),
        ("", false),
    ] {
        assert_eq!(passkey_correct(answer, "48213"), correct, "{answer:?}");
    }
}

/// The key the prompt hides, read back from its text: the answer of a perfect retriever.
fn read_key(text: &str) -> String {
    let at = text.find("The pass key is ").unwrap() + "The pass key is ".len();
    text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect()
}

#[test]
fn a_grid_scores_a_perfect_retriever_one_and_a_blind_one_zero() {
    let tokenizer = tokenizer();
    let encode = encoder(&tokenizer);
    let decode = |ids: &[u32]| {
        tokenizer
            .decode(ids)
            .map_err(|e| DataError::Tokenizer(e.to_string()))
    };
    let corpus = PasskeyCorpus::new(&sample_text(), &encode).unwrap();
    let grid = PasskeyGrid {
        lengths: vec![128, 256],
        depths: vec![0.0, 1.0],
        trials: 2,
        seed: 3,
    };
    // Finds the key at shallow depths only: the cells must show 1 at depth 0, 0 at depth 1.
    let mut answer = |tokens: &[u32], budget: usize| -> Result<Vec<u32>, DataError> {
        let text = decode(tokens)?;
        let key = read_key(&text);
        let shallow = text.find(&key).unwrap() < text.len() / 2;
        let said = if shallow {
            format!(" {key}.")
        } else {
            " 12345.".to_string()
        };
        let mut ids = encode(&said)?;
        ids.truncate(budget);
        Ok(ids)
    };
    let mut reported = Vec::new();
    let results = run_passkey(
        &corpus,
        &grid,
        PasskeyModel {
            encode: &encode,
            decode: &decode,
            answer: &mut answer,
        },
        &mut |cell, done, total| reported.push((cell.length, done, total)),
    )
    .unwrap();
    assert_eq!(
        reported,
        vec![(128, 1, 4), (128, 2, 4), (256, 3, 4), (256, 4, 4)]
    );
    assert_eq!(results.trials.len(), 8);
    for cell in &results.cells {
        let expected = if cell.depth == 0.0 { 1.0 } else { 0.0 };
        assert_eq!(cell.accuracy, expected, "{cell:?}");
    }
    assert_eq!(results.length_accuracy(128), Some(0.5));
    assert_eq!(results.length_accuracy(999), None);
}
