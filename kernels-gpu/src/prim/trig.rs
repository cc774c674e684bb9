//! sin and cos of rotary-embedding angles computed in the kernel: pure arithmetic (FMA, no
//! intrinsics), so the host tests compile this same file and check it against libm.
//!
//! Angles are `position · inv_freq`, up to ~1e7 rad for million-token positions, so the argument
//! reduction matters more than the polynomial. The reduction is f64: `n = round(a · 2/π)` (the
//! 1.5·2^52 rounding trick, which leaves `n mod 4` in the low bits), `r = a − n·π/2` with π/2 in
//! two f64 parts and fused multiply-adds (the product `n · PIO2_HI` is exact inside the FMA).
//! `|r| ≤ π/4` is then rounded to f32 and the polynomials are f32 with FMAs (Cephes `sinf` /
//! `cosf` minimax coefficients for `[-π/4, π/4]`), then the quadrant `n mod 4` picks and signs.
//!
//! Error against libm's f64 sin/cos (tests/qk_norm_rope.rs checks both bounds over RoPE angles
//! up to 4·10⁶ rad and angles near multiples of π/2): at most `SINCOS_MAX_ERROR` = 2^-23
//! absolute (measured 1.56·2^-24), and at most `SINCOS_MAX_REL_ERROR`·|value| + 1e-15 (2.5·2^-24;
//! measured 2.2·2^-24), so small values near the zeros stay accurate relative to themselves. A
//! correctly rounded f32 would be within 0.5·2^-24 relative; the extra 2 ulps are far below the
//! bf16/f16 output rounding (2^-9 relative) and inside the tests' 2^-18 arithmetic allowance.

#[cfg(target_arch = "nvptx64")]
use core::f32::math::mul_add as mul_add_f32;
#[cfg(target_arch = "nvptx64")]
use core::f64::math::mul_add;
/// The host's fused multiply-add (libm `fma`, exact like PTX `fma.rn.f64`).
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn mul_add(x: f64, a: f64, b: f64) -> f64 {
    x.mul_add(a, b)
}
/// The host's f32 fused multiply-add (like PTX `fma.rn.f32`).
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn mul_add_f32(x: f32, a: f32, b: f32) -> f32 {
    x.mul_add(a, b)
}

const PIO2_HI: f64 = core::f64::consts::FRAC_PI_2; // nearest f64 to π/2
const PIO2_LO: f64 = 6.123_233_995_736_766e-17; // π/2 − PIO2_HI
const TWO_OVER_PI: f64 = core::f64::consts::FRAC_2_PI;
/// 1.5 · 2^52: adding it rounds to an integer (nearest even) held in the low mantissa bits.
const ROUNDER: f64 = 6_755_399_441_055_744.0;

/// The largest absolute error of `sincos_rope` against the exact sin and cos, as tested.
pub const SINCOS_MAX_ERROR: f64 = 1.0 / 8_388_608.0;
/// The error of `sincos_rope` relative to the value, as tested (plus 1e-15 absolute).
pub const SINCOS_MAX_REL_ERROR: f64 = 2.5 / 16_777_216.0;

/// (sin a, cos a) rounded to f32, for |a| < 2^40 (beyond that, positions · frequencies are
/// meaningless anyway).
#[inline(always)]
pub fn sincos_rope(a: f64) -> (f32, f32) {
    let t = mul_add(a, TWO_OVER_PI, ROUNDER);
    let quadrant = t.to_bits() as u32 & 3;
    let n = t - ROUNDER;
    let r = mul_add(-n, PIO2_HI, a);
    let r = mul_add(-n, PIO2_LO, r) as f32;
    let z = r * r;
    // sin r = r + r³·(s1 + z·(s2 + z·s3)); cos r = 1 − z/2 + z²·(c1 + z·(c2 + z·c3))
    // The coefficients as published (their f32 roundings are what the code uses).
    #[allow(clippy::excessive_precision)]
    let ps = mul_add_f32(mul_add_f32(-1.951_529_589_1e-4, z, 8.332_160_873_6e-3), z, -1.666_665_461_1e-1);
    let s = mul_add_f32(r * z, ps, r);
    #[allow(clippy::excessive_precision)]
    let pc =
        mul_add_f32(mul_add_f32(2.443_315_711_809_948e-5, z, -1.388_731_625_493_765e-3), z, 4.166_664_568_298_827e-2);
    let c = mul_add_f32(z * z, pc, mul_add_f32(-0.5, z, 1.0));
    // quadrant q: (sin, cos) = (s, c), (c, −s), (−s, −c), (−c, s)
    let (sin, cos) = if quadrant & 1 != 0 { (c, s) } else { (s, c) };
    let sin = if quadrant & 2 != 0 { -sin } else { sin };
    let cos = if (quadrant + 1) & 2 != 0 { -cos } else { cos };
    (sin, cos)
}
