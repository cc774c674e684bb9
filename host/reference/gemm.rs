//! Reference of the Hopper GEMMs (`lowp::gemm`): float64 rows from the dequantized inputs, which
//! the tests compare the kernels' bf16 outputs against within a bound (the kernels round once per
//! k-block and at the output, so bit-exactness is not expected).

use super::convert::e4m3fn_to_f32;

/// Row `m` of the blockwise FP8 GEMM ([`crate::gemm::blockwise_fp8`]) in float64 from the
/// dequantized inputs:
/// `out[m, n] = Σ_k (e4m3(a[m,k]) · sa(m, k/128)) · (e4m3(b[n,k]) · sb[n/128][k/128])`.
/// `a` row-major `[·, k]` E4M3 bits, `sa(m, g)` given by `sa_at`, `b` `[n, k]`, `sb`
/// `[⌈n/128⌉, k/128]` row-major. A grouped GEMM's row is this row against its expert's `b` and `sb`.
pub fn blockwise_fp8_row(
    a: &[u8],
    m: usize,
    sa_at: impl Fn(usize, usize) -> f32,
    b: &[u8],
    sb: &[f32],
    n: usize,
    k: usize,
) -> Vec<f64> {
    let g = k / 128;
    let arow: Vec<f64> = (0..k).map(|c| e4m3fn_to_f32(a[m * k + c]) as f64 * sa_at(m, c / 128) as f64).collect();
    (0..n)
        .map(|j| {
            let brow = &b[j * k..(j + 1) * k];
            let mut acc = 0.0f64;
            for blk in 0..g {
                let s = sb[(j / 128) * g + blk] as f64;
                let mut part = 0.0f64;
                for c in blk * 128..blk * 128 + 128 {
                    part += arow[c] * e4m3fn_to_f32(brow[c]) as f64;
                }
                acc += part * s;
            }
            acc
        })
        .collect()
}
