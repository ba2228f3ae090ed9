//! Golden logits from tiny random HF checkpoints written by `tools/reference_models.py`
//! (PyTorch + transformers; regenerate with `python3 tools/reference_models.py`), loaded through
//! the real loaders: ours match to 1e-4.

mod common;

use common::*;
use hedgehog_models::AttentionMode;
use hedgehog_models::bert::Bert;
use hedgehog_models::gpt2::Gpt2;
use hedgehog_models::llama::Llama;
use hedgehog_models::vit::Vit;

const TOLERANCE: f64 = 1e-4;

#[test]
fn gpt2_logits_match_transformers() {
    let golden = golden("gpt2");
    let model = Gpt2::<B>::from_pretrained(fixture_dir("gpt2"), None, &Default::default()).unwrap();
    let out = model
        .forward(
            int_tensor(&golden, "input_ids"),
            None,
            AttentionMode::Configured,
            false,
        )
        .unwrap();
    assert_max_diff(
        &values(&out.output),
        &floats(&golden, "logits"),
        TOLERANCE,
        "GPT-2 logits",
    );
}

#[test]
fn bert_classifier_hidden_states_and_pooling_match_transformers() {
    for family in ["bert", "bert_regression"] {
        let golden = golden(family);
        let model =
            Bert::<B>::from_pretrained(fixture_dir(family), None, &Default::default()).unwrap();
        let mask = mask_tensor::<B>(&golden, "attention_mask");
        let out = model
            .encode(
                int_tensor(&golden, "input_ids"),
                Some(int_tensor(&golden, "token_type_ids")),
                Some(mask.clone()),
                AttentionMode::Configured,
                false,
            )
            .unwrap();
        let logits = model.classify(&out).unwrap();
        assert_max_diff(
            &values(&logits),
            &floats(&golden, "logits"),
            TOLERANCE,
            &format!("{family} logits"),
        );
        if family == "bert" {
            // Padded positions are excluded: HF lets padded queries attend, hedgehog zeroes them;
            // neither reaches a real token.
            let keep: Vec<bool> = values(&mask.clone().float())
                .iter()
                .flat_map(|m| [*m == 1.0; 32])
                .collect();
            let only_real = |v: Vec<f64>| {
                v.into_iter()
                    .zip(&keep)
                    .filter(|(_, k)| **k)
                    .map(|(v, _)| v)
                    .collect::<Vec<_>>()
            };
            assert_max_diff(
                &only_real(values(&out.last_hidden_state)),
                &only_real(floats(&golden, "last_hidden_state")),
                TOLERANCE,
                "BERT hidden",
            );
            assert_max_diff(
                &values(&out.pooled),
                &floats(&golden, "pooler_output"),
                TOLERANCE,
                "BERT pooler",
            );
            let pooled = Bert::mean_pool(out.last_hidden_state, Some(mask));
            assert_max_diff(
                &values(&pooled),
                &floats(&golden, "mean_pooled"),
                TOLERANCE,
                "BERT mean pooling",
            );
        }
    }
}

#[test]
fn vit_logits_match_transformers() {
    let golden = golden("vit");
    let model = Vit::<B>::from_pretrained(fixture_dir("vit"), None, &Default::default()).unwrap();
    let out = model
        .forward(
            float_tensor(&golden, "pixel_values"),
            AttentionMode::Configured,
            false,
        )
        .unwrap();
    assert_max_diff(
        &values(&out.encoder_output),
        &floats(&golden, "encoder_output"),
        TOLERANCE,
        "ViT encoder",
    );
    assert_max_diff(
        &values(&out.logits.unwrap()),
        &floats(&golden, "logits"),
        TOLERANCE,
        "ViT logits",
    );
}

#[test]
fn llama_logits_match_transformers() {
    let golden = golden("llama");
    let model =
        Llama::<B>::from_pretrained(fixture_dir("llama"), None, &Default::default()).unwrap();
    assert_eq!(
        model.config.rope_base(),
        100000.0,
        "rope_theta read from rope_parameters"
    );
    let out = model
        .forward(
            int_tensor(&golden, "input_ids"),
            None,
            AttentionMode::Configured,
            false,
        )
        .unwrap();
    assert_max_diff(
        &values(&out.output),
        &floats(&golden, "logits"),
        TOLERANCE,
        "Llama logits",
    );
}
