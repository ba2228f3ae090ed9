//! Per-map properties: declared widths, Taylor's identity, Performer's estimate, configs.

mod common;

use burn::tensor::Tensor;
use common::*;
use hedgehog_attention::feature_map::{Performer, Role};
use hedgehog_attention::{AttentionConfig, AttentionError, FeatureMapConfig, HedgehogActivation};

#[test]
fn feature_dim_equals_real_output_width_for_every_map() {
    let heads = 3;
    for head_dim in [5, 8, 16] {
        for config in all_maps() {
            let map = config
                .init::<F64>(head_dim, heads, &Default::default())
                .unwrap();
            let x = randn::<F64, 4>([2, heads, 11, head_dim], 1.0, 0);
            for role in [Role::Query, Role::Key] {
                let width = map.forward(x.clone(), role, 0).dims()[3];
                assert_eq!(
                    width,
                    map.feature_dim(),
                    "{}: {role:?} width",
                    config.label()
                );
                assert_eq!(
                    width,
                    config.feature_dim(head_dim),
                    "{}: config width",
                    config.label()
                );
            }
        }
    }
}

/// `φ(q_i)·φ(k_j)` for all pairs: `[B, H, T, T]`.
fn kernel(
    config: &FeatureMapConfig,
    q: &Tensor<F64, 4>,
    k: &Tensor<F64, 4>,
    head_dim: usize,
) -> Vec<f64> {
    let map = config
        .init::<F64>(head_dim, 1, &Default::default())
        .unwrap();
    let fq = map.forward(q.clone(), Role::Key, 0);
    let fk = map.forward(k.clone(), Role::Key, 0);
    values(&fq.matmul(fk.transpose()))
}

#[test]
fn taylor_features_reproduce_the_second_order_expansion() {
    let d = 7;
    let q = randn::<F64, 4>([1, 1, 9, d], 1.0, 1);
    let k = randn::<F64, 4>([1, 1, 9, d], 1.0, 2);
    let s = values(&hedgehog_attention::softmax::scores(q.clone(), k.clone()));
    let expected: Vec<f64> = s.iter().map(|s| 1.0 + s + s * s / 2.0).collect();
    for compressed in [false, true] {
        let got = kernel(&FeatureMapConfig::Taylor { compressed }, &q, &k, d);
        assert_close(
            &got,
            &expected,
            1e-12,
            1e-12,
            &format!("Taylor compressed={compressed}"),
        );
    }
}

#[test]
fn performer_estimate_approaches_the_softmax_kernel_as_features_grow() {
    let d = 16;
    let q = randn::<F64, 4>([1, 1, 32, d], 0.6, 3);
    let k = randn::<F64, 4>([1, 1, 32, d], 0.6, 4);
    let exact: Vec<f64> = values(&hedgehog_attention::softmax::scores(q.clone(), k.clone()))
        .into_iter()
        .map(f64::exp)
        .collect();
    let mean_relative_error = |m: usize| -> f64 {
        // Averaged over seeds so the trend is not one lucky draw.
        let seeds = 4;
        (0..seeds)
            .map(|seed| {
                let got = kernel(
                    &FeatureMapConfig::Performer {
                        num_features: m,
                        seed,
                        stabilize_queries: false,
                    },
                    &q,
                    &k,
                    d,
                );
                got.iter()
                    .zip(&exact)
                    .map(|(g, e)| (g - e).abs() / e)
                    .sum::<f64>()
                    / exact.len() as f64
            })
            .sum::<f64>()
            / seeds as f64
    };
    let errors: Vec<f64> = [16, 256, 4096]
        .into_iter()
        .map(mean_relative_error)
        .collect();
    assert!(
        errors[0] > errors[1] && errors[1] > errors[2],
        "error does not shrink with m: {errors:?}"
    );
    // Monte-Carlo error falls like m^{-1/2}: 256× more features, ≥ 8× smaller error (16× ideal).
    assert!(
        errors[2] < errors[0] / 8.0,
        "error shrinks too slowly: {errors:?}"
    );
    eprintln!("performer errors {errors:?}");
    // Ideal Monte-Carlo scaling from m = 16 would give about 0.04 here.
    assert!(errors[2] < 0.1, "m = 4096 still {:.3} off", errors[2]);
}

#[test]
fn performer_query_stabilisation_is_a_per_query_factor() {
    let d = 8;
    let q = randn::<F64, 4>([1, 2, 10, d], 2.0, 5);
    let map = Performer::<F64>::new(d, 32, 9, true, &Default::default()).unwrap();
    let stable = map.forward(q.clone(), Role::Query);
    let raw = map.forward(q, Role::Key);
    // Each query's features differ only by a positive per-token factor.
    let ratio = values(&(stable / raw));
    for row in ratio.chunks(32) {
        assert!(row[0] > 0.0);
        assert_close(row, &vec![row[0]; 32], 1e-10, 0.0, "per-query factor");
    }
}

#[test]
fn performer_projection_is_orthogonal_within_blocks_and_seeded() {
    let (d, m) = (8, 20);
    let a = Performer::<F64>::new(d, m, 3, false, &Default::default()).unwrap();
    let b = Performer::<F64>::new(d, m, 3, false, &Default::default()).unwrap();
    assert_eq!(
        values(&a.projection),
        values(&b.projection),
        "same seed, same draw"
    );
    let mut c = Performer::<F64>::new(d, m, 3, false, &Default::default()).unwrap();
    c.redraw(4);
    assert_ne!(
        values(&a.projection),
        values(&c.projection),
        "redraw changes the features"
    );
    let w = values(&a.projection);
    let row = |i: usize| &w[i * d..(i + 1) * d];
    for i in 0..d {
        for j in 0..i {
            let dot: f64 = row(i).iter().zip(row(j)).map(|(x, y)| x * y).sum();
            assert!(
                dot.abs() < 1e-10,
                "rows {i}, {j} of the first block are not orthogonal: {dot}"
            );
        }
    }
}

