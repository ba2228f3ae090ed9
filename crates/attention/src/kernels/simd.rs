//! The elementwise loops of the fused kernels. `exp`, `max`, `sum` and `dot` have explicit
//! AVX2 + FMA bodies (LLVM will not vectorise a float reduction or a clamped polynomial on its
//! own), picked at run time, with scalar fallbacks; `axpy` and `scale` are plain loops compiled
//! for AVX2 and for the baseline target. A handful of loops do not justify a SIMD abstraction
//! crate; the explicit code also keeps every reduction in one fixed order.
//!
//! [`exp`] is Cephes' `expf` (Cody–Waite range reduction and a degree-6 polynomial; within
//! 2 ulp of `f32::exp` over the whole range, tested).

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

/// Whether the explicit AVX2 + FMA paths below can run (checked once; the std macro caches).
#[cfg(target_arch = "x86_64")]
fn has_avx2_fma() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// `x ← exp(x)` elementwise.
pub fn exp_in_place(x: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        unsafe { avx2::exp_shifted_sum(x, 0.0) };
        return;
    }
    for value in x.iter_mut() {
        *value = exp_scalar(*value);
    }
}

/// `out ← elu(x) + 1` (`x + 1` above 0, `exp(x)` at or below).
pub fn elu_plus_one(out: &mut [f32], x: &[f32]) {
    out.copy_from_slice(x);
    exp_in_place(out);
    // A select and an unconditional store (branch-free, so it vectorises; the signs of
    // attention inputs are a coin flip for a branch predictor).
    for (o, &v) in out.iter_mut().zip(x) {
        *o = if v > 0.0 { v + 1.0 } else { *o };
    }
}

/// `x ← exp(x − shift)` elementwise; returns `Σ exp(x − shift)`.
pub fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { avx2::exp_shifted_sum(x, shift) };
    }
    let mut total = 0.0f32;
    for value in x.iter_mut() {
        let e = exp_scalar(*value - shift);
        *value = e;
        total += e;
    }
    total
}

/// The largest value (−∞ for an empty slice). NaN handling is not specified: a NaN row
/// poisons its `exp` and sum anyway.
pub fn max(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { avx2::max(x) };
    }
    x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b))
}

/// `Σ x`, in eight interleaved partial sums (a fixed order: the same slice always gives the
/// same bits, wherever it sits in memory).
pub fn sum(x: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { avx2::dot(x, None) };
    }
    x.iter().sum()
}

/// `Σ a·b` in eight interleaved partial sums.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "dot of slices of different lengths");
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: the CPU has AVX2 and FMA, checked just above.
        return unsafe { avx2::dot(a, Some(b)) };
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The AVX2 + FMA bodies: eight lanes at a time with unaligned loads (so results never depend
/// on where a buffer sits), the remainder through the scalar code.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{EXP_MAX, EXP_MIN, LN2_HI, LN2_LO, LOG2_E, exp_scalar};

    /// Cephes' `expf` on eight lanes, as [`exp_scalar`] (with fused multiply-adds).
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        // max/min return their second operand when one is NaN: NaN survives the clamp.
        let clamped = _mm256_min_ps(
            _mm256_set1_ps(EXP_MAX),
            _mm256_max_ps(_mm256_set1_ps(EXP_MIN), x),
        );
        let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm256_mul_ps(clamped, _mm256_set1_ps(LOG2_E)),
        );
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HI), clamped);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LO), r);
        let mut p = _mm256_set1_ps(1.987_569_1e-4);
        for c in [
            1.398_199_9e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let e = _mm256_fmadd_ps(
            p,
            _mm256_mul_ps(r, r),
            _mm256_add_ps(r, _mm256_set1_ps(1.0)),
        );
        let n = _mm256_cvtps_epi32(n);
        let half = _mm256_srai_epi32::<1>(n);
        let rest = _mm256_sub_epi32(n, half);
        let bias = _mm256_set1_epi32(127);
        let pow =
            |k: __m256i| _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(k, bias)));
        let scaled = _mm256_mul_ps(_mm256_mul_ps(e, pow(half)), pow(rest));
        let under = _mm256_cmp_ps::<_CMP_LT_OQ>(x, _mm256_set1_ps(EXP_MIN));
        let over = _mm256_cmp_ps::<_CMP_GT_OQ>(x, _mm256_set1_ps(EXP_MAX));
        let scaled = _mm256_andnot_ps(under, scaled);
        _mm256_blendv_ps(scaled, _mm256_set1_ps(f32::INFINITY), over)
    }

    /// Horizontal sum of eight lanes, in a fixed order.
    #[target_feature(enable = "avx2,fma")]
    fn hsum(v: __m256) -> f32 {
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5]))
            + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]))
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn exp_shifted_sum(x: &mut [f32], shift: f32) -> f32 {
        let shift8 = _mm256_set1_ps(shift);
        let mut total = _mm256_setzero_ps();
        let mut chunks = x.chunks_exact_mut(8);
        for chunk in &mut chunks {
            // SAFETY: `chunk` holds exactly eight f32.
            unsafe {
                let e = exp8(_mm256_sub_ps(_mm256_loadu_ps(chunk.as_ptr()), shift8));
                _mm256_storeu_ps(chunk.as_mut_ptr(), e);
                total = _mm256_add_ps(total, e);
            }
        }
        let mut tail = 0.0f32;
        for value in chunks.into_remainder() {
            let e = exp_scalar(*value - shift);
            *value = e;
            tail += e;
        }
        hsum(total) + tail
    }

    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn max(x: &[f32]) -> f32 {
        let mut best = _mm256_set1_ps(f32::NEG_INFINITY);
        let mut chunks = x.chunks_exact(8);
        for chunk in &mut chunks {
            // SAFETY: `chunk` holds exactly eight f32.
            best = _mm256_max_ps(best, unsafe { _mm256_loadu_ps(chunk.as_ptr()) });
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds eight f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), best) };
        lanes
            .iter()
            .chain(chunks.remainder())
            .fold(f32::NEG_INFINITY, |a, &b| a.max(b))
    }

    /// `Σ a·b`, or `Σ a` without `b`.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn dot(a: &[f32], b: Option<&[f32]>) -> f32 {
        let mut total = _mm256_setzero_ps();
        let full = a.len() / 8 * 8;
        for i in (0..full).step_by(8) {
            // SAFETY: `i + 8 <= full <= a.len()`, and `b` has `a`'s length (checked by callers).
            unsafe {
                let x = _mm256_loadu_ps(a.as_ptr().add(i));
                total = match b {
                    Some(b) => _mm256_fmadd_ps(x, _mm256_loadu_ps(b.as_ptr().add(i)), total),
                    None => _mm256_add_ps(total, x),
                };
            }
        }
        let tail: f32 = match b {
            Some(b) => a[full..].iter().zip(&b[full..]).map(|(x, y)| x * y).sum(),
            None => a[full..].iter().sum(),
        };
        hsum(total) + tail
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
