//! Passkey-retrieval prompts: a seeded number hidden at a chosen depth of a distractor passage
//! drawn from the corpus's own text, asked for at the end.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::error::DataError;

/// Opening line of the passkey prompt: Mohtashami & Jaggi, "Landmark Attention" (2023),
/// `passkey_retrieval` (also used by LongLoRA and later long-context work), verbatim.
pub const PASSKEY_INTRO: &str = "There is an important info hidden inside a lot of irrelevant text. \
Find it and memorize them. I will quiz you about the important information there.";

/// The question closing the prompt; the answer is what the model writes after it.
pub const PASSKEY_QUESTION: &str = "What is the pass key? The pass key is";

/// The line that hides `key`, the literature's "information line".
pub fn passkey_needle(key: &str) -> String {
    format!("The pass key is {key}. Remember it. {key} is the pass key.")
}

/// Digits of every key: five, so a correct answer by chance has odds of 1 in 90,000.
pub const PASSKEY_DIGITS: u32 = 5;

/// What one prompt asks for.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PasskeyRequest {
    /// Tokens of the whole prompt.
    pub length: usize,
    /// Where the needle sits in the distractor passage: 0 = its start, 1 = its end.
    pub depth: f64,
    pub seed: u64,
}

/// One built prompt.
#[derive(Clone, Debug, PartialEq)]
pub struct PasskeyPrompt {
    pub text: String,
    /// `text` as the model reads it.
    pub tokens: Vec<u32>,
    pub key: String,
    /// Distractor tokens before the needle, and in all (the needle's achieved depth is their
    /// ratio).
    pub tokens_before_needle: usize,
    pub distractor_tokens: usize,
}

/// The corpus text as sentences: WikiText headings (` = Title = `) dropped, whitespace
/// collapsed, split after `.`, `?` or `!` followed by a space.
pub fn corpus_sentences(text: &str) -> Vec<String> {
    let prose: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|line| !(line.starts_with("= ") && line.ends_with(" =")))
        .flat_map(str::split_whitespace)
        .collect();
    let mut sentences = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    for word in prose {
        current.push(word);
        if word.ends_with(['.', '?', '!']) {
            sentences.push(current.join(" "));
            current.clear();
        }
    }
    if !current.is_empty() {
        sentences.push(current.join(" "));
    }
    sentences
}

/// The distractor text: the corpus's sentences and each one's token count (read with a
/// leading space, as it appears inside the prompt), counted once for every prompt.
#[derive(Clone, Debug)]
pub struct PasskeyCorpus {
    pub sentences: Vec<String>,
    pub counts: Vec<usize>,
}

impl PasskeyCorpus {
    pub fn new(
        text: &str,
        encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    ) -> Result<Self, DataError> {
        let sentences = corpus_sentences(text);
        if sentences.is_empty() {
            return Err(DataError::Config(
                "the corpus has no sentences to hide a passkey in".into(),
            ));
        }
        let counts = sentences
            .iter()
            .map(|s| encode(&format!(" {s}")).map(|t| t.len()))
            .collect::<Result<_, _>>()?;
        Ok(Self { sentences, counts })
    }

    pub fn tokens(&self) -> usize {
        self.counts.iter().sum()
    }
}

/// A seeded key of [`PASSKEY_DIGITS`] digits, never starting with 0.
pub fn passkey_key(rng: &mut StdRng) -> String {
    let low = 10u32.pow(PASSKEY_DIGITS - 1);
    rng.random_range(low..low * 10).to_string()
}

