//! Sliding-window + linear attention in the models: decoding from the window cache equals the
//! full pass, the cache stays at `W` tokens, the window factors round-trip through checkpoints,
//! bidirectional encoders refuse a window, and a window covering the sequence is softmax.

mod common;

use burn::module::Module;
use burn::tensor::{Int, Tensor};
use common::*;
use hedgehog_attention::{AttentionConfig, FeatureMapConfig, LinearAttention};
use hedgehog_models::attention::{LayerCache, SelfAttentionConfig};
use hedgehog_models::bert::Bert;
use hedgehog_models::checkpoint::{self, Checkpoint};
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::vit::Vit;
use hedgehog_models::weights::SafetensorsLoader;
use hedgehog_models::{AttentionLayers, AttentionMode, CausalLm};

/// `attention` (linear) with a window of `window` keys and chunks of 4, so that the fixtures'
/// 17 and 19 tokens cross chunk boundaries as well as the window.
fn windowed(mut attention: AttentionConfig, window_size: usize) -> AttentionConfig {
    let AttentionConfig::Linear {
        window, chunk_size, ..
    } = &mut attention
    else {
        panic!("a window needs linear attention")
    };
    *window = window_size;
    *chunk_size = 4;
    attention
}

fn with_eps(mut attention: AttentionConfig, value: f64) -> AttentionConfig {
    if let AttentionConfig::Linear { eps, .. } = &mut attention {
        *eps = value;
    }
    attention
}

