//! Multi-head self-attention shared by every model, with any attention of `hedgehog-attention`
//! per layer, rotary embeddings and grouped-query heads for Llama-style models, a conversion
//! mode that returns the teacher's and the student's weights, and optional LoRA adapters on
//! the projections (see [`crate::lora`]).

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::{Bool, Tensor, TensorData, activation, backend::Backend};
use hedgehog_attention::linear::{self as linear_forms, LinearState};
use hedgehog_attention::{AttentionConfig, AttentionError, LinearAttention, softmax};

use crate::error::{ModelError, WeightError};
use crate::lora::{Lora, LoraAdapters, LoraConfig, LoraTarget};
use crate::weights::{Layout, WeightVisitor};

/// What a forward pass runs in each attention layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AttentionMode {
    /// The layer's configured attention (softmax or its linear map).
    #[default]
    Configured,
    /// Conversion: the layer's output is the frozen softmax teacher's, and the student's linear
    /// weights are computed beside it for the distillation loss (Hedgehog stage 1).
    Distill,
}

/// Attention weights of one layer, returned on request: `[B, H, T, T]` each.
#[derive(Clone, Debug)]
pub struct AttentionCapture<B: Backend> {
    /// Softmax weights (detached).
    pub teacher: Tensor<B, 4>,
    /// The linear map's weights (`None` for a softmax layer), with gradients to the maps.
    pub student: Option<Tensor<B, 4>>,
    /// Raw scaled scores `q·k/√d` of the teacher (detached).
    pub scores: Tensor<B, 4>,
    /// The linear map's unnormalised kernel `φ(q_i)·φ(k_j)` (`None` for a softmax layer),
    /// 0 where the student's weights are masked; detached. The student's weights are its rows
    /// divided by their sums `+ ε`.
    pub kernel: Option<Tensor<B, 4>>,
}

/// Per-layer decoding cache: softmax keeps keys and values, linear attention its `(S, z)`.
#[derive(Clone, Debug)]
pub enum LayerCache<B: Backend> {
    Empty,
    Softmax {
        keys: Tensor<B, 4>,
        values: Tensor<B, 4>,
    },
    Linear(LinearState<B>),
}

/// Rotary position embedding (Su et al. 2021) in the HF Llama convention (`rotate_half`).
#[derive(Module, Clone, Debug)]
pub struct Rotary {
    pub base: f64,
    pub head_dim: usize,
}

