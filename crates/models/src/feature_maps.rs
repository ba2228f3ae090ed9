//! Checkpoint names of feature-map tensors, for saving and loading converted models.

use burn::tensor::backend::Backend;
use hedgehog_attention::FeatureMap;
use hedgehog_attention::feature_map::HeadAffine;

use crate::error::WeightError;
use crate::weights::{Layout, WeightVisitor};

fn map_affine<B: Backend, V: WeightVisitor<B>>(
    mut affine: HeadAffine<B>,
    visitor: &mut V,
    prefix: &str,
) -> Result<HeadAffine<B>, WeightError> {
    affine.weight = visitor.param(&format!("{prefix}.weight"), affine.weight, Layout::AsIs)?;
    affine.bias = visitor.param(&format!("{prefix}.bias"), affine.bias, Layout::AsIs)?;
    Ok(affine)
}

/// Hedgehog/T2R `(W, b)` as `prefix.weight` `[H_w, d, d']` and `prefix.bias` `[H_w, 1, d']`;
/// Performer's projection as `prefix.projection`; parameter-free maps store nothing.
pub fn map_feature_map<B: Backend, V: WeightVisitor<B>>(
    map: FeatureMap<B>,
    visitor: &mut V,
    prefix: &str,
) -> Result<FeatureMap<B>, WeightError> {
    Ok(match map {
        FeatureMap::Hedgehog(mut m) => {
            m.affine = map_affine(m.affine, visitor, prefix)?;
            FeatureMap::Hedgehog(m)
        }
        FeatureMap::T2r(mut m) => {
            m.affine = map_affine(m.affine, visitor, prefix)?;
            FeatureMap::T2r(m)
        }
        FeatureMap::Performer(mut m) => {
            m.projection = visitor.constant(&format!("{prefix}.projection"), m.projection)?;
            FeatureMap::Performer(m)
        }
        other => other,
    })
}