/// Builds the prompt `request` asks for from `corpus`, counting tokens with `encode`. The distractor is a run of consecutive sentences from a seeded start
/// (wrapping around the corpus), the last one cut at a word so the prompt reaches `length`;
/// the needle goes between the two sentences nearest `depth` of the distractor's tokens.
pub fn passkey_prompt(
    corpus: &PasskeyCorpus,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    request: PasskeyRequest,
) -> Result<PasskeyPrompt, DataError> {
    if !(0.0..=1.0).contains(&request.depth) {
        return Err(DataError::Config(format!(
            "passkey depth {} is outside 0..1",
            request.depth
        )));
    }
    let mut rng = StdRng::seed_from_u64(request.seed);
    let key = passkey_key(&mut rng);
    let needle = passkey_needle(&key);
    let fixed = encode(&format!("{PASSKEY_INTRO} {needle} {PASSKEY_QUESTION}"))?.len();
    if request.length <= fixed {
        return Err(DataError::Config(format!(
            "a passkey prompt of {} tokens leaves no room for a distractor: the template alone \
             is {fixed} tokens",
            request.length
        )));
    }
    let total = corpus.tokens();
    let mut budget = request.length - fixed;
    if total < budget {
        return Err(DataError::Config(format!(
            "the corpus has {total} tokens of sentences, fewer than the {budget} a \
             {}-token passkey prompt needs; use shorter lengths or a larger validation split",
            request.length
        )));
    }
    let start = rng.random_range(0..corpus.sentences.len());
    // Token counts of the pieces add up to the joined text's only nearly (a tokenizer may merge
    // across a join): rebuild with the budget corrected by the miss, a few times at most.
    let mut best: Option<PasskeyPrompt> = None;
    for _ in 0..4 {
        let (pieces, counts) = distractor(corpus, encode, start, budget)?;
        let prompt = assemble(&pieces, &counts, &needle, &key, request.depth, encode)?;
        let miss = prompt.tokens.len() as i64 - request.length as i64;
        let better = best
            .as_ref()
            .is_none_or(|b| miss.abs() < (b.tokens.len() as i64 - request.length as i64).abs());
        if better {
            best = Some(prompt);
        }
        if miss == 0 || (miss < 0 && budget as i64 - miss > total as i64) {
            break;
        }
        budget = (budget as i64 - miss).max(1) as usize;
    }
    Ok(best.expect("at least one prompt was built"))
}

/// Consecutive sentences from `start` whose tokens (each read with a leading space) fill
/// `budget`, the last one cut at a word; with each piece's token count.
fn distractor(
    corpus: &PasskeyCorpus,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
    start: usize,
    budget: usize,
) -> Result<(Vec<String>, Vec<usize>), DataError> {
    let (mut pieces, mut counts, mut used) = (Vec::new(), Vec::new(), 0);
    let n = corpus.sentences.len();
    for index in (0..n).map(|i| (start + i) % n) {
        let (sentence, count) = (&corpus.sentences[index], corpus.counts[index]);
        if used + count <= budget {
            pieces.push(sentence.clone());
            counts.push(count);
            used += count;
            continue;
        }
        let mut words: Vec<&str> = Vec::new();
        let mut partial = 0;
        for word in sentence.split(' ') {
            words.push(word);
            let count = encode(&format!(" {}", words.join(" ")))?.len();
            if used + count > budget {
                words.pop();
                break;
            }
            partial = count;
        }
        if !words.is_empty() {
            pieces.push(words.join(" "));
            counts.push(partial);
        }
        break;
    }
    Ok((pieces, counts))
}

/// The whole prompt with the needle after the piece where the distractor's running token count
/// comes nearest `depth` of its total.
fn assemble(
    pieces: &[String],
    counts: &[usize],
    needle: &str,
    key: &str,
    depth: f64,
    encode: &dyn Fn(&str) -> Result<Vec<u32>, DataError>,
) -> Result<PasskeyPrompt, DataError> {
    let total: usize = counts.iter().sum();
    let target = depth * total as f64;
    let mut before = 0;
    let mut split = 0;
    for (i, &count) in counts.iter().enumerate() {
        if ((before + count) as f64 - target).abs() < (before as f64 - target).abs() {
            before += count;
            split = i + 1;
        } else {
            break;
        }
    }
    let mut parts: Vec<&str> = vec![PASSKEY_INTRO];
    parts.extend(pieces[..split].iter().map(String::as_str));
    parts.push(needle);
    parts.extend(pieces[split..].iter().map(String::as_str));
    parts.push(PASSKEY_QUESTION);
    let text = parts.join(" ");
    let tokens = encode(&text)?;
    Ok(PasskeyPrompt {
        text,
        tokens,
        key: key.to_string(),
        tokens_before_needle: before,
        distractor_tokens: total,
    })
}

/// Whether the model's continuation answers `key`: its first run of digits (after any spaces
/// or punctuation) is exactly the key, so "48213." and " 48213 is" count, "4821", "482130" and
/// "The key is 48213" (no digits first) do not.
pub fn passkey_correct(answer: &str, key: &str) -> bool {
    let trimmed = answer.trim_start_matches(|c: char| c.is_whitespace() || c == ':');
    let digits: String = trimmed.chars().take_while(char::is_ascii_digit).collect();
    !digits.is_empty() && digits == key
}
