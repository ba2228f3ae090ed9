//! The generators behind the registry in `list.rs`. `config_side!` (expanded in `config.rs`)
//! makes the spec side:
//!
//! - [`FeatureMapConfig`](super::FeatureMapConfig), the serde enum of specs (`kind: hedgehog`),
//!   with each entry's fields as a struct variant;
//! - `settings::<Kind>`, the same fields as a plain struct, on which the map's file implements
//!   [`MapSettings`](super::MapSettings);
//! - the dispatch from the enum to that trait, and [`FeatureMapConfig::examples`], the union of
//!   every map's examples that the shared tests run.
//!
//! `built_side!` (expanded in `mod.rs`, above the maps' files) makes
//! [`FeatureMap`](super::FeatureMap), the module enum of built maps, one variant per entry
//! holding the entry's type (which implements [`MapForward`](super::MapForward)), its dispatch,
//! and [`FeatureMapConfig::init`]. Macros rather than trait objects: burn's `Module` derive needs
//! a concrete enum to save and load, and a serde enum is what makes a misspelt kind or field a
//! parse error.

macro_rules! config_side {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $({
            $(
                $(#[doc = $field_doc:literal])*
                $(#[serde($($field_serde:tt)*)])?
                $field:ident : $field_ty:ty
            ),* $(,)?
        })? => $map:ty
    ),* $(,)?) => {
        /// Serde form of a feature map, as written in YAML specs (`kind: hedgehog`, ...).
        #[derive(Clone, Debug, PartialEq, ::serde::Serialize, ::serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
        pub enum FeatureMapConfig {$(
            $(#[doc = $doc])*
            $kind $({$(
                $(#[doc = $field_doc])*
                $(#[serde($($field_serde)*)])?
                $field: $field_ty,
            )*})?,
        )*}

        /// The fields of each [`FeatureMapConfig`] variant as a struct of its own, on which the
        /// map's file implements [`MapSettings`].
        pub mod settings {
            #[allow(unused_imports)]
            use super::*;
            $(
                $(#[doc = $doc])*
                #[derive(Clone, Debug, PartialEq)]
                pub struct $kind {$($(
                    $(#[doc = $field_doc])*
                    pub $field: $field_ty,
                )*)?}

                impl From<$kind> for FeatureMapConfig {
                    fn from(settings: $kind) -> Self {
                        let $kind { $($($field),*)? } = settings;
                        FeatureMapConfig::$kind $({ $($field),* })?
                    }
                }
            )*
        }

        impl FeatureMapConfig {
            /// The registered kinds, as spelt in specs' `kind:` (snake_case of the variant).
            pub const KINDS: &'static [&'static str] = &[$(stringify!($kind)),*];

            /// Short name used in tables and plots.
            pub fn label(&self) -> String {
                match self {$(
                    Self::$kind $({ $($field),* })? =>
                        settings::$kind { $($($field: $field.clone()),*)? }.label(),
                )*}
            }

            /// Whether the map has parameters trained by distillation or the task loss.
            pub fn is_trainable(&self) -> bool {
                match self {$(
                    Self::$kind { .. } => <settings::$kind as MapSettings>::TRAINABLE,
                )*}
            }

            /// Output width for inputs of width `head_dim`, without building the map.
            pub fn feature_dim(&self, head_dim: usize) -> usize {
                match self {$(
                    Self::$kind $({ $($field),* })? =>
                        settings::$kind { $($($field: $field.clone()),*)? }.feature_dim(head_dim),
                )*}
            }

            /// Every registered map's [`MapSettings::examples`], in registry order.
            pub fn examples() -> Vec<Self> {
                let mut all = Vec::new();
                $(all.extend(
                    <settings::$kind as MapSettings>::examples().into_iter().map(Self::from),
                );)*
                all
            }
        }
    };
}

macro_rules! built_side {
    ($(
        $(#[doc = $doc:literal])*
        $kind:ident $({
            $(
                $(#[doc = $field_doc:literal])*
                $(#[serde($($field_serde:tt)*)])?
                $field:ident : $field_ty:ty
            ),* $(,)?
        })? => $map:ty
    ),* $(,)?) => {
        impl FeatureMapConfig {
            /// Builds the map for heads of width `head_dim`; `num_heads` sizes per-head weights.
            pub fn init<B: Backend>(
                &self,
                head_dim: usize,
                num_heads: usize,
                device: &B::Device,
            ) -> Result<FeatureMap<B>, AttentionError> {
                check_built_sizes(head_dim, num_heads)?;
                Ok(match self {$(
                    Self::$kind $({ $($field),* })? => FeatureMap::$kind(
                        settings::$kind { $($($field: $field.clone()),*)? }
                            .build::<B>(head_dim, num_heads, device)?,
                    ),
                )*})
            }
        }

        /// A built feature map. Trainable maps hold `Param`s; the rest hold only their constants.
        #[derive(::burn::module::Module, Debug)]
        pub enum FeatureMap<B: Backend> {$(
            $(#[doc = $doc])*
            $kind($map),
        )*}

        impl<B: Backend> FeatureMap<B> {
            /// Width of `φ(x)`; equals the last dim of [`FeatureMap::forward`]'s output (tested).
            pub fn feature_dim(&self) -> usize {
                match self {$(Self::$kind(m) => MapForward::<B>::feature_dim(m),)*}
            }

            /// Width of the inputs the map was built for.
            pub fn head_dim(&self) -> usize {
                match self {$(Self::$kind(m) => MapForward::<B>::head_dim(m),)*}
            }

            /// Whether query and key must share one instance ([`MapSettings::SHARES_QUERY_KEY`]).
            pub fn must_share_query_key(&self) -> bool {
                match self {$(
                    Self::$kind(_) => <settings::$kind as MapSettings>::SHARES_QUERY_KEY,
                )*}
            }

            /// `φ(x)` for `x: [B, H, T, d]`, the tokens at positions
            /// `start_position..start_position+T`. Only cosFormer reads positions; call
            /// [`FeatureMap::check_input`] first at a boundary.
            pub fn forward(
                &self,
                x: Tensor<B, 4>,
                role: Role,
                start_position: usize,
            ) -> Tensor<B, 4> {
                match self {$(
                    Self::$kind(m) => MapForward::<B>::forward(m, x, role, start_position),
                )*}
            }

            /// Features for the attention output alone, in the narrowest basis with the same
            /// kernel `φ(q)·φ(k)` (Taylor-2's compressed basis). Not for states or weights a
            /// caller keeps (their width is [`FeatureMap::feature_dim`]).
            pub fn forward_for_output(
                &self,
                x: Tensor<B, 4>,
                role: Role,
                start_position: usize,
            ) -> Tensor<B, 4> {
                match self {$(
                    Self::$kind(m) => {
                        MapForward::<B>::forward_for_output(m, x, role, start_position)
                    }
                )*}
            }

            /// Heads with their own weights; 1 means one map serves any number of heads.
            pub fn weight_heads(&self) -> usize {
                match self {$(Self::$kind(m) => MapForward::<B>::weight_heads(m),)*}
            }

            /// Checks positions `start_position..start_position+len` against the map's range.
            pub fn check_positions(
                &self,
                start_position: usize,
                len: usize,
            ) -> Result<(), AttentionError> {
                match self {$(
                    Self::$kind(m) => MapForward::<B>::check_positions(m, start_position, len),
                )*}
            }
        }
    };
}

pub(super) use {built_side, config_side};
