//! Float64 reference of RMSNorm and residual-add + RMSNorm, on row-major host matrices with a
//! row stride (in elements).

use crate::Half;

/// `y[r, c] = x[r, c] / sqrt(mean_c(x[r, :]²) + eps) * w[c]`, unrounded (f64).
/// Returns `rows × hidden` values, densely packed.
pub fn rmsnorm<T: Half>(x: &[T], rows: usize, hidden: usize, x_stride: usize, w: &[T], eps: f32) -> Vec<f64> {
    let mut y = Vec::with_capacity(rows * hidden);
    for r in 0..rows {
        let row: Vec<f64> = x[r * x_stride..r * x_stride + hidden].iter().map(|v| v.to_f64()).collect();
        norm_row(&row, w, eps, &mut y);
    }
    y
}

/// `residual += x` (each sum rounded once to `T`), then `y = rmsnorm(residual) * w` on the
/// rounded residual. Returns (new residual rows × hidden, dense; y unrounded).
pub fn add_rmsnorm<T: Half>(
    x: &[T],
    x_stride: usize,
    residual: &[T],
    residual_stride: usize,
    rows: usize,
    hidden: usize,
    w: &[T],
    eps: f32,
) -> (Vec<T>, Vec<f64>) {
    let mut new_res = Vec::with_capacity(rows * hidden);
    let mut y = Vec::with_capacity(rows * hidden);
    for r in 0..rows {
        let sums: Vec<T> = (0..hidden)
            .map(|c| T::from_f64(residual[r * residual_stride + c].to_f64() + x[r * x_stride + c].to_f64()))
            .collect();
        let row: Vec<f64> = sums.iter().map(|v| v.to_f64()).collect();
        norm_row(&row, w, eps, &mut y);
        new_res.extend_from_slice(&sums);
    }
    (new_res, y)
}

fn norm_row<T: Half>(row: &[f64], w: &[T], eps: f32, y: &mut Vec<f64>) {
    let ms = row.iter().map(|v| v * v).sum::<f64>() / row.len() as f64;
    let inv = 1.0 / (ms + eps as f64).sqrt();
    y.extend(row.iter().zip(w).map(|(v, w)| v * inv * w.to_f64()));
}
