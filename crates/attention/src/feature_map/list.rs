//! The registry: every feature map, once. An entry is the map's `kind:` with the fields a spec
//! gives it (their docs first, then at most one `#[serde(...)]`) and the type it builds into.
//! The macro hands the list to a generator (`registry.rs`), so the spec side (`config.rs`)
//! and the built side (`mod.rs`) are generated from this one list, each where it belongs.

macro_rules! registered_maps {
    ($generate:ident) => {
        $generate! {
            /// `elu(x) + 1` (Katharopoulos et al. 2020).
            Elu => EluPlusOne,
            /// `max(x, 1e-6)`: ReLU kept strictly positive so no row sum is zero.
            Relu => ReluMap,
            /// FAVOR+ positive orthogonal random features (Choromanski et al. 2021).
            Performer {
                /// Number of random features `m`.
                num_features: usize,
                /// Seed of the orthogonal Gaussian draw.
                #[serde(default)]
                seed: u64,
                /// Subtract each query's max exponent (FAVOR+'s trick; exact only for `ε = 0`).
                #[serde(default)]
                stabilize_queries: bool,
            } => Performer<B>,
            /// cosFormer's ReLU features re-weighted by `sin, cos(π p / 2M)` at 1-based
            /// position `p`.
            Cosformer {
                /// The fixed `M`; positions past it are an error.
                max_len: usize,
            } => CosFormer,
            /// `exp(t·x)`: spiky but not monotonic in `q·k` (the paper's control).
            Exp { t: f64 } => ExpMap,
            /// Second-order Taylor expansion of `exp(q·k/√d)`.
            Taylor {
                /// Keep only the upper triangle of `x xᵀ` (`1 + d + d(d+1)/2` features).
                #[serde(default)]
                compressed: bool,
            } => Taylor,
            /// Hedgehog's trainable map `[σ(xW+b), σ(−(xW+b))]`.
            Hedgehog {
                activation: HedgehogActivation,
                /// `d'`: width of `xW+b`; the map returns `2d'` features.
                feature_dim: usize,
                /// One `(W, b)` per head (true) or shared across heads.
                #[serde(default = "default_true")]
                per_head: bool,
            } => Hedgehog<B>,
            /// Transformer-to-RNN's trainable `relu(xW+b)` (Kasai et al. 2021).
            T2r {
                feature_dim: usize,
                #[serde(default = "default_true")]
                per_head: bool,
            } => T2r<B>,
        }
    };
}

pub(super) use registered_maps;
