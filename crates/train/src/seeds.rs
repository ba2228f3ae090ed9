//! Seeds as pure functions of (run seed, stage, step, micro-batch): what makes resume exact.

/// A deterministic seed for (run seed, stage, step, micro-batch).
pub(crate) fn derived_seed(seed: u64, stage: usize, step: usize, micro: usize) -> u64 {
    let mut h = seed ^ 0x9E37_79B9_7F4A_7C15;
    for v in [stage as u64, step as u64, micro as u64] {
        h = (h ^ v).wrapping_mul(0x100_0000_01b3).rotate_left(17);
    }
    h
}
