//! Feature maps `φ: R^d → R^d'` for linear attention (method.md §2), one file each.
//!
//! Each map's file implements [`MapSettings`] (the spec side) and [`MapForward`] (the built
//! map) from `kind.rs`. `list.rs` lists every map once; from that list `registry.rs`'s macros
//! generate the serde enum [`FeatureMapConfig`] (in `config.rs`, below the maps' files: a typo
//! in a spec is a parse error) and, here above them, the module enum [`FeatureMap`] and the
//! dispatch of both. Adding a map is its file plus one entry in `list.rs`; the shared tests run
//! every registered map through [`FeatureMapConfig::examples`]. Every map acts on `[B, H, T, d]` and returns `[B, H, T, feature_dim()]`.

pub mod affine;
mod config;
mod cosformer;
mod elu;
mod exp;
mod hedgehog;
mod kind;
mod list;
mod performer;
mod registry;
mod relu;
mod t2r;
mod taylor;

pub use crate::types::Role;
pub use affine::HeadAffine;
pub use config::{FeatureMapConfig, settings};
pub use cosformer::CosFormer;
pub use elu::EluPlusOne;
pub use exp::ExpMap;
pub use hedgehog::{Hedgehog, HedgehogActivation};
pub use kind::{MapForward, MapSettings};
pub use performer::Performer;
pub use relu::ReluMap;
pub use t2r::T2r;
pub use taylor::Taylor;

use burn::tensor::{Tensor, backend::Backend};

use crate::error::AttentionError;
use list::registered_maps;
use registry::built_side;

registered_maps!(built_side);

/// The sizes every map is built for must be positive (a zero would build an empty map).
fn check_built_sizes(head_dim: usize, num_heads: usize) -> Result<(), AttentionError> {
    if head_dim == 0 || num_heads == 0 {
        return Err(crate::error::config_error(
            "feature map",
            format!("head_dim ({head_dim}) and num_heads ({num_heads}) must be positive"),
        ));
    }
    Ok(())
}

impl<B: Backend> FeatureMap<B> {
    /// Checks that `x: [B, H, T, d]` fits this map, including cosFormer's position limit.
    pub fn check_input(
        &self,
        dims: [usize; 4],
        start_position: usize,
    ) -> Result<(), AttentionError> {
        let expected_heads = self.weight_heads();
        let head_ok = expected_heads == 1 || dims[1] == expected_heads;
        if dims[3] != self.head_dim() || !head_ok {
            return Err(AttentionError::Shape {
                what: "feature map input",
                expected: format!(
                    "[B, {}, T, {}]",
                    if expected_heads == 1 {
                        "H".to_string()
                    } else {
                        expected_heads.to_string()
                    },
                    self.head_dim()
                ),
                got: dims.to_vec(),
            });
        }
        self.check_positions(start_position, dims[2])
    }
}
