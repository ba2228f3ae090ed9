//! Safe strided views over `f32` slices and `out (+)= a · b` on them, through the `gemm` crate
//! (packing, AVX2/AVX-512 microkernels picked at run time; the same crate burn's `flex` backend
//! uses). Transposes are free: a view only swaps its strides.

use gemm::Parallelism;

/// A read-only `rows × cols` matrix view: element `(i, j)` is `data[i·row_stride + j·col_stride]`.
#[derive(Clone, Copy, Debug)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> Mat<'a> {
    /// Row-major `rows × cols` from the start of `data`.
    #[track_caller]
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols, 1)
    }

    #[track_caller]
    pub fn strided(
        data: &'a [f32],
        rows: usize,
        cols: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Self {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * row_stride + (cols - 1) * col_stride;
            assert!(
                last < data.len(),
                "matrix view {rows}×{cols} (strides {row_stride}, {col_stride}) past a slice of {}",
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride,
        }
    }

    /// The transpose (no copy).
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A mutable row-major `rows × cols` matrix view with row stride `row_stride`.
#[derive(Debug)]
pub struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    #[track_caller]
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::strided(data, rows, cols, cols)
    }

    #[track_caller]
    pub fn strided(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        if rows > 0 && cols > 0 {
            assert!(
                (rows - 1) * row_stride + cols <= data.len(),
                "matrix view {rows}×{cols} (row stride {row_stride}) past a slice of {}",
                data.len()
            );
        }
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// `out ← scale · a·b` (or `out ← out + scale · a·b` when `accumulate`), on this thread.
#[track_caller]
pub fn matmul(out: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, scale: f32, accumulate: bool) {
    run(out, a, b, scale, accumulate, Parallelism::None);
}

/// [`matmul`] split over rayon's threads: for the few large products (the LM head), never
/// inside a kernel that already runs one task per head.
#[track_caller]
pub fn matmul_parallel(out: MatMut<'_>, a: Mat<'_>, b: Mat<'_>, scale: f32, accumulate: bool) {
    let threads = rayon::current_num_threads();
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    run(out, a, b, scale, accumulate, parallelism);
}

#[track_caller]
fn run(
    out: MatMut<'_>,
    a: Mat<'_>,
    b: Mat<'_>,
    scale: f32,
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(
        a.cols == b.rows && out.rows == a.rows && out.cols == b.cols,
        "matmul shapes: out {}×{}, a {}×{}, b {}×{}",
        out.rows,
        out.cols,
        a.rows,
        a.cols,
        b.rows,
        b.cols
    );
    if out.rows == 0 || out.cols == 0 {
        return;
    }
    if a.cols == 0 {
        if !accumulate {
            for row in out.data.chunks_mut(out.row_stride).take(out.rows) {
                row[..out.cols].fill(0.0);
            }
        }
        return;
    }
    // SAFETY: every view was bounds-checked at construction against its slice (the largest
    // index it can touch is inside it), `out` is borrowed mutably and so aliases neither input,
    // and the shapes agree (checked above).
    unsafe {
        gemm::gemm(
            out.rows,
            out.cols,
            a.cols,
            out.data.as_mut_ptr(),
            1,
            out.row_stride as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn products_and_transposed_views_match_a_naive_loop() {
        let (m, k, n) = (7, 5, 3);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.3).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.7).cos()).collect();
        let expected = naive(&a, &b, m, k, n);
        let mut out = vec![1.0; m * n];
        matmul(
            MatMut::new(&mut out, m, n),
            Mat::new(&a, m, k),
            Mat::new(&b, k, n),
            1.0,
            false,
        );
        for (x, y) in out.iter().zip(&expected) {
            assert!((x - y).abs() < 1e-5);
        }
        // (bᵀ aᵀ)ᵀ = a b, accumulated twice with scale 0.5.
        let mut acc = vec![0.0; n * m];
        for _ in 0..2 {
            matmul(
                MatMut::new(&mut acc, n, m),
                Mat::new(&b, k, n).t(),
                Mat::new(&a, m, k).t(),
                0.5,
                true,
            );
        }
        for i in 0..m {
            for j in 0..n {
                assert!((acc[j * m + i] - expected[i * n + j]).abs() < 1e-5);
            }
        }
    }

    #[test]
    #[should_panic(expected = "past a slice")]
    fn a_view_past_its_slice_is_refused() {
        let data = [0.0f32; 5];
        let _ = Mat::new(&data, 2, 3);
    }
}
