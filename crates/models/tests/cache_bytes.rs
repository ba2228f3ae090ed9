//! The decoding caches' size as `LayerCache::bytes` and `generate_profiled` report it, on the
//! tiny GPT-2 fixture (2 layers, 4 heads of 8): softmax's grows by one key and one value per
//! token, linear attention's `(S, z)` does not grow, and a window's stops growing at `W`.

mod common;

use common::*;
use hedgehog_attention::AttentionConfig;
use hedgehog_models::generation::{
    GenerationConfig, GenerationProfile, Sampling, generate, generate_profiled,
};
use hedgehog_models::gpt2::Gpt2;

const LAYERS: usize = 2;
const HEADS: usize = 4;
const HEAD_DIM: usize = 8;
const F32: usize = 4;
/// Hedgehog with feature_dim 6 has 12 features (the + and − halves).
const FEATURES: usize = 12;
const NEW_TOKENS: usize = 4;

fn profile(attention: AttentionConfig, prompt_tokens: usize) -> GenerationProfile {
    let model: Gpt2<B> = Gpt2::from_pretrained(
        fixture_dir("gpt2"),
        Some(vec![attention]),
        &Default::default(),
    )
    .unwrap();
    let prompt: Vec<u32> = (0..prompt_tokens as u32)
        .map(|i| (i * 7 + 3) % 50)
        .collect();
    let config = GenerationConfig {
        max_new_tokens: NEW_TOKENS,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_token: None,
    };
    let device = Default::default();
    let (tokens, profile) = generate_profiled(&model, &prompt, &config, &device).unwrap();
    assert_eq!(tokens, generate(&model, &prompt, &config, &device).unwrap());
    assert_eq!(
        profile.decode_steps,
        NEW_TOKENS - 1,
        "the last token is not fed back"
    );
    assert!(profile.ms_per_token().is_some_and(|ms| ms > 0.0));
    profile
}

fn linear_state_bytes() -> usize {
    // S: [1, H, F, dv] and z: [1, H, F] per layer.
    LAYERS * HEADS * FEATURES * (HEAD_DIM + 1) * F32
}

#[test]
fn softmax_cache_grows_by_one_key_and_value_per_token() {
    for prompt in [8, 16, 32] {
        let p = profile(AttentionConfig::Softmax, prompt);
        let per_token = LAYERS * 2 * HEADS * HEAD_DIM * F32;
        assert_eq!(p.cache_bytes_after_prefill, prompt * per_token);
        assert_eq!(p.cache_bytes, (prompt + NEW_TOKENS - 1) * per_token);
    }
}

#[test]
fn linear_state_is_the_same_size_at_every_length() {
    for prompt in [8, 16, 32] {
        let p = profile(hedgehog(6), prompt);
        assert_eq!(p.cache_bytes_after_prefill, linear_state_bytes());
        assert_eq!(p.cache_bytes, linear_state_bytes());
    }
}

#[test]
fn window_cache_holds_at_most_window_tokens_besides_the_state() {
    let window = 10;
    let mut attention = hedgehog(6);
    if let AttentionConfig::Linear { window: w, .. } = &mut attention {
        *w = window;
    }
    let per_token = LAYERS * 2 * HEADS * HEAD_DIM * F32;
    let short = profile(attention.clone(), 4);
    assert_eq!(
        short.cache_bytes_after_prefill,
        4 * per_token + linear_state_bytes()
    );
    for prompt in [16, 32] {
        let p = profile(attention.clone(), prompt);
        assert_eq!(
            p.cache_bytes_after_prefill,
            window * per_token + linear_state_bytes()
        );
        assert_eq!(p.cache_bytes, p.cache_bytes_after_prefill);
    }
}
