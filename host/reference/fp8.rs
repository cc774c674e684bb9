//! Reference of the blockwise FP8 quantizers, written from DeepGEMM's recipe
//! (`per_token_cast_to_fp8`, `per_block_cast_to_fp8`): f32 operations in the recipe's order, so
//! the kernels must match it bit for bit, and E4M3 rounding by `reference::convert` (checked
//! against PyTorch).

use super::convert::{e4m3fn_to_f32, f32_to_e4m3fn_sat, f32_to_ue8m0_ceil, ue8m0_to_f32};
use crate::error::Result;
use crate::scale::ScaleRounding;

/// Whether `rounding` takes the UE8M0 recipe (`Ceil`) or the f32 scale (`Exact`); `Floor` is
/// [`Error::InvalidValue`](crate::Error::InvalidValue) naming `rounding`, as the quantizers say it.
fn ue8m0(rounding: ScaleRounding) -> Result<bool> {
    crate::validate::fp8_ue8m0(rounding)
}

/// Scale of a group with largest magnitude `amax` (NaN if the group has a NaN): `a / 448` with
/// `a = max(amax, 1e-4)` for `ScaleRounding::Exact`, the power of two at or above it for `Ceil`
/// (the UE8M0 recipe). `Floor` is `Error::InvalidValue { arg: "rounding" }`.
///
/// ```
/// use lowp::ScaleRounding;
/// use lowp::reference::fp8::scale;
/// assert_eq!(scale(448.0, ScaleRounding::Exact)?, 1.0);
/// assert_eq!(scale(500.0, ScaleRounding::Ceil)?, 2.0);
/// assert!(scale(500.0, ScaleRounding::Floor).is_err());
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn scale(amax: f32, rounding: ScaleRounding) -> Result<f32> {
    let up = ue8m0(rounding)?;
    let a = if amax.is_nan() { amax } else { amax.max(1e-4) };
    Ok(if up { ue8m0_to_f32(f32_to_ue8m0_ceil(a / 448.0)) } else { a / 448.0 })
}

/// The multiplier applied before rounding: `448 / a` for `ScaleRounding::Exact`, `1 / scale` for
/// `Ceil`; `Floor` is `Error::InvalidValue { arg: "rounding" }`.
pub fn multiplier(amax: f32, rounding: ScaleRounding) -> Result<f32> {
    let up = ue8m0(rounding)?;
    let a = if amax.is_nan() { amax } else { amax.max(1e-4) };
    Ok(if up { 1.0 / scale(amax, rounding)? } else { 448.0 / a })
}

/// max |v| with NaN propagation.
pub fn amax(values: impl IntoIterator<Item = f32>) -> f32 {
    let mut m = 0.0f32;
    for v in values {
        if v.is_nan() {
            return f32::NAN;
        }
        m = m.max(v.abs());
    }
    m
}

/// Per-token 1×128 groups of a dense `[m, k]` f32 matrix: (codes `[m, k]`, scales `[m, k/128]`
/// row-major), with the scale `rounding` of [`scale`] (`Exact` or `Ceil`; `Floor` is
/// `Error::InvalidValue { arg: "rounding" }`).
pub fn quantize_per_token_group(x: &[f32], m: usize, k: usize, rounding: ScaleRounding) -> Result<(Vec<u8>, Vec<f32>)> {
    ue8m0(rounding)?;
    let g = k / 128;
    let mut q = vec![0u8; m * k];
    let mut s = vec![0f32; m * g];
    for r in 0..m {
        for c in 0..g {
            let group = &x[r * k + c * 128..r * k + c * 128 + 128];
            let a = amax(group.iter().copied());
            s[r * g + c] = scale(a, rounding)?;
            let mult = multiplier(a, rounding)?;
            for (i, v) in group.iter().enumerate() {
                q[r * k + c * 128 + i] = f32_to_e4m3fn_sat(v * mult);
            }
        }
    }
    Ok((q, s))
}

/// Per 128×128 blocks of a dense `[n, k]` f32 matrix: (codes `[n, k]`, scales `[⌈n/128⌉, k/128]`),
/// with the scale `rounding` of [`scale`] (`Exact` or `Ceil`).
pub fn quantize_per_block(w: &[f32], n: usize, k: usize, rounding: ScaleRounding) -> Result<(Vec<u8>, Vec<f32>)> {
    ue8m0(rounding)?;
    let (rb, cb) = (n.div_ceil(128), k / 128);
    let mut q = vec![0u8; n * k];
    let mut s = vec![0f32; rb * cb];
    for bi in 0..rb {
        for bj in 0..cb {
            let rows = bi * 128..((bi + 1) * 128).min(n);
            let a = amax(rows.clone().flat_map(|r| w[r * k + bj * 128..r * k + bj * 128 + 128].iter().copied()));
            s[bi * cb + bj] = scale(a, rounding)?;
            let mult = multiplier(a, rounding)?;
            for r in rows {
                for c in bj * 128..bj * 128 + 128 {
                    q[r * k + c] = f32_to_e4m3fn_sat(w[r * k + c] * mult);
                }
            }
        }
    }
    Ok((q, s))
}

/// `q · scale` in f32 for scale rows of `block_rows` rows (1 or 128), row-major scales.
pub fn dequantize(q: &[u8], rows: usize, k: usize, scales: &[f32], block_rows: usize) -> Vec<f32> {
    let g = k / 128;
    (0..rows * k).map(|i| e4m3fn_to_f32(q[i]) * scales[(i / k / block_rows) * g + (i % k) / 128]).collect()
}
