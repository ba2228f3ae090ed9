//! The layer's weight table: its projections (separate or GPT-2's fused q, k, v) and its
//! feature maps under their checkpoint names.

use burn::tensor::backend::Backend;

use super::SelfAttention;
use crate::error::WeightError;
use crate::feature_maps::map_feature_map;
use crate::nn_weights::map_linear;
use crate::weights::{Layout, WeightVisitor};

impl<B: Backend> SelfAttention<B> {
    /// Hands the projections (and the feature maps, when `with_maps`) to `visitor`.
    /// `names` are the checkpoint names of q, k, v, o (without `.weight`/`.bias`). LoRA
    /// adapters are not part of the table: a checkpoint holds merged weights.
    pub fn map_weights<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        names: [&str; 4],
        layout: Layout,
        maps_prefix: Option<&str>,
    ) -> Result<Self, WeightError> {
        self.query = map_linear(self.query, visitor, names[0], layout)?;
        self.key = map_linear(self.key, visitor, names[1], layout)?;
        self.value = map_linear(self.value, visitor, names[2], layout)?;
        self.output = map_linear(self.output, visitor, names[3], layout)?;
        if let Some(prefix) = maps_prefix {
            self = self.map_feature_maps(visitor, prefix)?;
        }
        Ok(self)
    }

    /// The trainable or constant tensors of the feature maps, under `prefix.{query,key}_map.*`,
    /// and a window's per-head logits `w` (`γ = sigmoid(w)`) as `prefix.window_factors` `[H]`.
    pub fn map_feature_maps<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        prefix: &str,
    ) -> Result<Self, WeightError> {
        if let Some(mut linear) = self.linear.take() {
            linear.query_map =
                map_feature_map(linear.query_map, visitor, &format!("{prefix}.query_map"))?;
            if let Some(key_map) = linear.key_map.take() {
                linear.key_map = Some(map_feature_map(
                    key_map,
                    visitor,
                    &format!("{prefix}.key_map"),
                )?);
            }
            if let Some(factors) = linear.window_factors.take() {
                let name = format!("{prefix}.window_factors");
                let loaded = visitor.param(&name, factors, Layout::AsIs);
                linear.window_factors = Some(loaded.map_err(|e| no_saved_window(e, &name))?);
            }
            self.linear = Some(linear);
        }
        Ok(self)
    }

    /// Multiplies the `[B, T, heads·d]` GPT-2 style fused q,k,v projection into this layer.
    pub fn map_fused_qkv<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        name: &str,
    ) -> Result<Self, WeightError> {
        let weights = visitor.fused(
            &format!("{name}.weight"),
            vec![
                self.query.weight.clone(),
                self.key.weight.clone(),
                self.value.weight.clone(),
            ],
            1,
        )?;
        let [q, k, v]: [_; 3] = weights.try_into().expect("three parts");
        self.query.weight = q;
        self.key.weight = k;
        self.value.weight = v;
        let biases = [
            self.query.bias.take(),
            self.key.bias.take(),
            self.value.bias.take(),
        ];
        if let [Some(bq), Some(bk), Some(bv)] = biases {
            let loaded = visitor.fused(&format!("{name}.bias"), vec![bq, bk, bv], 0)?;
            let [q, k, v]: [_; 3] = loaded.try_into().expect("three parts");
            self.query.bias = Some(q);
            self.key.bias = Some(k);
            self.value.bias = Some(v);
        }
        Ok(self)
    }
}

/// A checkpoint whose config has a window but whose weights have no window factors was saved
/// without one (and its config edited since): say how to add a window instead.
fn no_saved_window(error: WeightError, name: &str) -> WeightError {
    match error {
        WeightError::Missing { path, .. } => WeightError::Config {
            path,
            reason: format!(
                "config.json gives this layer a sliding window but the weights have no `{name}`: \
                 the checkpoint was saved without a window. To add one, load the model with an \
                 attention override (from_pretrained(dir, Some(attention), ..)): the feature maps \
                 then start fresh and γ at window_factor"
            ),
        },
        other => other,
    }
}
