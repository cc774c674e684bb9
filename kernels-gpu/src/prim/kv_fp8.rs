//! FP8 KV-cache values: `x / scale` through the scale's reciprocal, bit-identical to IEEE
//! division, and eight values packed into one 8-byte word.
//!
//! `div_by_scale` is pure arithmetic (the host tests compile this file and compare it with `x /
//! s` over every bf16 and f16 value and many scales). With `r = RN(1/s)` (the host rounds it), `q0 =
//! RN(x·r)` is within 1.5 ulp of `x/s`; two Newton corrections `q ← RN(q + RN(x − s·q)·r)`, the
//! residual exact inside an FMA, give the correctly rounded quotient (the fast path of
//! `div.rn.f32`, without its reciprocal approximation and slow path). The corrections are exact
//! only away from overflow and underflow, so they run for `|q0| ∈ [2^-11, 2^20]` and scales in
//! `RECIP_RANGE`; outside, the FP8 result does not depend on them (`|x/s| < 2^-10·(1 − 2^-22)`
//! rounds to ±0, `|x/s| > 2^19` saturates to ±448), and NaN stays NaN.

#[cfg(target_arch = "nvptx64")]
use core::f32::math::mul_add;
/// The host's f32 fused multiply-add (like PTX `fma.rn.f32`).
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn mul_add(x: f32, a: f32, b: f32) -> f32 {
    x.mul_add(a, b)
}

/// Scales whose reciprocal the kernel may use: `[2^-64, 2^64]` (residuals of quotients in
/// `[2^-11, 2^20]` stay normal). The host passes 0 as the reciprocal outside it: the kernel
/// divides.
pub const RECIP_RANGE: (f32, f32) = (f32::from_bits((127 - 64) << 23), f32::from_bits((127 + 64) << 23));

/// `x / s` rounded to nearest, given `r = RN(1 / s)` with `s` in `RECIP_RANGE`.
#[inline(always)]
pub fn div_by_scale(x: f32, s: f32, r: f32) -> f32 {
    let q = x * r;
    let a = q.abs();
    if !(1.0 / 2048.0..=1_048_576.0).contains(&a) {
        return q;
    }
    let q = mul_add(mul_add(-q, s, x), r, q);
    mul_add(mul_add(-q, s, x), r, q)
}

/// Eight f32 → E4M3FN bytes (RNE, saturating at ±448, NaN → 0x7f), element 0 in the low byte.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
pub fn f32x8_to_e4m3x8_sat(v: [f32; 8]) -> u64 {
    let mut out = 0u64;
    // Unrolled: a run-time index would put `v` in local memory.
    crate::unroll!(i in [0, 2, 4, 6] {
        out |= (e4m3x2(v[i], v[i + 1]) as u64) << (8 * i);
    });
    out
}

/// Two f32 → E4M3FN bytes, `lo` in bits 0..8: one `cvt.rn.satfinite.e4m3x2.f32` (sm_89+), the
/// software conversion otherwise.
#[cfg(target_arch = "nvptx64")]
#[inline(always)]
fn e4m3x2(lo: f32, hi: f32) -> u16 {
    #[cfg(target_feature = "sm_89")]
    {
        let out: u16;
        // SAFETY: pure register conversion, available from sm_89 (checked by the cfg); PTX packs
        // its first source into the upper byte.
        unsafe {
            core::arch::asm!("cvt.rn.satfinite.e4m3x2.f32 {o}, {hi}, {lo};", o = out(reg16) out,
                             hi = in(reg32) hi, lo = in(reg32) lo, options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(target_feature = "sm_89"))]
    {
        super::soft::f32_to_e4m3fn_sat(lo) as u16 | (super::soft::f32_to_e4m3fn_sat(hi) as u16) << 8
    }
}
