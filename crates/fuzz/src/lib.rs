//! A seeded mutation fuzzer for the workspace's file parsers (a dev-dependency of the crates
//! whose tests use it).
//!
//! Each case takes one file of a corpus of real files and damages it: bit flips, overwritten
//! bytes, truncation, inserted or deleted runs, repeated runs, and splices with another corpus
//! file. The parser under test must return (an error is fine): a panic fails the test, as does
//! a case that runs longer than [`CASE_LIMIT`]; the failure names the target, the seed and the
//! case, and writes the input to `target/fuzz-failures/` so it can become a regression test.
//! [`CappedAllocator`] turns an allocation driven by an unchecked length field into a failure
//! too (a test binary installs it as its global allocator).
//!
//! Cases per target: the caller's default (the test suite: a few thousand, seconds), or
//! `HEDGEHOG_FUZZ_SECONDS` of cases per target (`just fuzz`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A case slower than this is reported as a hang.
pub const CASE_LIMIT: Duration = Duration::from_secs(20);

/// splitmix64: small, fast, and the same sequence on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// One damaged copy of a corpus file; `case` picks the file and the damage.
pub fn mutate(corpus: &[Vec<u8>], seed: u64, case: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed ^ case.wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut bytes = corpus[rng.below(corpus.len())].clone();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let len = bytes.len();
        match rng.below(8) {
            // Flip one bit.
            0 | 1 if len > 0 => {
                let at = rng.below(len);
                bytes[at] ^= 1 << rng.below(8);
            }
            // Overwrite a byte with an extreme or random value (lengths, counts, tags).
            2 if len > 0 => {
                let at = rng.below(len);
                bytes[at] = [0x00, 0xff, 0x7f, 0x80, rng.next_u64() as u8][rng.below(5)];
            }
            // Cut the file.
            3 => bytes.truncate(rng.below(len + 1)),
            // Delete a run.
            4 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(64)).min(len);
                bytes.drain(at..end);
            }
            // Insert random bytes.
            5 => {
                let at = rng.below(len + 1);
                let run: Vec<u8> = (0..1 + rng.below(16))
                    .map(|_| rng.next_u64() as u8)
                    .collect();
                bytes.splice(at..at, run);
            }
            // Repeat a run.
            6 if len > 0 => {
                let at = rng.below(len);
                let end = (at + 1 + rng.below(256)).min(len);
                let run = bytes[at..end].to_vec();
                bytes.splice(at..at, run);
            }
            // Splice: this file's head with another file's tail.
            _ => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
        }
    }
    bytes
}

/// Cases for a target: `default`, or as many as fit in `HEDGEHOG_FUZZ_SECONDS`.
fn budget(default: u64) -> (u64, Option<Duration>) {
    match std::env::var("HEDGEHOG_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(seconds) if seconds > 0.0 => (u64::MAX, Some(Duration::from_secs_f64(seconds))),
        _ => (default, None),
    }
}

/// The seed: `HEDGEHOG_FUZZ_SEED`, else a fixed one so the suite is reproducible.
fn seed() -> u64 {
    std::env::var("HEDGEHOG_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x4845_4447_4548_4f47)
}

fn save_failure(target: &str, case: u64, input: &[u8]) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{case}.bin"));
    let _ = std::fs::write(&path, input);
    path
}

/// Runs `parse` on `default_cases` damaged copies of `corpus` (or for `HEDGEHOG_FUZZ_SECONDS`)
/// and returns how many ran; panics with the target, seed and case of the first input that
/// made `parse` panic or hang.
pub fn fuzz<F>(target: &str, corpus: Vec<Vec<u8>>, default_cases: u64, parse: F) -> u64
where
    F: Fn(&[u8]) + Send + 'static,
{
    assert!(!corpus.is_empty(), "{target}: an empty corpus");
    let (cases, duration) = budget(default_cases);
    let seed = seed();
    let (report, progress) = mpsc::channel::<(u64, Result<(), String>)>();
    let worker_corpus = corpus.clone();
    let started = Instant::now();
    std::thread::spawn(move || {
        for case in 0..cases {
            if duration.is_some_and(|d| started.elapsed() >= d) {
                break;
            }
            let input = mutate(&worker_corpus, seed, case);
            let outcome = catch_unwind(AssertUnwindSafe(|| parse(&input))).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into())
            });
            let failed = outcome.is_err();
            if report.send((case, outcome)).is_err() || failed {
                return;
            }
        }
    });
    let mut ran = 0;
    loop {
        match progress.recv_timeout(CASE_LIMIT) {
            Ok((_, Ok(()))) => ran += 1,
            Ok((case, Err(message))) => {
                let saved = save_failure(target, case, &mutate(&corpus, seed, case));
                panic!(
                    "{target}: case {case} (HEDGEHOG_FUZZ_SEED={seed}) panicked: {message}; \
                     input saved to {}",
                    saved.display()
                );
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Shown by `just fuzz` (`--nocapture`), captured by `cargo test`.
                eprintln!(
                    "fuzz {target}: {ran} damaged inputs in {:.1} s, no panic or hang",
                    started.elapsed().as_secs_f64()
                );
                return ran;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let saved = save_failure(target, ran, &mutate(&corpus, seed, ran));
                panic!(
                    "{target}: case {ran} (HEDGEHOG_FUZZ_SEED={seed}) ran past {CASE_LIMIT:?}; \
                     input saved to {}",
                    saved.display()
                );
            }
        }
    }
}

/// The system allocator with a ceiling on any one allocation: a parser that trusts a length
/// field and asks for more fails the test (the process aborts with "memory allocation of N
/// bytes failed") instead of exhausting the machine.
pub struct CappedAllocator {
    pub limit: usize,
}

// SAFETY: forwards to `System`, refusing (null) only requests above the limit, as an
// exhausted allocator may.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > self.limit {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > self.limit {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > self.limit {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_are_reproducible_and_varied() {
        let corpus = vec![b"hello, world".to_vec(), b"0123456789abcdef".to_vec()];
        assert_eq!(mutate(&corpus, 7, 3), mutate(&corpus, 7, 3));
        let distinct: std::collections::BTreeSet<Vec<u8>> =
            (0..200).map(|case| mutate(&corpus, 7, case)).collect();
        assert!(distinct.len() > 150, "{} distinct of 200", distinct.len());
    }

    #[test]
    fn a_panicking_parser_fails_with_its_case() {
        let result = std::panic::catch_unwind(|| {
            fuzz("always", vec![vec![1, 2, 3]], 10, |_| panic!("boom"))
        });
        let message = result.unwrap_err();
        let text = message.downcast_ref::<String>().unwrap();
        assert!(
            text.contains("always: case 0") && text.contains("boom"),
            "{text}"
        );
    }

    #[test]
    fn a_parser_that_returns_runs_every_case() {
        assert_eq!(fuzz("fine", vec![vec![0; 8]], 50, |_| {}), 50);
    }
}
