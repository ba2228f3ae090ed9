//! Fidelity: how far the map's weights are from softmax's, as KL divergence.

/// `â` is floored here before its logarithm: a linear map can put exactly zero weight on a key
/// that softmax never does, and KL would be infinite.
pub const KL_FLOOR: f64 = 1e-12;

/// `KL(a‖â) = Σ a (ln a − ln max(â, 10⁻¹²))`, with `0·ln 0 = 0`.
pub fn kl(teacher: &[f64], student: &[f64]) -> f64 {
    teacher
        .iter()
        .zip(student)
        .filter(|&(&a, _)| a > 0.0)
        .map(|(&a, &s)| a * (a.ln() - s.max(KL_FLOOR).ln()))
        .sum()
}