fn maps() -> [(&'static str, AttentionConfig); 3] {
    [
        ("hedgehog", hedgehog(6)),
        (
            "cosformer",
            AttentionConfig::linear(FeatureMapConfig::Cosformer { max_len: 64 }),
        ),
        (
            "taylor",
            AttentionConfig::linear(FeatureMapConfig::Taylor { compressed: true }),
        ),
    ]
}

/// Runs `model` through its caches on consecutive pieces of `ids` of the given lengths and
/// stacks the logits.
fn decode_in_pieces<M: CausalLm<B>>(
    model: &M,
    ids: &Tensor<B, 2, Int>,
    pieces: &[usize],
) -> Tensor<B, 3> {
    let [b, t] = ids.dims();
    assert_eq!(
        pieces.iter().sum::<usize>(),
        t,
        "the pieces cover the sequence"
    );
    let mut caches = vec![LayerCache::Empty; model.num_layers()];
    let mut outputs = Vec::new();
    let mut start = 0;
    for &length in pieces {
        let piece = ids.clone().slice([0..b, start..start + length]);
        let (logits, next) = model.forward_cached(piece, caches, start).unwrap();
        outputs.push(logits);
        caches = next;
        start += length;
    }
    Tensor::cat(outputs, 1)
}

fn gpt2(attention: AttentionConfig) -> Gpt2<B> {
    Gpt2::from_pretrained(
        fixture_dir("gpt2"),
        Some(vec![attention]),
        &Default::default(),
    )
    .unwrap()
}

fn llama(attention: AttentionConfig) -> Llama<B> {
    Llama::from_pretrained(
        fixture_dir("llama"),
        Some(vec![attention]),
        &Default::default(),
    )
    .unwrap()
}

/// Windows of 3 (exceeded by the prefill already) and 8 (filled while decoding), decoded
/// token by token and in pieces that continue a cache with several tokens at once.
#[test]
fn windowed_decoders_decode_token_by_token_like_the_full_pass() {
    let gpt2_ids = int_tensor::<B>(&golden("gpt2"), "input_ids"); // [2, 17]
    let llama_ids = int_tensor::<B>(&golden("llama"), "input_ids"); // [2, 19]
    for (name, map) in maps() {
        for window in [3, 8] {
            let attention = windowed(map.clone(), window);
            let what = |family: &str, how: &str| format!("{family} {name} window {window}: {how}");
            let model = gpt2(attention.clone());
            let full = model
                .forward(gpt2_ids.clone(), None, AttentionMode::Configured, false)
                .unwrap()
                .output;
            let plain = gpt2(map.clone())
                .forward(gpt2_ids.clone(), None, AttentionMode::Configured, false)
                .unwrap()
                .output;
            let moved = values(&(full.clone() - plain).abs().max()).remove(0);
            assert!(
                moved > 1e-3,
                "{}",
                what("GPT-2", &format!("the window changes the logits ({moved})"))
            );
            let stepwise = decode_stepwise(&model, &gpt2_ids, 6);
            assert_max_diff(
                &values(&stepwise),
                &values(&full),
                1e-4,
                &what("GPT-2", "stepwise vs full"),
            );
            let pieces = decode_in_pieces(&model, &gpt2_ids, &[5, 4, 1, 7]);
            assert_max_diff(
                &values(&pieces),
                &values(&full),
                1e-4,
                &what("GPT-2", "pieces vs full"),
            );

            let model = llama(attention);
            let full = model
                .forward(llama_ids.clone(), None, AttentionMode::Configured, false)
                .unwrap()
                .output;
            let stepwise = decode_stepwise(&model, &llama_ids, 7);
            assert_max_diff(
                &values(&stepwise),
                &values(&full),
                1e-4,
                &what("Llama", "stepwise vs full"),
            );
            let pieces = decode_in_pieces(&model, &llama_ids, &[1, 2, 9, 1, 6]);
            assert_max_diff(
                &values(&pieces),
                &values(&full),
                1e-4,
                &what("Llama", "pieces vs full"),
            );
        }
    }
}

/// Every layer's cache after each call of a schedule that starts below the window and one
/// that starts above it: the position, at most `W` raw keys and values, and a fixed `(S, z)`.
#[test]
fn the_decode_cache_of_a_windowed_layer_holds_at_most_w_tokens() {
    let window = 3;
    let model = llama(windowed(hedgehog(6), window));
    let ids = int_tensor::<B>(&golden("llama"), "input_ids");
    let [b, t] = ids.dims();
    // 6 query heads (the 2 key/value heads repeated), d = 8, Hedgehog's 2·6 features.
    let (h, d, f) = (6, 8, 12);
    for prompt in [2, 10] {
        let mut caches = vec![LayerCache::Empty; model.num_layers()];
        let mut start = 0;
        for length in std::iter::once(prompt).chain(std::iter::repeat_n(1, t - prompt)) {
            let piece = ids.clone().slice([0..b, start..start + length]);
            caches = model.forward_cached(piece, caches, start).unwrap().1;
            start += length;
            let n = start.min(window);
            for (layer, cache) in caches.iter().enumerate() {
                let what = format!("prompt {prompt}, layer {layer}, after {start} tokens");
                let LayerCache::Window(state) = cache else {
                    panic!("{what}: a window cache")
                };
                assert_eq!(state.position, start, "{what}: position");
                assert_eq!(state.keys.dims(), [b, h, n, d], "{what}: keys");
                assert_eq!(state.values.dims(), [b, h, n, d], "{what}: values");
                assert!(state.padding.is_none(), "{what}: no padding");
                assert_eq!(state.linear.s.dims(), [b, h, f, d], "{what}: S");
                assert_eq!(state.linear.z.dims(), [b, h, f], "{what}: z");
            }
        }
    }
}

#[test]
fn a_window_cache_from_elsewhere_is_a_clear_error() {
    let device = Default::default();
    let model = gpt2(windowed(hedgehog(6), 3));
    let ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    let b = ids.dims()[0];
    let piece = |range: std::ops::Range<usize>| ids.clone().slice([0..b, range]);
    let empty = || vec![LayerCache::Empty; model.num_layers()];
    let (_, caches) = model.forward_cached(piece(0..4), empty(), 0).unwrap();
    let err = model
        .forward_cached(piece(5..6), caches, 5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("continues at position 5 from a window cache at position 4"),
        "{err}"
    );
    let err = model
        .forward_cached(piece(4..5), empty(), 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("an empty cache"), "{err}");
    let softmax = Gpt2::<B>::from_pretrained(fixture_dir("gpt2"), None, &device).unwrap();
    let (_, caches) = softmax.forward_cached(piece(0..4), empty(), 0).unwrap();
    let err = model
        .forward_cached(piece(4..5), caches, 4)
        .unwrap_err()
        .to_string();
    assert!(err.contains("a softmax key/value cache"), "{err}");
}

#[test]
fn windowed_generation_matches_a_naive_full_recompute_loop() {
    use hedgehog_models::generation::{GenerationConfig, Sampling, generate};
    let device = Default::default();
    let prompt = [5u32, 17, 42, 8];
    let model = llama(windowed(hedgehog(6), 3));
    let greedy = GenerationConfig {
        max_new_tokens: 10,
        sampling: Sampling::Greedy,
        seed: 0,
        stop_token: None,
    };
    let generated = generate(&model, &prompt, &greedy, &device).unwrap();
    let mut sequence: Vec<i64> = prompt.iter().map(|&t| t as i64).collect();
    for _ in 0..greedy.max_new_tokens {
        let logits = model
            .forward(tokens(&sequence, 1), None, AttentionMode::Configured, false)
            .unwrap()
            .output;
        let last = values(&logits)[(sequence.len() - 1) * 101..].to_vec();
        let argmax = last
            .iter()
            .enumerate()
            .fold((0, f64::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
            .0;
        sequence.push(argmax as i64);
    }
    let naive: Vec<u32> = sequence[prompt.len()..].iter().map(|&t| t as u32).collect();
    assert_eq!(generated, naive, "cached greedy decoding = naive loop");
}

fn linear_layers<M: AttentionLayers<B>>(model: &M) -> Vec<&LinearAttention<B>> {
    let layers = model.attention_layers();
    layers
        .into_iter()
        .map(|l| l.linear.as_ref().expect("linear"))
        .collect()
}

/// Every layer's `γ = sigmoid(w)`, layer after layer.
fn gammas<M: AttentionLayers<B>>(model: &M) -> Vec<Vec<f64>> {
    linear_layers(model)
        .into_iter()
        .map(|linear| values(&linear.window_gammas().expect("window factors")))
        .collect()
}

/// Converts the `family` fixture to windowed `attention` (γ at each layer's `window_factor`),
/// perturbs every parameter, saves, checks the file names γ's logits as `factor_name(layer)`,
/// loads with the saved attention and compares γ and `run`, bit for bit.
fn assert_window_round_trip<M: Checkpoint<B> + Module<B>>(
    family: &str,
    attention: &[AttentionConfig],
    factor_name: impl Fn(usize) -> String,
    run: impl Fn(&M) -> Vec<f64>,
) {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("hedgehog-window-{}", std::process::id()));
    let converted: M =
        checkpoint::load(&fixture_dir(family), Some(attention.to_vec()), &device).unwrap();
    for (layer, (gamma, config)) in gammas(&converted).iter().zip(attention).enumerate() {
        let AttentionConfig::Linear { window_factor, .. } = config else {
            panic!("linear")
        };
        assert_max_diff(
            gamma,
            &vec![*window_factor; gamma.len()],
            1e-6,
            &format!("{family} layer {layer}: fresh γ"),
        );
    }
    let fresh = gammas(&converted);
    let model = perturb_params(converted);
    let moved = gammas(&model);
    let least = fresh
        .iter()
        .flatten()
        .zip(moved.iter().flatten())
        .map(|(a, b)| (a - b).abs())
        .fold(f64::INFINITY, f64::min);
    assert!(least > 0.0, "{family}: every γ moved off its init");
    let saved = dir.join(family);
    checkpoint::save(&model, &saved).unwrap();
    let file = SafetensorsLoader::<B>::open(saved.join("model.safetensors"), &device).unwrap();
    for layer in 0..attention.len() {
        assert!(
            file.contains(&factor_name(layer)),
            "{family}: `{}` saved",
            factor_name(layer)
        );
    }
    let loaded: M = checkpoint::load(&saved, None, &device).unwrap();
    assert_eq!(
        gammas(&loaded),
        moved,
        "{family}: γ round trip is bit-identical"
    );
    assert_eq!(
        run(&model),
        run(&loaded),
        "{family}: round trip is bit-identical"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn windowed_models_save_and_load_their_window_factors_bit_identically() {
    let mut performer = windowed(
        AttentionConfig::linear(FeatureMapConfig::Performer {
            num_features: 16,
            seed: 3,
            stabilize_queries: false,
        }),
        5,
    );
    if let AttentionConfig::Linear { window_factor, .. } = &mut performer {
        *window_factor = 0.3;
    }
    let attention = [windowed(hedgehog(6), 3), performer];
    let gpt2_ids = int_tensor::<B>(&golden("gpt2"), "input_ids");
    assert_window_round_trip::<Gpt2<B>>(
        "gpt2",
        &attention,
        |layer| format!("h.{layer}.attn.hedgehog.window_factors"),
        |m| {
            let out = m.forward(gpt2_ids.clone(), None, AttentionMode::Configured, false);
            values(&out.unwrap().output)
        },
    );
    let llama_ids = int_tensor::<B>(&golden("llama"), "input_ids");
    assert_window_round_trip::<Llama<B>>(
        "llama",
        &attention,
        |layer| format!("model.layers.{layer}.self_attn.hedgehog.window_factors"),
        |m| values(&decode_stepwise(m, &llama_ids, 7)),
    );
}

/// A window-less checkpoint whose config is edited to add a window has no γ to load: an error
/// that says how to add a window, not a silent fresh γ.
#[test]
fn a_checkpoint_saved_without_window_factors_does_not_load_into_a_windowed_config() {
    let device = Default::default();
    let dir = std::env::temp_dir().join(format!("hedgehog-no-window-{}", std::process::id()));
    checkpoint::save(&gpt2(hedgehog(6)), &dir).unwrap();
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for attention in config["hedgehog_attention"].as_array_mut().unwrap() {
        attention["window"] = 3.into();
    }
    std::fs::write(&path, config.to_string()).unwrap();
    let err = Gpt2::<B>::from_pretrained(&dir, None, &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("h.0.attn.hedgehog.window_factors") && err.contains("saved without a window"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bidirectional_encoders_refuse_a_window_when_built() {
    let device = Default::default();
    let attention = vec![hedgehog(6), windowed(hedgehog(6), 4)];
    let err = Bert::<B>::from_pretrained(fixture_dir("bert"), Some(attention.clone()), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("BERT layer 1") && err.contains("causal only"),
        "{err}"
    );
    let err = Vit::<B>::from_pretrained(fixture_dir("vit"), Some(attention), &device)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("ViT layer 1") && err.contains("causal only"),
        "{err}"
    );
    // A layer built on its own is refused too, and the same layer builds when causal.
    let layer = |causal: bool| SelfAttentionConfig {
        model_dim: 32,
        num_heads: 4,
        num_kv_heads: 4,
        head_dim: 8,
        bias: true,
        causal,
        dropout: 0.0,
        rope_base: None,
        attention: windowed(hedgehog(6), 4),
        initializer: None,
    };
    let err = layer(false).init::<B>(&device).unwrap_err().to_string();
    assert!(err.contains("causal only"), "{err}");
    assert!(layer(true).init::<B>(&device).is_ok());
}

/// The configured full pass and the token-by-token decoding (after a 4-token prompt) of the
/// `family` fixture ("gpt2" or "llama") converted to `attention`.
fn full_and_stepwise(family: &str, attention: AttentionConfig) -> (Vec<f64>, Vec<f64>) {
    let ids = int_tensor::<B>(&golden(family), "input_ids");
    let mode = AttentionMode::Configured;
    if family == "gpt2" {
        let model = gpt2(attention);
        let full = model
            .forward(ids.clone(), None, mode, false)
            .unwrap()
            .output;
        (values(&full), values(&decode_stepwise(&model, &ids, 4)))
    } else {
        let model = llama(attention);
        let full = model
            .forward(ids.clone(), None, mode, false)
            .unwrap()
            .output;
        (values(&full), values(&decode_stepwise(&model, &ids, 4)))
    }
}

/// With `ε = 0` a window of `W ≥ T` keys is softmax attention; `W = T − 1` is not (one key
/// leaves the last query's window), so an off-by-one in the window fails here.
#[test]
fn a_window_covering_the_sequence_is_the_softmax_model() {
    for (family, t) in [("gpt2", 17), ("llama", 19)] {
        let (softmax, _) = full_and_stepwise(family, AttentionConfig::Softmax);
        for (name, map) in maps() {
            for window in [t - 1, t, 64] {
                let attention = with_eps(windowed(map.clone(), window), 0.0);
                let (full, stepwise) = full_and_stepwise(family, attention);
                let what = format!("{family} {name} window {window} (T = {t})");
                if window < t {
                    let diff = full
                        .iter()
                        .zip(&softmax)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0.0, f64::max);
                    assert!(diff > 1e-3, "{what}: differs from softmax ({diff})");
                } else {
                    assert_max_diff(&full, &softmax, 1e-5, &format!("{what}: full pass"));
                    assert_max_diff(&stepwise, &softmax, 1e-5, &format!("{what}: decoding"));
                }
            }
        }
    }
}
