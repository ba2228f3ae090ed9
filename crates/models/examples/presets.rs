//! Parameter count of every preset, as built by the code (softmax attention):
//! `cargo run --release -p hedgehog-models --example presets`.

use burn::backend::NdArray;
use burn::module::Module;
use hedgehog_models::bert::BertConfig;
use hedgehog_models::gpt2::Gpt2Config;
use hedgehog_models::llama::LlamaConfig;
use hedgehog_models::vit::VitConfig;

type B = NdArray<f32>;

fn main() -> Result<(), hedgehog_models::ModelError> {
    let device = Default::default();
    let rows: Vec<(&str, usize)> = vec![
        (
            "gpt2 (Gpt2Config::gpt2)",
            Gpt2Config::gpt2().init::<B>(&device)?.num_params(),
        ),
        (
            "gpt2-cpu-small (Gpt2Config::gpt2_cpu_small)",
            Gpt2Config::gpt2_cpu_small()
                .init::<B>(&device)?
                .num_params(),
        ),
        (
            "gpt2-tiny (Gpt2Config::gpt2_tiny)",
            Gpt2Config::gpt2_tiny().init::<B>(&device)?.num_params(),
        ),
        (
            "bert-base-uncased, 2 labels (BertConfig::bert_base_uncased)",
            BertConfig::bert_base_uncased()
                .with_labels(2)
                .init::<B>(&device)?
                .num_params(),
        ),
        (
            "all-MiniLM-L6-v2, encoder + pooler (BertConfig::all_minilm_l6_v2)",
            BertConfig::all_minilm_l6_v2()
                .init::<B>(&device)?
                .num_params(),
        ),
        (
            "vit-base-patch16-224 (VitConfig::vit_base_patch16_224)",
            VitConfig::vit_base_patch16_224()
                .init::<B>(&device)?
                .num_params(),
        ),
        (
            "vit-tiny-28 (VitConfig::vit_tiny_28)",
            VitConfig::vit_tiny_28().init::<B>(&device)?.num_params(),
        ),
        (
            "smollm2-135m (LlamaConfig::smollm2_135m)",
            LlamaConfig::smollm2_135m().init::<B>(&device)?.num_params(),
        ),
    ];
    println!("| preset | parameters |\n|---|---:|");
    for (name, count) in rows {
        println!("| {name} | {count} ({:.1}M) |", count as f64 / 1e6);
    }
    Ok(())
}
