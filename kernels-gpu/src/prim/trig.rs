//! sin and cos in f64 for rotary embeddings computed in the kernel: pure arithmetic (FMA, no
//! intrinsics), so the host tests compile this same file and check it against libm.
//!
//! Angles are `position · inv_freq`, up to ~1e7 rad for million-token positions, so the argument
//! reduction matters more than the polynomial: `n = round(a · 2/π)`, `r = a − n·π/2` with π/2 in
//! two f64 parts and fused multiply-adds (the product `n · PIO2_HI` is exact inside the FMA), then
//! Taylor polynomials on |r| ≤ π/4 (error < 1e-15 there), then the quadrant `n mod 4`.

#[cfg(target_arch = "nvptx64")]
use core::f64::math::mul_add;
/// The host's fused multiply-add (libm `fma`, exact like PTX `fma.rn.f64`).
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn mul_add(x: f64, a: f64, b: f64) -> f64 {
    x.mul_add(a, b)
}

const PIO2_HI: f64 = 1.570_796_326_794_896_558; // nearest f64 to π/2
const PIO2_LO: f64 = 6.123_233_995_736_766e-17; // π/2 − PIO2_HI
const TWO_OVER_PI: f64 = 0.636_619_772_367_581_4;

/// Round half away from zero, for |x| < 2^52.
#[inline(always)]
fn round_f64(x: f64) -> f64 {
    let t = (if x >= 0.0 { x + 0.5 } else { x - 0.5 }) as i64;
    t as f64
}

/// (sin a, cos a) for |a| < 2^40 (beyond that, positions · frequencies are meaningless anyway).
#[inline(always)]
pub fn sincos_f64(a: f64) -> (f64, f64) {
    let n = round_f64(a * TWO_OVER_PI);
    let r = mul_add(-n, PIO2_HI, a);
    let r = mul_add(-n, PIO2_LO, r);
    let r2 = r * r;
    // sin r = r (1 − r²/3! + r⁴/5! − …), up to r^15; cos r = 1 − r²/2! + …, up to r^16.
    let s = r * (1.0
        + r2 * (-1.0 / 6.0
            + r2 * (1.0 / 120.0
                + r2 * (-1.0 / 5040.0
                    + r2 * (1.0 / 362_880.0
                        + r2 * (-1.0 / 39_916_800.0
                            + r2 * (1.0 / 6_227_020_800.0 + r2 * (-1.0 / 1_307_674_368_000.0))))))));
    let c = 1.0
        + r2 * (-0.5
            + r2 * (1.0 / 24.0
                + r2 * (-1.0 / 720.0
                    + r2 * (1.0 / 40_320.0
                        + r2 * (-1.0 / 3_628_800.0
                            + r2 * (1.0 / 479_001_600.0
                                + r2 * (-1.0 / 87_178_291_200.0 + r2 * (1.0 / 20_922_789_888_000.0))))))));
    match (n as i64) & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}