impl Rotary {
    /// Rotates `x: [B, H, T, d]` for positions `start..start+T`.
    pub fn apply<B: Backend>(&self, x: Tensor<B, 4>, start: usize) -> Tensor<B, 4> {
        let [b, h, t, d] = x.dims();
        let half = d / 2;
        let mut cos = Vec::with_capacity(t * d);
        let mut sin = Vec::with_capacity(t * d);
        for position in start..start + t {
            for i in 0..d {
                let frequency = 1.0 / self.base.powf((2 * (i % half)) as f64 / d as f64);
                let angle = position as f64 * frequency;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let device = x.device();
        let table = |values: Vec<f64>| {
            Tensor::<B, 4>::from_data(
                TensorData::new(values, [1, 1, t, d]).convert::<B::FloatElem>(),
                &device,
            )
        };
        let first = x.clone().slice([0..b, 0..h, 0..t, 0..half]);
        let second = x.clone().slice([0..b, 0..h, 0..t, half..d]);
        let rotated = Tensor::cat(vec![second.neg(), first], 3);
        x * table(cos) + rotated * table(sin)
    }
}

/// Sizes and options of one self-attention layer.
#[derive(Clone, Debug)]
pub struct SelfAttentionConfig {
    pub model_dim: usize,
    pub num_heads: usize,
    /// Grouped-query attention: key/value heads (= `num_heads` for plain multi-head).
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub bias: bool,
    pub causal: bool,
    pub dropout: f64,
    pub rope_base: Option<f64>,
    pub attention: AttentionConfig,
    /// Initialiser of the projections (`None`: burn's default); GPT-2 uses N(0, 0.02).
    pub initializer: Option<burn::nn::Initializer>,
}

impl SelfAttentionConfig {
    pub fn init<B: Backend>(&self, device: &B::Device) -> Result<SelfAttention<B>, AttentionError> {
        if !self.num_heads.is_multiple_of(self.num_kv_heads) {
            return Err(AttentionError::Config {
                map: "self-attention",
                reason: format!(
                    "num_heads {} is not a multiple of num_kv_heads {}",
                    self.num_heads, self.num_kv_heads
                ),
            });
        }
        let linear = |input: usize, out: usize| {
            let config = LinearConfig::new(input, out).with_bias(self.bias);
            match &self.initializer {
                Some(initializer) => config.with_initializer(initializer.clone()),
                None => config,
            }
            .init(device)
        };
        let projection = |out: usize| linear(self.model_dim, out);
        Ok(SelfAttention {
            query: projection(self.num_heads * self.head_dim),
            key: projection(self.num_kv_heads * self.head_dim),
            value: projection(self.num_kv_heads * self.head_dim),
            output: linear(self.num_heads * self.head_dim, self.model_dim),
            lora: None,
            linear: self
                .attention
                .init_linear(self.head_dim, self.num_heads, device)?,
            rotary: self.rope_base.map(|base| Rotary {
                base,
                head_dim: self.head_dim,
            }),
            num_heads: self.num_heads,
            num_kv_heads: self.num_kv_heads,
            head_dim: self.head_dim,
            causal: self.causal,
            dropout: DropoutConfig::new(self.dropout).init(),
        })
    }
}

/// Multi-head self-attention with pluggable attention.
#[derive(Module, Debug)]
pub struct SelfAttention<B: Backend> {
    pub query: Linear<B>,
    pub key: Linear<B>,
    pub value: Linear<B>,
    pub output: Linear<B>,
    /// Low-rank updates of the projections (`None`: none attached, or merged).
    pub lora: Option<LoraAdapters<B>>,
    /// `None`: softmax attention.
    pub linear: Option<LinearAttention<B>>,
    pub rotary: Option<Rotary>,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub causal: bool,
    /// On the softmax weights (as in GPT-2, BERT and ViT).
    pub dropout: Dropout,
}

impl<B: Backend> SelfAttention<B> {
    /// `[B, T, heads·d]` → `[B, heads, T, d]`.
    fn split_heads(&self, x: Tensor<B, 3>, heads: usize) -> Tensor<B, 4> {
        let [b, t, _] = x.dims();
        x.reshape([b, t, heads, self.head_dim]).swap_dims(1, 2)
    }

    /// Repeats each key/value head for its group of query heads (HF `repeat_kv`).
    fn repeat_kv(&self, x: Tensor<B, 4>) -> Tensor<B, 4> {
        let groups = self.num_heads / self.num_kv_heads;
        if groups == 1 {
            return x;
        }
        let [b, kv, t, d] = x.dims();
        x.unsqueeze_dim::<5>(2)
            .expand([b, kv, groups, t, d])
            .reshape([b, kv * groups, t, d]) // [B, H, T, d]
    }

    /// `x W + b`, plus the LoRA update `(α / r) · (x A) B` when `target` has an adapter.
    fn projection(&self, linear: &Linear<B>, target: LoraTarget, x: Tensor<B, 3>) -> Tensor<B, 3> {
        match self.lora.as_ref().and_then(|lora| lora.get(target)) {
            Some(adapter) => linear.forward(x.clone()) + adapter.forward(x),
            None => linear.forward(x),
        }
    }

    /// `q, k, v: [B, H, T, d]` for tokens at `start..`, rotated when the layer has RoPE.
    fn project(&self, x: Tensor<B, 3>, start: usize) -> (Tensor<B, 4>, Tensor<B, 4>, Tensor<B, 4>) {
        let q = self.projection(&self.query, LoraTarget::Query, x.clone()); // [B, T, H·d]
        let k = self.projection(&self.key, LoraTarget::Key, x.clone()); // [B, T, H_kv·d]
        let v = self.projection(&self.value, LoraTarget::Value, x);
        let mut q = self.split_heads(q, self.num_heads);
        let mut k = self.split_heads(k, self.num_kv_heads);
        let v = self.split_heads(v, self.num_kv_heads);
        if let Some(rotary) = &self.rotary {
            q = rotary.apply(q, start);
            k = rotary.apply(k, start);
        }
        (q, self.repeat_kv(k), self.repeat_kv(v))
    }

    fn merge(&self, y: Tensor<B, 4>) -> Tensor<B, 3> {
        let [b, h, t, d] = y.dims();
        let y = y.swap_dims(1, 2).reshape([b, t, h * d]); // [B, T, H·d]
        self.projection(&self.output, LoraTarget::Output, y)
    }

    /// The detached kernel `φ(q_i)·φ(k_j)` of the capture: analysis only, no gradient.
    fn kernel(
        &self,
        linear: &LinearAttention<B>,
        q: Tensor<B, 4>,
        k: Tensor<B, 4>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
    ) -> Result<Tensor<B, 4>, AttentionError> {
        Ok(linear
            .kernel(q.detach(), k.detach(), self.causal, key_padding)?
            .detach())
    }

    /// Full-sequence forward: `x: [B, T, D]`, `key_padding: [B, T]` (true = padding).
    ///
    /// With `capture`, also returns the teacher's and student's weights and the student's
    /// kernel (quadratic cost).
    pub fn forward(
        &self,
        x: Tensor<B, 3>,
        key_padding: Option<&Tensor<B, 2, Bool>>,
        mode: AttentionMode,
        capture: bool,
    ) -> Result<(Tensor<B, 3>, Option<AttentionCapture<B>>), AttentionError> {
        let (q, k, v) = self.project(x, 0);
        let use_softmax = self.linear.is_none() || mode == AttentionMode::Distill;
        let mut captured = None;
        let y = if use_softmax && !capture && mode == AttentionMode::Configured {
            // The training and inference path: one fused pass on the CPU backend, no T × T
            // weights; dropout on the weights as `self.dropout` would apply it.
            softmax::output(q, k, v, self.causal, key_padding, self.dropout.prob)?
        } else if use_softmax {
            let weights = softmax::weights(q.clone(), k.clone(), self.causal, key_padding)?;
            if capture || mode == AttentionMode::Distill {
                let (student, kernel) = match &self.linear {
                    Some(linear) => (
                        Some(linear.weights(
                            q.clone().detach(),
                            k.clone().detach(),
                            self.causal,
                            key_padding,
                        )?),
                        Some(self.kernel(linear, q.clone(), k.clone(), key_padding)?),
                    ),
                    None => (None, None),
                };
                captured = Some(AttentionCapture {
                    teacher: weights.clone().detach(),
                    student,
                    scores: softmax::scores(q.detach(), k.detach()),
                    kernel,
                });
            }
            self.dropout.forward(weights).matmul(v)
        } else {
            let linear = self.linear.as_ref().expect("linear layer");
            if capture {
                captured = Some(AttentionCapture {
                    teacher: softmax::weights(q.clone(), k.clone(), self.causal, key_padding)?
                        .detach(),
                    student: Some(linear.weights(
                        q.clone(),
                        k.clone(),
                        self.causal,
                        key_padding,
                    )?),
                    scores: softmax::scores(q.clone().detach(), k.clone().detach()),
                    kernel: Some(self.kernel(linear, q.clone(), k.clone(), key_padding)?),
                });
            }
            linear.forward(q, k, v, self.causal, key_padding)?
        };
        Ok((self.merge(y), captured))
    }

    /// Incremental causal forward for generation: `x: [B, t, D]` are the tokens at
    /// `start..start+t`; `cache` holds what came before and is returned extended.
    pub fn forward_cached(
        &self,
        x: Tensor<B, 3>,
        cache: LayerCache<B>,
        start: usize,
    ) -> Result<(Tensor<B, 3>, LayerCache<B>), AttentionError> {
        let (q, k, v) = self.project(x, start);
        let (y, cache) = match &self.linear {
            None => {
                let (keys, values) = match cache {
                    LayerCache::Softmax { keys, values } => (
                        Tensor::cat(vec![keys, k], 2),
                        Tensor::cat(vec![values, v], 2),
                    ),
                    _ => (k, v),
                };
                let y = softmax::output(q, keys.clone(), values.clone(), true, None, 0.0)?;
                (y, LayerCache::Softmax { keys, values })
            }
            Some(linear) => {
                let state = match cache {
                    LayerCache::Linear(state) => Some(state),
                    _ => None,
                };
                let (fq, fk) = linear.features(q, k, start)?;
                let t = fq.dims()[2];
                let (y, state) = if t == 1 {
                    let [b, h, _, f] = fq.dims();
                    let dv = v.dims()[3];
                    let state =
                        state.unwrap_or_else(|| LinearState::zeros(b, h, f, dv, &fq.device()));
                    let (y, state) = linear_forms::recurrent_step(
                        state,
                        fq.reshape([b, h, f]),
                        fk.reshape([b, h, f]),
                        v.reshape([b, h, dv]),
                        linear.eps,
                    );
                    (y.reshape([b, h, 1, dv]), state)
                } else {
                    linear_forms::chunked(fq, fk, v, linear.chunk_size, None, state, linear.eps)?
                };
                (y, LayerCache::Linear(state))
            }
        };
        Ok((self.merge(y), cache))
    }

    /// Attaches fresh LoRA adapters (`A` Kaiming-uniform, `B = 0`: the outputs do not change)
    /// to the projections `config.targets` lists. Grouped key/value projections get adapters
    /// of their own width `num_kv_heads · head_dim`.
    pub fn attach_lora(
        mut self,
        config: &LoraConfig,
        device: &B::Device,
    ) -> Result<Self, ModelError> {
        config.validate()?;
        if self.lora.is_some() {
            return Err(ModelError::Config(
                "this attention layer already has LoRA adapters: merge_lora before attaching new ones"
                    .into(),
            ));
        }
        self.lora = Some(LoraAdapters {
            query: config.adapter(LoraTarget::Query, &self.query, device),
            key: config.adapter(LoraTarget::Key, &self.key, device),
            value: config.adapter(LoraTarget::Value, &self.value, device),
            output: config.adapter(LoraTarget::Output, &self.output, device),
        });
        Ok(self)
    }

    /// Folds the adapters into the projections, `W ← W + (α / r) · A B`, and removes them; a
    /// layer without adapters is returned as it is.
    pub fn merge_lora(mut self) -> Self {
        let Some(adapters) = self.lora.take() else {
            return self;
        };
        let merge = |linear: Linear<B>, adapter: Option<Lora<B>>| match adapter {
            Some(adapter) => adapter.merge_into(linear),
            None => linear,
        };
        self.query = merge(self.query, adapters.query);
        self.key = merge(self.key, adapters.key);
        self.value = merge(self.value, adapters.value);
        self.output = merge(self.output, adapters.output);
        self
    }

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

    /// The trainable or constant tensors of the feature maps, under `prefix.{query,key}_map.*`.
    pub fn map_feature_maps<V: WeightVisitor<B>>(
        mut self,
        visitor: &mut V,
        prefix: &str,
    ) -> Result<Self, WeightError> {
        if let Some(mut linear) = self.linear.take() {
            linear.query_map = crate::feature_maps::map_feature_map(
                linear.query_map,
                visitor,
                &format!("{prefix}.query_map"),
            )?;
            if let Some(key_map) = linear.key_map.take() {
                linear.key_map = Some(crate::feature_maps::map_feature_map(
                    key_map,
                    visitor,
                    &format!("{prefix}.key_map"),
                )?);
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

/// A `Linear`'s weight and optional bias under `name.weight`, `name.bias`.
pub fn map_linear<B: Backend, V: WeightVisitor<B>>(
    mut linear: Linear<B>,
    visitor: &mut V,
    name: &str,
    layout: Layout,
) -> Result<Linear<B>, WeightError> {
    linear.weight = visitor.param(&format!("{name}.weight"), linear.weight, layout)?;
    if let Some(bias) = linear.bias.take() {
        linear.bias = Some(visitor.param(&format!("{name}.bias"), bias, Layout::AsIs)?);
    }
    Ok(linear)
}

/// GELU as the checkpoints define it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Gelu {
    /// `x Φ(x)` with the exact error function (BERT, ViT: HF `gelu`).
    Exact,
    /// The tanh approximation (GPT-2: HF `gelu_new`).
    Tanh,
}

impl Gelu {
    pub fn apply<B: Backend, const D: usize>(self, x: Tensor<B, D>) -> Tensor<B, D> {
        match self {
            Gelu::Exact => activation::gelu(x),
            Gelu::Tanh => activation::gelu_approximate(x),
        }
    }
}