#[test]
fn hedgehog_identity_init_starts_as_plus_minus_exp() {
    let d = 6;
    let config = FeatureMapConfig::Hedgehog {
        activation: HedgehogActivation::Exp,
        feature_dim: d,
        per_head: true,
    };
    let map = config.init::<F64>(d, 2, &Default::default()).unwrap();
    let x = randn::<F64, 4>([1, 2, 5, d], 1.0, 6);
    let expected = Tensor::cat(vec![x.clone().exp(), x.clone().neg().exp()], 3);
    assert_tensors_close(
        &map.forward(x, Role::Key, 0),
        &expected,
        1e-14,
        0.0,
        "identity init",
    );
}

#[test]
fn bad_configs_are_clear_errors() {
    let device = Default::default();
    let cases = [
        (
            FeatureMapConfig::Performer {
                num_features: 0,
                seed: 0,
                stabilize_queries: false,
            },
            "num_features",
        ),
        (FeatureMapConfig::Cosformer { max_len: 0 }, "max_len"),
        (FeatureMapConfig::Exp { t: 0.0 }, "t must be"),
        (
            FeatureMapConfig::Hedgehog {
                activation: HedgehogActivation::Exp,
                feature_dim: 0,
                per_head: true,
            },
            "feature_dim",
        ),
        (
            FeatureMapConfig::T2r {
                feature_dim: 0,
                per_head: false,
            },
            "feature_dim",
        ),
    ];
    for (config, needle) in cases {
        let err = config.init::<F64>(8, 2, &device).unwrap_err();
        assert!(matches!(err, AttentionError::Config { .. }), "{err}");
        assert!(
            err.to_string().contains(needle),
            "{}: {err}",
            config.label()
        );
    }
    let config = FeatureMapConfig::Cosformer { max_len: 10 };
    let map = config.init::<F64>(4, 1, &device).unwrap();
    let err = map.check_input([1, 1, 11, 4], 0).unwrap_err();
    assert!(err.to_string().contains("raise `max_len`"), "{err}");
}

#[test]
fn configs_parse_from_json_and_reject_typos() {
    let config: AttentionConfig = serde_json::from_str(
        r#"{"kind":"linear","feature_map":{"kind":"hedgehog","activation":"softmax_split","feature_dim":64}}"#,
    )
    .unwrap();
    let AttentionConfig::Linear {
        feature_map,
        chunk_size,
        tie_query_key,
        ..
    } = &config
    else {
        panic!("expected linear")
    };
    assert_eq!(
        feature_map,
        &FeatureMapConfig::Hedgehog {
            activation: HedgehogActivation::SoftmaxSplit,
            feature_dim: 64,
            per_head: true
        }
    );
    assert_eq!((*chunk_size, *tie_query_key), (64, false));
    let unknown_key =
        serde_json::from_str::<FeatureMapConfig>(r#"{"kind":"taylor","compresed":true}"#)
            .unwrap_err();
    assert!(
        unknown_key
            .to_string()
            .contains("unknown field `compresed`"),
        "{unknown_key}"
    );
    let unknown_kind =
        serde_json::from_str::<FeatureMapConfig>(r#"{"kind":"hedgehg"}"#).unwrap_err();
    assert!(
        unknown_kind.to_string().contains("expected one of"),
        "{unknown_kind}"
    );
    let unknown_activation = serde_json::from_str::<FeatureMapConfig>(
        r#"{"kind":"hedgehog","activation":"relu","feature_dim":4}"#,
    )
    .unwrap_err();
    assert!(
        unknown_activation.to_string().contains("softmax_split"),
        "{unknown_activation}"
    );
}

#[test]
fn untied_trainable_maps_get_their_own_key_map() {
    let device = Default::default();
    let hedgehog = FeatureMapConfig::Hedgehog {
        activation: HedgehogActivation::SoftmaxSplit,
        feature_dim: 4,
        per_head: true,
    };
    let untied = AttentionConfig::linear(hedgehog.clone())
        .init_linear::<F64>(8, 2, &device)
        .unwrap()
        .unwrap();
    assert!(untied.key_map.is_some());
    let performer = AttentionConfig::linear(FeatureMapConfig::Performer {
        num_features: 8,
        seed: 0,
        stabilize_queries: false,
    })
    .init_linear::<F64>(8, 2, &device)
    .unwrap()
    .unwrap();
    assert!(
        performer.key_map.is_none(),
        "Performer must share its projection between q and k"
    );
    assert!(
        AttentionConfig::Softmax
            .init_linear::<F64>(8, 2, &device)
            .unwrap()
            .is_none()
    );
}

#[test]
fn every_registered_kind_gives_the_shared_tests_an_example() {
    let kinds: std::collections::BTreeSet<String> = all_maps()
        .iter()
        .map(|config| serde_json::to_value(config).unwrap()["kind"].to_string())
        .collect();
    assert_eq!(
        kinds.len(),
        FeatureMapConfig::KINDS.len(),
        "examples cover {kinds:?} of {:?}",
        FeatureMapConfig::KINDS
    );
}
