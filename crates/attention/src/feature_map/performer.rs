use burn::module::Module;
use burn::tensor::{Tensor, TensorData, backend::Backend};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use super::config::settings;
use super::kind::{MapForward, MapSettings};
use crate::error::{AttentionError, config_error};
use crate::types::Role;

/// FAVOR+ positive random features (Choromanski et al. 2021, "Rethinking Attention with
/// Performers"; lucidrains/performer-pytorch `softmax_kernel`):
/// `φ(x) = m^{-1/2}·exp(W x̃ − ‖x̃‖²/2)`, `x̃ = x·d^{-1/4}`, so that
/// `E[φ(q)·φ(k)] = exp(q·k/√d)`.
///
/// `W: m × d` stacks orthogonal Gaussian blocks (rows scaled by the norms of fresh Gaussian
/// vectors, performer-pytorch's `scaling = 0`), drawn from a seed. The exponent is at most
/// `‖w‖²/2` (about `d/2`), so no rescaling is needed to stay finite in f32.
///
/// With `stabilize_queries`, the query side subtracts its per-token max exponent as FAVOR+'s
/// reference does. That factor cancels only when `ε = 0` (it rescales the effective `ε` of the
/// normaliser), so it is off by default; the key side is never rescaled (it would re-weight keys).
#[derive(Module, Debug)]
pub struct Performer<B: Backend> {
    /// `[m, d]`; a constant, not trained (redraw it with [`Performer::redraw`]).
    pub projection: Tensor<B, 2>,
    pub stabilize_queries: bool,
}

impl<B: Backend> Performer<B> {
    pub fn new(
        head_dim: usize,
        num_features: usize,
        seed: u64,
        stabilize_queries: bool,
        device: &B::Device,
    ) -> Result<Self, AttentionError> {
        if num_features == 0 {
            return Err(config_error(
                "performer",
                "num_features (m) must be positive",
            ));
        }
        Ok(Self {
            projection: orthogonal_gaussian(num_features, head_dim, seed, device),
            stabilize_queries,
        })
    }

    /// From a given projection `[m, d]` (loading, fixtures).
    pub fn from_projection(projection: Tensor<B, 2>, stabilize_queries: bool) -> Self {
        Self {
            projection,
            stabilize_queries,
        }
    }

    /// Draws a new projection from `seed`, as FAVOR+'s optional feature redraw does.
    pub fn redraw(&mut self, seed: u64) {
        let [m, d] = self.projection.dims();
        self.projection = orthogonal_gaussian(m, d, seed, &self.projection.device());
    }

    pub fn forward(&self, x: Tensor<B, 4>, role: Role) -> Tensor<B, 4> {
        let [b, h, t, d] = x.dims();
        let [m, _] = self.projection.dims();
        let x = x.mul_scalar((d as f64).powf(-0.25));
        let half_norm = x.clone().powi_scalar(2).sum_dim(3).div_scalar(2.0); // [B, H, T, 1]
        let projected = x
            .reshape([b * h * t, d])
            .matmul(self.projection.clone().transpose())
            .reshape([b, h, t, m]);
        let exponent = projected - half_norm;
        let exponent = match role {
            Role::Query if self.stabilize_queries => {
                let row_max = exponent.clone().max_dim(3).detach();
                exponent - row_max
            }
            _ => exponent,
        };
        exponent.exp().div_scalar((m as f64).sqrt())
    }
}

impl MapSettings for settings::Performer {
    type Map<B: Backend> = Performer<B>;
    const TRAINABLE: bool = false;

    fn label(&self) -> String {
        "Performer".into()
    }

    fn feature_dim(&self, _head_dim: usize) -> usize {
        self.num_features
    }

    fn build<B: Backend>(
        &self,
        head_dim: usize,
        _num_heads: usize,
        device: &B::Device,
    ) -> Result<Performer<B>, AttentionError> {
        Performer::new(
            head_dim,
            self.num_features,
            self.seed,
            self.stabilize_queries,
            device,
        )
    }

    fn examples() -> Vec<Self> {
        vec![Self {
            num_features: 24,
            seed: 7,
            stabilize_queries: false,
        }]
    }
}

impl<B: Backend> MapForward<B> for Performer<B> {
    fn feature_dim(&self) -> usize {
        self.projection.dims()[0]
    }

    fn head_dim(&self) -> usize {
        self.projection.dims()[1]
    }

    fn forward(&self, x: Tensor<B, 4>, role: Role, _start_position: usize) -> Tensor<B, 4> {
        Performer::forward(self, x, role)
    }
}

/// `m × d` matrix of orthogonal Gaussian blocks: each `d × d` block is the Q of a Gaussian
/// matrix (Gram–Schmidt, f64), rows then scaled by the norm of an independent `N(0, I_d)` draw.
fn orthogonal_gaussian<B: Backend>(
    m: usize,
    d: usize,
    seed: u64,
    device: &B::Device,
) -> Tensor<B, 2> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut gaussian =
        |n: usize| -> Vec<f64> { (0..n).map(|_| StandardNormal.sample(&mut rng)).collect() };
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(m);
    while rows.len() < m {
        let block = gaussian(d * d);
        let mut basis: Vec<Vec<f64>> = Vec::with_capacity(d);
        for r in 0..d {
            let mut v = block[r * d..(r + 1) * d].to_vec();
            for u in &basis {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            v.iter_mut().for_each(|a| *a /= norm);
            basis.push(v);
        }
        rows.extend(basis.into_iter().take(m - rows.len()));
    }
    let mut flat = Vec::with_capacity(m * d);
    for row in rows {
        let scale = gaussian(d).iter().map(|a| a * a).sum::<f64>().sqrt();
        flat.extend(row.into_iter().map(|a| a * scale));
    }
    Tensor::from_data(
        TensorData::new(flat, [m, d]).convert::<B::FloatElem>(),
        device,
    )
}
