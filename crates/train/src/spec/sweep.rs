//! `--set dotted.key=value` overrides and `sweep:` grids.

use std::collections::BTreeMap;

use super::Spec;

/// `key=value` with a dotted key (`stages.0.steps=10`); the value is parsed as YAML.
pub(super) fn apply_override(root: &mut serde_json::Value, assignment: &str) -> Result<(), String> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| format!("--set `{assignment}`: expected dotted.key=value"))?;
    let value: serde_json::Value = serde_saphyr::from_str(raw)
        .map_err(|e| format!("--set {key}: value `{raw}` is not valid YAML: {e}"))?;
    set_dotted(root, key, value).map_err(|e| format!("--set {e}"))
}

/// Sets `key` (dotted; numbers index lists) in `root` to `value`.
fn set_dotted(
    root: &mut serde_json::Value,
    key: &str,
    value: serde_json::Value,
) -> Result<(), String> {
    let mut node = root;
    let parts: Vec<&str> = key.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        node = match node {
            serde_json::Value::Object(map) => {
                if last {
                    map.insert(part.to_string(), value);
                    return Ok(());
                }
                map.entry(part.to_string())
                    .or_insert(serde_json::Value::Object(Default::default()))
            }
            serde_json::Value::Array(items) => {
                let index: usize = part
                    .parse()
                    .map_err(|_| format!("{key}: `{part}` indexes a list, use a number"))?;
                let len = items.len();
                let item = items.get_mut(index).ok_or_else(|| {
                    format!("{key}: index {index} is past the list's {len} entries")
                })?;
                if last {
                    *item = value;
                    return Ok(());
                }
                item
            }
            _ => {
                return Err(format!(
                    "{key}: `{part}` is below a value that is not a mapping or list"
                ));
            }
        };
    }
    Ok(())
}

/// One run of a spec: the spec with a sweep point applied (`point` is empty without a sweep).
#[derive(Clone, Debug, PartialEq)]
pub struct SweepPoint {
    pub point: BTreeMap<String, serde_json::Value>,
    pub spec: Spec,
}

impl SweepPoint {
    /// `key=value, ...` for logs (values in compact JSON).
    pub fn describe(&self) -> String {
        self.point
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl Spec {
    /// The runs of this spec: one per combination of the `sweep:` values (in key order, the
    /// last key varying fastest), or the spec itself.
    pub fn expand(&self) -> Result<Vec<SweepPoint>, String> {
        if self.sweep.is_empty() {
            return Ok(vec![SweepPoint {
                point: BTreeMap::new(),
                spec: self.clone(),
            }]);
        }
        let mut base = self.clone();
        base.sweep.clear();
        let tree = serde_json::to_value(&base).map_err(|e| e.to_string())?;
        let mut points: Vec<BTreeMap<String, serde_json::Value>> = vec![BTreeMap::new()];
        for (key, values) in &self.sweep {
            if values.is_empty() {
                return Err(format!("sweep.{key}: give at least one value"));
            }
            points = points
                .into_iter()
                .flat_map(|point| {
                    values.iter().map(move |value| {
                        let mut point = point.clone();
                        point.insert(key.clone(), value.clone());
                        point
                    })
                })
                .collect();
        }
        points
            .into_iter()
            .map(|point| {
                let mut tree = tree.clone();
                for (key, value) in &point {
                    set_dotted(&mut tree, key, value.clone()).map_err(|e| format!("sweep.{e}"))?;
                }
                let spec: Spec = serde_json::from_value(tree).map_err(|e| {
                    format!(
                        "sweep point {}: {e}",
                        serde_json::to_string(&point).unwrap_or_default()
                    )
                })?;
                spec.validate().map_err(|e| {
                    format!(
                        "sweep point {}: {e}",
                        serde_json::to_string(&point).unwrap_or_default()
                    )
                })?;
                Ok(SweepPoint { point, spec })
            })
            .collect()
    }
}
