//! Typed errors for the attention crate: bad configs and wrong tensor shapes.

/// Everything that can go wrong when building a feature map or calling an attention form.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttentionError {
    /// A tensor handed to an attention form does not have the shape the form needs.
    #[error("{what}: expected shape {expected}, got {got:?}")]
    Shape {
        what: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    /// A feature-map or attention config that cannot be built.
    #[error("invalid {map} config: {reason}")]
    Config { map: &'static str, reason: String },
    /// cosFormer re-weights by position `p / M`; past `M` the cosine turns negative and the
    /// attention weights stop being a distribution.
    #[error(
        "cosFormer position {position} exceeds max_len M = {max_len}; raise `max_len` in the \
         feature-map config (it must not change while decoding)"
    )]
    PositionOutOfRange { position: usize, max_len: usize },
}

pub(crate) fn config_error(map: &'static str, reason: impl Into<String>) -> AttentionError {
    AttentionError::Config {
        map,
        reason: reason.into(),
    }
}

pub(crate) fn check_rank4(
    what: &'static str,
    got: [usize; 4],
    expected: [Option<usize>; 4],
    expected_text: &str,
) -> Result<(), AttentionError> {
    let matches = got
        .iter()
        .zip(expected.iter())
        .all(|(g, e)| e.is_none_or(|e| e == *g));
    if matches {
        Ok(())
    } else {
        Err(AttentionError::Shape {
            what,
            expected: expected_text.to_string(),
            got: got.to_vec(),
        })
    }
}
