//! Tokenizers: GPT-2 BPE ids known from the published vocabulary, WordPiece on a hand-made
//! vocabulary, sentence pairs, round trips.

use hedgehog_models::tokenizer::TextTokenizer;

#[test]
fn gpt2_bpe_matches_the_published_ids() {
    let tokenizer = TextTokenizer::gpt2().unwrap();
    // r50k_base: "Hello" = 15496, " world" = 995 (GPT-2's encoder.json).
    assert_eq!(
        tokenizer.encode("Hello world").unwrap().ids,
        vec![15496, 995]
    );
    let text = "Hedgehog mimics softmax attention, 1024 tokens at a time.";
    let ids = tokenizer.encode(text).unwrap().ids;
    assert_eq!(tokenizer.decode(&ids).unwrap(), text);
    assert!(ids.iter().all(|&t| t < 50257));
    assert_eq!(tokenizer.vocab_size(), 50257);
}

#[test]
fn wordpiece_splits_into_known_pieces_with_bert_framing() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/tokenizer/vocab.txt"
    );
    let tokenizer = TextTokenizer::from_bert_vocab(path, true).unwrap();
    // [CLS]=2 the=5 hedge=6 ##hog=7 is=13 un=8 ##aff=9 ##able=10 .=12 [SEP]=3
    let encoding = tokenizer.encode("The Hedgehog is unaffable.").unwrap();
    assert_eq!(encoding.ids, vec![2, 5, 6, 7, 13, 8, 9, 10, 12, 3]);
    assert!(encoding.type_ids.iter().all(|&t| t == 0));
    // Out-of-vocabulary words become [UNK]; pairs get token types 0 then 1.
    let pair = tokenizer.encode_pair("the zebra", "a hedgehog").unwrap();
    assert_eq!(pair.ids, vec![2, 5, 1, 3, 14, 6, 7, 3]);
    assert_eq!(pair.type_ids, vec![0, 0, 0, 0, 1, 1, 1, 1]);
}

#[test]
fn a_bad_vocabulary_is_a_clear_error() {
    let dir = std::env::temp_dir().join(format!("hedgehog-vocab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vocab.txt");
    std::fs::write(&path, "hello\nworld\n").unwrap();
    let err = TextTokenizer::from_bert_vocab(&path, true)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no `[CLS]` token"), "{err}");
    let err = TextTokenizer::from_tokenizer_json(dir.join("missing.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing.json"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn byte_level_bpe_from_vocab_and_merges_round_trips() {
    // A toy vocabulary in the GPT-2 byte alphabet (Ġ = space).
    let tokens: Vec<String> = [
        "h", "e", "l", "o", "Ġ", "w", "r", "d", "1", "2", "he", "ll", "hell", "hello", "Ġw", "or",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let merges: Vec<String> = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let tokenizer = TextTokenizer::from_byte_level_bpe(&tokens, &merges, true).unwrap();
    let ids = tokenizer.encode("hello world12").unwrap().ids;
    // hello | Ġw or l d | 1 | 2 (digits split one by one)
    assert_eq!(ids, vec![13, 14, 15, 2, 7, 8, 9]);
    assert_eq!(tokenizer.decode(&ids).unwrap(), "hello world12");
}
