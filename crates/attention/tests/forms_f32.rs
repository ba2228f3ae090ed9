//! The forms of linear attention agree in float32 (the CPU backend's fused kernels against the
//! composed quadratic and recurrent references): accumulation in f32 stays within 1e-4. Its own
//! test binary: burn-ndarray fixes one float type per process at the first tensor made.

mod common;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use common::*;
use hedgehog_attention::FeatureMapConfig;
use hedgehog_attention::linear::{self, DEFAULT_EPS};

const B: usize = 2;
const H: usize = 3;
const D: usize = 8;
const DV: usize = 5;

struct Inputs<Bk: Backend> {
    q: Tensor<Bk, 4>,
    k: Tensor<Bk, 4>,
    v: Tensor<Bk, 4>,
}

fn inputs<Bk: Backend>(t: usize, seed: u64) -> Inputs<Bk> {
    Inputs {
        q: randn([B, H, t, D], 0.7, seed),
        k: randn([B, H, t, D], 0.7, seed + 1),
        v: randn([B, H, t, DV], 1.0, seed + 2),
    }
}

fn features<Bk: Backend>(
    config: &FeatureMapConfig,
    x: &Inputs<Bk>,
) -> (Tensor<Bk, 4>, Tensor<Bk, 4>) {
    let attention = linear_attention::<Bk>(config, D, H, 11);
    attention.features(x.q.clone(), x.k.clone(), 0).unwrap()
}

#[test]
fn forms_agree_in_float32() {
    let t = 100;
    let x = inputs::<F32>(t, 3);
    for config in all_maps() {
        let (fq, fk) = features(&config, &x);
        let (reference, _) =
            linear::quadratic(fq.clone(), fk.clone(), x.v.clone(), true, None, DEFAULT_EPS)
                .unwrap();
        let (chunked, _) = linear::chunked(
            fq.clone(),
            fk.clone(),
            x.v.clone(),
            16,
            None,
            None,
            DEFAULT_EPS,
        )
        .unwrap();
        let (recurrent, _) =
            linear::recurrent(fq, fk, x.v.clone(), None, None, DEFAULT_EPS).unwrap();
        let label = config.label();
        assert_tensors_close(
            &chunked,
            &reference,
            1e-4,
            1e-5,
            &format!("{label}: f32 chunked"),
        );
        assert_tensors_close(
            &recurrent,
            &reference,
            1e-4,
            1e-5,
            &format!("{label}: f32 recurrent"),
        );
    }
}
