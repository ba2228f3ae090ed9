//! Elementwise loops of the fused kernels, written so LLVM vectorises them, and compiled twice:
//! for the baseline x86-64 target (SSE2) and for AVX2, picked once at run time. burn's own
//! elementwise ops go through `macerator`; these loops are the few the fused kernels need
//! (`exp` above all), so a small hand-written set is simpler than a SIMD abstraction crate.
//!
//! [`exp`] is Cephes' `expf` (Cody–Waite range reduction and a degree-6 polynomial; within
//! 2 ulp of `f32::exp` over the whole range, tested), branch-free so that it vectorises.

/// `log2(e)` and `ln 2` split in a high part exact in f32 and a low remainder (Cody–Waite).
const LOG2_E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Below this `exp` is subnormal in f32 (returned as 0); above the next it overflows.
const EXP_MIN: f32 = -87.336_55;
const EXP_MAX: f32 = 88.722_83;
/// Adding and subtracting 1.5·2²³ rounds an f32 of magnitude < 2²² to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

#[inline(always)]
fn exp_scalar(x: f32) -> f32 {
    let clamped = x.clamp(EXP_MIN, EXP_MAX);
    let n = (clamped * LOG2_E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = clamped - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    // 2ⁿ in two normal factors: n reaches 128 at the top of the range, where 2ⁿ alone overflows.
    let n = n as i32;
    let (half, rest) = (n >> 1, n - (n >> 1));
    let scaled = e
        * f32::from_bits(((half + 127) << 23) as u32)
        * f32::from_bits(((rest + 127) << 23) as u32);
    // `x < EXP_MIN` also catches −∞ (masked scores); NaN falls through and stays NaN.
    if x < EXP_MIN {
        0.0
    } else if x > EXP_MAX {
        f32::INFINITY
    } else {
        scaled
    }
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for AVX2 when the CPU has it and for
/// the baseline target otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body

            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU supports AVX2, checked just above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversion! {
    /// `x ← exp(x)` elementwise.
    pub fn exp_in_place(x: &mut [f32]) {
        for value in x.iter_mut() {
            *value = exp_scalar(*value);
        }
    }
}

multiversion! {
    /// `x ← exp(x − shift)` elementwise; returns `Σ exp(x − shift)`.
    pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
        let mut sum = 0.0f32;
        for value in x.iter_mut() {
            let e = exp_scalar(*value - shift);
            *value = e;
            sum += e;
        }
        sum
    }
}

multiversion! {
    /// The largest value (−∞ for an empty slice; NaN-propagating like a plain `max` fold is not
    /// needed: a NaN row poisons its exp anyway).
    pub fn max(x: &[f32]) -> f32 {
        let mut lanes = [f32::NEG_INFINITY; 8];
        let mut chunks = x.chunks_exact(8);
        for chunk in &mut chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane = lane.max(v);
            }
        }
        let mut best = lanes.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        for &v in chunks.remainder() {
            best = best.max(v);
        }
        best
    }
}

multiversion! {
    /// `Σ x`, in eight interleaved partial sums (vectorises, and is more accurate than one).
    pub fn sum(x: &[f32]) -> f32 {
        let mut lanes = [0.0f32; 8];
        let mut chunks = x.chunks_exact(8);
        for chunk in &mut chunks {
            for (lane, &v) in lanes.iter_mut().zip(chunk) {
                *lane += v;
            }
        }
        lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
    }
}

multiversion! {
    /// `Σ a·b` in eight interleaved partial sums.
    pub fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut lanes = [0.0f32; 8];
        let mut a_chunks = a.chunks_exact(8);
        let mut b_chunks = b.chunks_exact(8);
        for (ca, cb) in (&mut a_chunks).zip(&mut b_chunks) {
            for ((lane, &x), &y) in lanes.iter_mut().zip(ca).zip(cb) {
                *lane += x * y;
            }
        }
        let tail: f32 = a_chunks
            .remainder()
            .iter()
            .zip(b_chunks.remainder())
            .map(|(x, y)| x * y)
            .sum();
        lanes.iter().sum::<f32>() + tail
    }
}

multiversion! {
    /// `y ← y + alpha · x`.
    pub fn axpy(y: &mut [f32], alpha: f32, x: &[f32]) {
        for (o, &v) in y.iter_mut().zip(x) {
            *o += alpha * v;
        }
    }
}

multiversion! {
    /// `x ← x · alpha`.
    pub fn scale(x: &mut [f32], alpha: f32) {
        for v in x.iter_mut() {
            *v *= alpha;
        }
    }
}

/// `exp` of one value with the kernels' approximation (tests, scalar tails).
pub fn exp(x: f32) -> f32 {
    exp_scalar(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite f32 of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_std_over_the_normal_range() {
        let mut worst = 0;
        let mut x = -87.0f32;
        while x < 88.5 {
            let (ours, std) = (exp(x), x.exp());
            worst = worst.max(ulps(ours, std));
            x += 0.001_37;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
        let mut values: Vec<f32> = (0..1000).map(|i| -20.0 + i as f32 * 0.04).collect();
        let expected: Vec<f32> = values.iter().map(|v| v.exp()).collect();
        exp_in_place(&mut values);
        for (a, b) in values.iter().zip(&expected) {
            assert!(ulps(*a, *b) <= 2, "vector path: {a} vs {b}");
        }
    }

    #[test]
    fn exp_edges_underflow_overflow_and_nan() {
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert_eq!(exp(1000.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn reductions_match_plain_loops() {
        let a: Vec<f32> = (0..37).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..37).map(|i| (i as f32 * 0.11).cos()).collect();
        let plain_dot: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain_dot).abs() < 1e-5);
        assert!((sum(&a) - a.iter().sum::<f32>()).abs() < 1e-5);
        assert_eq!(max(&a), a.iter().cloned().fold(f32::NEG_INFINITY, f32::max));
        assert_eq!(max(&[]), f32::NEG_INFINITY);
    }
}
