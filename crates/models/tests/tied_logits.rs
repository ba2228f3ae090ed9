//! The tied LM head (`common::tied_logits`) against dot products on the host, on both of its
//! paths: fewer rows than the hidden size (`(E · hᵀ)ᵀ`, decoding) and at least as many
//! (`h · Eᵀ`), at odd sizes.

use burn::backend::NdArray;
use burn::tensor::{Tensor, TensorData};
use hedgehog_models::common::tied_logits;

type B = NdArray<f32>;

const HIDDEN: usize = 16;
const VOCAB: usize = 37;

fn values(count: usize, seed: usize) -> Vec<f32> {
    (0..count)
        .map(|i| (((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0) - 1.0)
        .collect()
}

#[test]
fn tied_logits_match_host_dot_products_with_few_and_many_rows() {
    let device = Default::default();
    let embedding = values(VOCAB * HIDDEN, 1);
    // 1 and 5 rows take the decoding path, 21 and 126 the other (HIDDEN = 16).
    for (batch, time) in [(1, 1), (1, 5), (3, 7), (2, 63)] {
        let hidden = values(batch * time * HIDDEN, batch + time);
        let logits = tied_logits(
            Tensor::<B, 3>::from_data(
                TensorData::new(hidden.clone(), [batch, time, HIDDEN]),
                &device,
            ),
            Tensor::<B, 2>::from_data(TensorData::new(embedding.clone(), [VOCAB, HIDDEN]), &device),
        );
        assert_eq!(logits.dims(), [batch, time, VOCAB]);
        let got = logits.into_data().to_vec::<f32>().unwrap();
        for row in 0..batch * time {
            for token in 0..VOCAB {
                let expected: f32 = (0..HIDDEN)
                    .map(|k| hidden[row * HIDDEN + k] * embedding[token * HIDDEN + k])
                    .sum();
                let actual = got[row * VOCAB + token];
                assert!(
                    (actual - expected).abs() <= 1e-5 * (1.0 + expected.abs()),
                    "{batch}×{time}: row {row}, token {token}: {actual} vs {expected}"
                );
            }
        }
    }
}
