//! The spec side of the registry: [`FeatureMapConfig`], the `settings` structs and their
//! dispatch to [`MapSettings`], generated from `list.rs`. Below the maps' files, which
//! implement [`MapSettings`] on their `settings` struct.

use super::kind::MapSettings;
use super::list::registered_maps;
use super::registry::config_side;
use crate::types::HedgehogActivation;

registered_maps!(config_side);

fn default_true() -> bool {
    true
}
