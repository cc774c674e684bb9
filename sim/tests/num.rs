//! `lowp_sim::num` against the PTX ISA's rules (edge values worked out by hand), against
//! independent references (exact integer arithmetic and searches over the destination's codes,
//! never the bit tricks the library uses), and against the PyTorch / ml_dtypes vectors in
//! `tests/data/`.

use lowp_sim::ir::Rnd;
use lowp_sim::num::*;

const MODES: [Rnd; 4] = [Rnd::Rn, Rnd::Rz, Rnd::Rm, Rnd::Rp];

/// xorshift64*: a small deterministic generator.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn f32_bits(&mut self) -> u32 {
        self.next() as u32
    }
}

fn f(x: f32) -> u32 {
    x.to_bits()
}
fn d(x: f64) -> u64 {
    x.to_bits()
}

// ---------------------------------------------------------------------------------------------
// Reference rounding: a binary search over a format's codes
// ---------------------------------------------------------------------------------------------

/// Rounds the magnitude `a` (finite, ≥ 0, exactly an f64) to a format whose non-negative finite
/// codes `0..=max` decode (monotonically) to `value(code)`, and whose first value past `max`
/// would be `top` (2^(emax+1)). Returns a code; `max + 1` stands for overflow (Inf).
fn ref_round(a: f64, neg: bool, max: u64, value: &dyn Fn(u64) -> f64, top: f64, rnd: Rnd) -> u64 {
    // Largest code whose value is <= a.
    let (mut lo, mut hi) = (0u64, max);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if value(mid) <= a { lo = mid } else { hi = mid - 1 }
    }
    let vlo = value(lo);
    if vlo == a {
        return lo;
    }
    let vhi = if lo == max { top } else { value(lo + 1) };
    assert!(vlo < a && (a < vhi || lo == max));
    match rnd {
        Rnd::Rn | Rnd::None => {
            let mid = (vlo + vhi) / 2.0; // exact: the values have few significant bits
            if a < mid || (a == mid && lo % 2 == 0) { lo } else { lo + 1 }
        }
        Rnd::Rz => lo,
        Rnd::Rm => {
            if neg {
                lo + 1
            } else {
                lo
            }
        }
        Rnd::Rp => {
            if neg {
                lo
            } else {
                lo + 1
            }
        }
        _ => unreachable!(),
    }
}

/// Value of a binary format's non-negative code, by the textbook formula (in f64).
fn formula(code: u64, ebits: u32, mbits: u32) -> f64 {
    let bias = (1i32 << (ebits - 1)) - 1;
    let e = (code >> mbits) as i32;
    let m = (code & ((1 << mbits) - 1)) as f64;
    let scale = 2f64.powi(mbits as i32);
    if e == 0 { m / scale * 2f64.powi(1 - bias) } else { (1.0 + m / scale) * 2f64.powi(e - bias) }
}

/// Reference `cvt.rnd.f16.f32` / `.bf16.f32` / `.f32.f64` for a finite non-NaN input: the code
/// search, then IEEE overflow (Inf or MAX by mode) and the sign.
fn ref_narrow(x: f64, ebits: u32, mbits: u32, rnd: Rnd, satfinite: bool) -> u64 {
    let neg = x.is_sign_negative();
    let inf = ((1u64 << ebits) - 1) << mbits;
    let max = inf - 1;
    let top = 2f64.powi(1 << (ebits - 1));
    let code =
        if x.is_infinite() { max + 1 } else { ref_round(x.abs(), neg, max, &|c| formula(c, ebits, mbits), top, rnd) };
    let code = if code > max {
        let to_inf = !satfinite
            && match rnd {
                Rnd::Rn | Rnd::None => true,
                Rnd::Rz => false,
                Rnd::Rm => neg,
                Rnd::Rp => !neg,
                _ => unreachable!(),
            };
        if to_inf { inf } else { max }
    } else {
        code
    };
    code | (neg as u64) << (ebits + mbits)
}

// ---------------------------------------------------------------------------------------------
// Canonical NaNs, min/max, .sat
// ---------------------------------------------------------------------------------------------

#[test]
fn canonical_nans() {
    for nan in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xffff_ffff, 0x7fff_ffff] {
        assert_eq!(canon_f32(nan), NAN_F32);
    }
    for x in [0u32, 0x8000_0000, 0x7f80_0000, 0xff80_0000, 1, 0x3f80_0000, 0x7f7f_ffff] {
        assert_eq!(canon_f32(x), x);
    }
    // f64: payload and sign kept, made quiet.
    assert_eq!(canon_f64(0x7ff0_0000_0000_0001), 0x7ff8_0000_0000_0001);
    assert_eq!(canon_f64(0xfff4_0000_0000_0000), 0xfffc_0000_0000_0000);
    assert_eq!(canon_f64(0x7ff8_0000_0000_0000), 0x7ff8_0000_0000_0000);
    assert_eq!(canon_f64(d(f64::INFINITY)), d(f64::INFINITY));
    assert_eq!(canon_f64(d(-0.0)), d(-0.0));
    // Operand propagation: first NaN operand wins, quieted; a NaN made from numbers is NAN_F64.
    let (snan, qnan) = (0x7ff0_0000_0000_0005u64, 0xfff8_0000_0000_0007u64);
    let r = f64::NAN.to_bits();
    assert_eq!(arith_nan_f64(r, snan, qnan), 0x7ff8_0000_0000_0005);
    assert_eq!(arith_nan_f64(r, d(1.0), qnan), qnan);
    assert_eq!(arith_nan_f64(r, d(f64::INFINITY), d(f64::NEG_INFINITY)), NAN_F64);
    assert_eq!(arith_nan_f64(d(3.0), d(1.0), d(2.0)), d(3.0));
    assert_eq!(arith_nan_f64_3(r, d(1.0), d(2.0), snan), 0x7ff8_0000_0000_0005);
    assert_eq!(arith_nan_f64_3(r, d(0.0), d(f64::INFINITY), d(1.0)), NAN_F64);
    assert_eq!(arith_nan_f64_3(r, d(0.0), qnan, snan), qnan);
}

#[test]
fn min_max_follow_the_isa() {
    let nan = 0x7fc0_0000u32;
    let nneg = 0xffc0_1234u32;
    // One NaN: the other operand, bit for bit (also a negative zero or an infinity).
    for x in [f(1.5), f(-0.0), f(0.0), f(f32::INFINITY), f(f32::NEG_INFINITY), 1] {
        assert_eq!(min_f32(nan, x), x);
        assert_eq!(min_f32(x, nneg), x);
        assert_eq!(max_f32(nan, x), x);
        assert_eq!(max_f32(x, nneg), x);
    }
    // Two NaNs: the canonical NaN.
    assert_eq!(min_f32(nan, nneg), NAN_F32);
    assert_eq!(max_f32(nneg, nan), NAN_F32);
    // -0.0 < +0.0, in either order.
    assert_eq!(min_f32(f(0.0), f(-0.0)), f(-0.0));
    assert_eq!(min_f32(f(-0.0), f(0.0)), f(-0.0));
    assert_eq!(max_f32(f(0.0), f(-0.0)), f(0.0));
    assert_eq!(max_f32(f(-0.0), f(0.0)), f(0.0));
    // Ordinary values, subnormals (no flushing), infinities.
    assert_eq!(min_f32(f(-1.0), f(1.0)), f(-1.0));
    assert_eq!(max_f32(f(-1.0), f(-2.0)), f(-1.0));
    assert_eq!(min_f32(1, 2), 1);
    assert_eq!(max_f32(0x8000_0001, 0), 0);
    assert_eq!(min_f32(0x8000_0001, 0), 0x8000_0001);
    assert_eq!(max_f32(f(f32::MAX), f(f32::INFINITY)), f(f32::INFINITY));
    assert_eq!(min_f32(f(f32::MIN), f(f32::NEG_INFINITY)), f(f32::NEG_INFINITY));
    // Random non-NaN pairs against the host's comparison.
    let mut rng = Rng(7);
    for _ in 0..100_000 {
        let (a, b) = (rng.f32_bits(), rng.f32_bits());
        let (x, y) = (f32::from_bits(a), f32::from_bits(b));
        if x.is_nan() || y.is_nan() || x == y {
            continue;
        }
        assert_eq!(min_f32(a, b), if x < y { a } else { b });
        assert_eq!(max_f32(a, b), if x > y { a } else { b });
    }

    // f64: the same, and two NaNs give the first operand, quieted.
    let dn = 0x7ff0_0000_0000_0009u64;
    assert_eq!(min_f64(dn, d(2.0)), d(2.0));
    assert_eq!(max_f64(d(-2.0), dn), d(-2.0));
    assert_eq!(min_f64(dn, 0xfff8_0000_0000_0000), 0x7ff8_0000_0000_0009);
    assert_eq!(max_f64(0xfff8_0000_0000_0001, dn), 0xfff8_0000_0000_0001);
    assert_eq!(min_f64(d(0.0), d(-0.0)), d(-0.0));
    assert_eq!(max_f64(d(-0.0), d(0.0)), d(0.0));
    assert_eq!(min_f64(1, 0x8000_0000_0000_0001), 0x8000_0000_0000_0001);
    assert_eq!(max_f64(d(1e300), d(f64::INFINITY)), d(f64::INFINITY));
}

#[test]
fn sat_clamps_to_unit_interval() {
    let cases32 = [
        (f(0.5), f(0.5)),
        (f(1.0), f(1.0)),
        (f(1.0000001), f(1.0)),
        (f(f32::INFINITY), f(1.0)),
        (f(f32::NEG_INFINITY), 0),
        (f(-0.0), 0),
        (f(0.0), 0),
        (f(-1e-30), 0),
        (1, 1), // the smallest subnormal is kept
        (0x7fc0_0000, 0),
        (0xffc0_0000, 0),
        (f(0.99999994), f(0.99999994)),
    ];
    for (x, want) in cases32 {
        assert_eq!(sat_f32(x), want, "sat_f32({x:#x})");
        assert_eq!(sat_f64(f32_to_f64(x)), f32_to_f64(want), "sat_f64({x:#x})");
    }
    assert_eq!(sat_f64(0x7ff0_0000_0000_0001), 0);
    assert_eq!(sat_f64(d(1.0 + f64::EPSILON)), d(1.0));
    assert_eq!(ftz_f32(1), 0);
    assert_eq!(ftz_f32(0x807f_ffff), 0x8000_0000);
    assert_eq!(ftz_f32(0x0080_0000), 0x0080_0000);
}

// ---------------------------------------------------------------------------------------------
// f16 / bf16
// ---------------------------------------------------------------------------------------------

#[test]
fn f16_and_bf16_widening_is_exact_for_all_65536_inputs() {
    for h in 0..=u16::MAX {
        let neg = h & 0x8000 != 0;
        let a = (h & 0x7fff) as u64;
        // f16
        let got = f16_to_f32(h);
        if a > 0x7c00 {
            assert_eq!(got, NAN_F32, "f16 {h:#06x}");
        } else {
            let v = if a == 0x7c00 { f64::INFINITY } else { formula(a, 5, 10) };
            let v = if neg { -v } else { v };
            assert_eq!(got, (v as f32).to_bits(), "f16 {h:#06x}");
            assert_eq!(v as f32 as f64, v, "f16 {h:#06x} is exact in f32");
            // Narrowing it back is exact in every mode.
            for rnd in MODES {
                assert_eq!(f32_to_f16(got, rnd, false), h, "f16 round trip {h:#06x} {rnd:?}");
            }
        }
        // bf16
        let got = bf16_to_f32(h);
        if a > 0x7f80 {
            assert!(f32::from_bits(got).is_nan());
            assert_eq!(got, (h as u32) << 16, "bf16 NaN keeps its bits");
        } else {
            let v = if a == 0x7f80 { f64::INFINITY } else { formula(a, 8, 7) };
            let v = if neg { -v } else { v };
            assert_eq!(got, (v as f32).to_bits(), "bf16 {h:#06x}");
            for rnd in MODES {
                assert_eq!(f32_to_bf16(got, rnd, false), h, "bf16 round trip {h:#06x} {rnd:?}");
            }
        }
    }
}

#[test]
fn f16_narrowing_edges() {
    let rn = |x: f32| f32_to_f16(f(x), Rnd::Rn, false);
    // Max finite, the overflow threshold (65520 = max + half ulp ties to even: up to Inf).
    assert_eq!(rn(65504.0), 0x7bff);
    assert_eq!(rn(65519.996), 0x7bff);
    assert_eq!(rn(65520.0), 0x7c00);
    assert_eq!(rn(-65520.0), 0xfc00);
    assert_eq!(rn(1e10), 0x7c00);
    assert_eq!(rn(f32::INFINITY), 0x7c00);
    assert_eq!(rn(f32::NEG_INFINITY), 0xfc00);
    // Overflow per mode: .rz saturates, .rm/.rp toward their infinity only.
    assert_eq!(f32_to_f16(f(1e10), Rnd::Rz, false), 0x7bff);
    assert_eq!(f32_to_f16(f(-1e10), Rnd::Rz, false), 0xfbff);
    assert_eq!(f32_to_f16(f(1e10), Rnd::Rm, false), 0x7bff);
    assert_eq!(f32_to_f16(f(-1e10), Rnd::Rm, false), 0xfc00);
    assert_eq!(f32_to_f16(f(1e10), Rnd::Rp, false), 0x7c00);
    assert_eq!(f32_to_f16(f(-1e10), Rnd::Rp, false), 0xfbff);
    assert_eq!(f32_to_f16(f(65504.5), Rnd::Rp, false), 0x7c00);
    assert_eq!(f32_to_f16(f(f32::INFINITY), Rnd::Rz, false), 0x7c00, "Inf is exact, not rounded");
    // Ties to even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10.
    assert_eq!(rn(1.0 + 2f32.powi(-11)), 0x3c00);
    assert_eq!(rn(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
    assert_eq!(rn(1.0 + 2f32.powi(-11) + 2f32.powi(-20)), 0x3c01);
    // Subnormals: min 2^-24; 2^-25 ties to 0 (even), just above rounds up.
    assert_eq!(rn(2f32.powi(-24)), 0x0001);
    assert_eq!(rn(2f32.powi(-25)), 0x0000);
    assert_eq!(rn(-2f32.powi(-25)), 0x8000);
    assert_eq!(rn(2f32.powi(-25) * 1.0000001), 0x0001);
    assert_eq!(rn(3.0 * 2f32.powi(-25)), 0x0002);
    assert_eq!(rn(2f32.powi(-14) - 2f32.powi(-25)), 0x0400, "rounds up into the normals");
    assert_eq!(f32_to_f16(f(2f32.powi(-30)), Rnd::Rp, false), 0x0001);
    assert_eq!(f32_to_f16(f(-2f32.powi(-30)), Rnd::Rp, false), 0x8000);
    assert_eq!(f32_to_f16(f(-2f32.powi(-30)), Rnd::Rm, false), 0x8001);
    assert_eq!(f32_to_f16(1, Rnd::Rn, false), 0, "f32 subnormal underflows");
    // Zeros keep their sign; NaN is canonical whatever the sign or payload.
    assert_eq!(rn(0.0), 0);
    assert_eq!(rn(-0.0), 0x8000);
    for nan in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xffff_ffff] {
        for rnd in MODES {
            assert_eq!(f32_to_f16(nan, rnd, false), NAN_16);
            assert_eq!(f32_to_bf16(nan, rnd, false), NAN_16);
            assert_eq!(f32_to_f16_satfinite(nan, rnd), NAN_16);
            assert_eq!(f32_to_bf16_satfinite(nan, rnd), NAN_16);
        }
        assert_eq!(f32_to_f16(nan, Rnd::Rn, true), 0, ".sat flushes NaN to +0");
        assert_eq!(f32_to_bf16(nan, Rnd::Rn, true), 0);
    }
    // .sat: [0, 1], negatives and -0 to +0.
    let sat = |x: f32| f32_to_f16(f(x), Rnd::Rn, true);
    assert_eq!(sat(2.0), 0x3c00);
    assert_eq!(sat(f32::INFINITY), 0x3c00);
    assert_eq!(sat(-2.0), 0);
    assert_eq!(sat(-0.0), 0);
    assert_eq!(sat(0.5), 0x3800);
    assert_eq!(sat(0.99999), 0x3c00, "rounds to 1.0");
    assert_eq!(f32_to_f16(f(0.99999), Rnd::Rz, true), 0x3bff);
    // .satfinite: Inf and overflow to ±MAX, regardless of mode.
    for rnd in MODES {
        assert_eq!(f32_to_f16_satfinite(f(f32::INFINITY), rnd), 0x7bff);
        assert_eq!(f32_to_f16_satfinite(f(-1e9), rnd), 0xfbff);
        assert_eq!(f32_to_bf16_satfinite(f(f32::NEG_INFINITY), rnd), 0xff7f);
        assert_eq!(f32_to_f16_satfinite(f(1.5), rnd), 0x3e00);
    }
    assert_eq!(f32_to_f16_satfinite(f(65519.0), Rnd::Rn), 0x7bff);
    assert_eq!(f32_to_f16_satfinite(f(65520.0), Rnd::Rn), 0x7bff);
}

#[test]
fn bf16_narrowing_edges() {
    let rn = |x: u32| f32_to_bf16(x, Rnd::Rn, false);
    assert_eq!(rn(0x3f80_8000), 0x3f80, "tie to even (down)");
    assert_eq!(rn(0x3f81_8000), 0x3f82, "tie to even (up)");
    assert_eq!(rn(0x3f80_8001), 0x3f81);
    assert_eq!(rn(0x7f7f_ffff), 0x7f80, "f32 max rounds to Inf");
    assert_eq!(rn(0x7f7f_7fff), 0x7f7f);
    assert_eq!(rn(0xff7f_8000), 0xff80, "tie at the top goes to Inf (max is odd)");
    assert_eq!(rn(0x0000_8000), 0x0000, "subnormal tie to even");
    assert_eq!(rn(0x0001_8000), 0x0002);
    assert_eq!(rn(0x8000_0001), 0x8000);
    assert_eq!(rn(0x007f_ffff), 0x0080, "largest subnormal rounds up to the smallest normal");
    assert_eq!(f32_to_bf16(0x7f7f_ffff, Rnd::Rz, false), 0x7f7f);
    assert_eq!(f32_to_bf16(0xff7f_ffff, Rnd::Rz, false), 0xff7f);
    assert_eq!(f32_to_bf16(0x3f80_0001, Rnd::Rp, false), 0x3f81);
    assert_eq!(f32_to_bf16(0xbf80_0001, Rnd::Rp, false), 0xbf80);
    assert_eq!(f32_to_bf16(0xbf80_0001, Rnd::Rm, false), 0xbf81);
    assert_eq!(f32_to_bf16(0x7f7f_ffff, Rnd::Rp, false), 0x7f80);
    assert_eq!(f32_to_bf16(0x7f7f_ffff, Rnd::Rm, false), 0x7f7f);
    assert_eq!(f32_to_bf16(0x4000_0000, Rnd::Rn, true), 0x3f80, ".sat");
    assert_eq!(f32_to_bf16(0x3f7f_ffff, Rnd::Rz, true), 0x3f7f);
    assert_eq!(f32_to_bf16(0x8000_0000, Rnd::Rn, true), 0);
    assert_eq!(f32_to_bf16_satfinite(0x7f7f_ffff, Rnd::Rn), 0x7f7f);
}

#[test]
fn f16_and_bf16_narrowing_match_a_reference_on_random_inputs() {
    let mut rng = Rng(0x1234_5678);
    for i in 0..200_000 {
        // Half the inputs near the f16 range, half arbitrary bit patterns.
        let x = if i % 2 == 0 {
            let e = (rng.next() % 50) as u32 + 127 - 30;
            (rng.next() as u32 & 0x807f_ffff) | e << 23
        } else {
            rng.f32_bits()
        };
        let v = f32::from_bits(x);
        if v.is_nan() {
            continue;
        }
        for rnd in MODES {
            let want = ref_narrow(v as f64, 5, 10, rnd, false) as u16;
            assert_eq!(f32_to_f16(x, rnd, false), want, "f16 {x:#010x} {rnd:?}");
            let want = ref_narrow(v as f64, 5, 10, rnd, true) as u16;
            assert_eq!(f32_to_f16_satfinite(x, rnd), want, "f16 satfinite {x:#010x} {rnd:?}");
            let want = ref_narrow(v as f64, 8, 7, rnd, false) as u16;
            assert_eq!(f32_to_bf16(x, rnd, false), want, "bf16 {x:#010x} {rnd:?}");
            let want = ref_narrow(v as f64, 8, 7, rnd, true) as u16;
            assert_eq!(f32_to_bf16_satfinite(x, rnd), want, "bf16 satfinite {x:#010x} {rnd:?}");
        }
        // `None` is `.rn`.
        assert_eq!(f32_to_f16(x, Rnd::None, false), f32_to_f16(x, Rnd::Rn, false));
        assert_eq!(f32_to_bf16(x, Rnd::None, false), f32_to_bf16(x, Rnd::Rn, false));
        // f64 sources round once, like the f32 source when the value is the same.
        let xd = f32_to_f64(x);
        assert_eq!(f64_to_f16(xd, Rnd::Rn, false), f32_to_f16(x, Rnd::Rn, false));
        assert_eq!(f64_to_bf16(xd, Rnd::Rz, false), f32_to_bf16(x, Rnd::Rz, false));
    }
    // f64 -> f16 with a value between two f32s: one rounding, not two. 1 + 2^-11 + 2^-40 is
    // above the f16 tie, but its f32 rounding lands on the tie and would then go down.
    let x = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
    assert_eq!(f64_to_f16(d(x), Rnd::Rn, false), 0x3c01);
    assert_eq!(f32_to_f16(f(x as f32), Rnd::Rn, false), 0x3c00);
}

// ---------------------------------------------------------------------------------------------
// f32 <-> f64
// ---------------------------------------------------------------------------------------------

#[test]
fn f64_to_f32_edges_and_random() {
    let max = f32::MAX as f64;
    let half_ulp = 2f64.powi(103);
    let r = |x: f64, rnd| f64_to_f32(d(x), rnd, false);
    assert_eq!(r(max + half_ulp, Rnd::Rn), f(f32::INFINITY), "overflow threshold ties up");
    assert_eq!(r(max + half_ulp - 2f64.powi(80), Rnd::Rn), f(f32::MAX));
    assert_eq!(r(1e300, Rnd::Rz), f(f32::MAX));
    assert_eq!(r(-1e300, Rnd::Rp), f(f32::MIN));
    assert_eq!(r(-1e300, Rnd::Rm), f(f32::NEG_INFINITY));
    assert_eq!(r(f64::INFINITY, Rnd::Rz), f(f32::INFINITY));
    assert_eq!(r(2f64.powi(-150), Rnd::Rn), 0, "half the min subnormal ties to 0");
    assert_eq!(r(2f64.powi(-150) * 1.5, Rnd::Rn), 1);
    assert_eq!(r(1e-300, Rnd::Rp), 1);
    assert_eq!(r(-1e-300, Rnd::Rm), 0x8000_0001);
    assert_eq!(r(-1e-300, Rnd::Rn), 0x8000_0000);
    assert_eq!(r(1.0 + 2f64.powi(-24), Rnd::Rn), f(1.0));
    assert_eq!(r(1.0 + 3.0 * 2f64.powi(-24), Rnd::Rn), f(1.0) + 2);
    assert_eq!(r(1.0 + 2f64.powi(-52), Rnd::Rp), f(1.0) + 1);
    assert_eq!(r(-(1.0 + 2f64.powi(-52)), Rnd::Rz), f(-1.0));
    assert_eq!(f64_to_f32(0x7ff0_0000_0000_0001, Rnd::Rn, false), NAN_F32);
    assert_eq!(f64_to_f32(0xfff8_0000_0000_0000, Rnd::Rz, false), NAN_F32);
    assert_eq!(f64_to_f32(0xfff8_0000_0000_0000, Rnd::Rn, true), 0);
    assert_eq!(f64_to_f32(d(3.0), Rnd::Rn, true), f(1.0));
    assert_eq!(f64_to_f32(d(-0.0), Rnd::Rn, true), 0);
    assert_eq!(f64_to_f32(d(-0.0), Rnd::Rn, false), 0x8000_0000);

    let mut rng = Rng(99);
    for i in 0..20_000 {
        let x = if i % 2 == 0 {
            rng.next()
        } else {
            // Near the f32 range and its subnormals.
            let e = rng.next() % 320 + 1023 - 160;
            (rng.next() & 0x800f_ffff_ffff_ffff) | e << 52
        };
        let v = f64::from_bits(x);
        if v.is_nan() {
            continue;
        }
        for rnd in MODES {
            // The reference searches the f32 codes directly (the host's f32 decoding).
            let neg = v.is_sign_negative();
            let code = if v.is_infinite() {
                0x7f80_0000
            } else {
                ref_round(v.abs(), neg, 0x7f7f_ffff, &|c| f32::from_bits(c as u32) as f64, 2f64.powi(128), rnd)
            };
            let code = if code > 0x7f7f_ffff {
                let to_inf = match rnd {
                    Rnd::Rn => true,
                    Rnd::Rz => false,
                    Rnd::Rm => neg,
                    _ => !neg,
                };
                if to_inf { 0x7f80_0000 } else { 0x7f7f_ffff }
            } else {
                code
            };
            let want = code as u32 | (neg as u32) << 31;
            assert_eq!(f64_to_f32(x, rnd, false), want, "{x:#018x} {rnd:?}");
        }
        if !v.is_infinite() {
            assert_eq!(f64_to_f32(x, Rnd::Rn, false), f(v as f32), "host cast is RNE");
        }
    }
}

#[test]
fn f32_to_f64_is_exact_and_keeps_nan_payloads() {
    let mut rng = Rng(5);
    for _ in 0..50_000 {
        let x = rng.f32_bits();
        let v = f32::from_bits(x);
        if v.is_nan() {
            continue;
        }
        assert_eq!(f32_to_f64(x), d(v as f64));
        assert_eq!(f64_to_f32(f32_to_f64(x), Rnd::Rz, false), x);
    }
    assert_eq!(f32_to_f64(1), d(2f64.powi(-149)));
    assert_eq!(f32_to_f64(0x8000_0000), d(-0.0));
    assert_eq!(f32_to_f64(NAN_F32), 0x7fff_ffff_e000_0000);
    assert_eq!(f32_to_f64(0x7f80_0001), 0x7ff8_0000_2000_0000, "signaling NaN made quiet");
    assert_eq!(f32_to_f64(0xffc0_0000), 0xfff8_0000_0000_0000);
}

// ---------------------------------------------------------------------------------------------
// FP8
// ---------------------------------------------------------------------------------------------

/// Reference `cvt.rn.satfinite.{e4m3,e5m2}.f32`: the code search over the format's finite
/// codes; saturation at max; NaN 0x7f.
fn ref_fp8(x: u32, e4m3: bool) -> u8 {
    let v = f32::from_bits(x);
    if v.is_nan() {
        return 0x7f;
    }
    let (ebits, mbits, max) = if e4m3 { (4, 3, 0x7eu64) } else { (5, 2, 0x7b) };
    let neg = v.is_sign_negative();
    let top = formula(max, ebits, mbits) + formula(max, ebits, mbits) - formula(max - 1, ebits, mbits);
    let code = if v.is_infinite() {
        max
    } else {
        ref_round(v.abs() as f64, neg, max, &|c| formula(c, ebits, mbits), top, Rnd::Rn).min(max)
    };
    code as u8 | (neg as u8) << 7
}

#[test]
fn fp8_narrowing_edges() {
    let e4 = |x: f32| f32_to_e4m3_satfinite(f(x));
    let e5 = |x: f32| f32_to_e5m2_satfinite(f(x));
    assert_eq!(e4(448.0), 0x7e);
    assert_eq!(e4(463.99), 0x7e);
    assert_eq!(e4(464.0), 0x7e, "tie between 448 and the NaN code: saturates");
    assert_eq!(e4(464.01), 0x7e);
    assert_eq!(e4(1e30), 0x7e);
    assert_eq!(e4(f32::INFINITY), 0x7e);
    assert_eq!(e4(f32::NEG_INFINITY), 0xfe);
    assert_eq!(e4(-500.0), 0xfe);
    assert_eq!(e4(400.0), 0x7c, "tie between 384 (0x7c) and 416 (0x7d): to even");
    assert_eq!(e4(432.0), 0x7e, "tie between 416 (0x7d) and 448 (0x7e): to even");
    assert_eq!(e4(1.0), 0x38);
    assert_eq!(e4(1.0625), 0x38, "tie to even");
    assert_eq!(e4(1.1875), 0x3a, "tie to even (up)");
    assert_eq!(e4(2f32.powi(-9)), 0x01, "min subnormal");
    assert_eq!(e4(2f32.powi(-10)), 0x00, "half of it ties to 0");
    assert_eq!(e4(-2f32.powi(-10)), 0x80);
    assert_eq!(e4(2f32.powi(-10) * 1.01), 0x01);
    assert_eq!(e4(3.0 * 2f32.powi(-10)), 0x02);
    assert_eq!(e4(7.5 * 2f32.powi(-9)), 0x08, "largest subnormal rounds up to min normal");
    assert_eq!(e4(2f32.powi(-6)), 0x08);
    assert_eq!(e4(-0.0), 0x80);
    assert_eq!(e5(57344.0), 0x7b);
    assert_eq!(e5(61439.0), 0x7b);
    assert_eq!(e5(61440.0), 0x7b, "tie toward Inf saturates");
    assert_eq!(e5(f32::INFINITY), 0x7b);
    assert_eq!(e5(f32::NEG_INFINITY), 0xfb);
    assert_eq!(e5(2f32.powi(-16)), 0x01);
    assert_eq!(e5(2f32.powi(-17)), 0x00);
    assert_eq!(e5(1.0), 0x3c);
    assert_eq!(e5(-1.25), 0xbd);
    for nan in [0x7fc0_0000u32, 0xffc0_0000, 0x7f80_0001, 0xff80_0001] {
        assert_eq!(f32_to_e4m3_satfinite(nan), 0x7f);
        assert_eq!(f32_to_e5m2_satfinite(nan), 0x7f);
    }
}

#[test]
fn fp8_narrowing_matches_a_reference_on_random_inputs() {
    let mut rng = Rng(0xfeed);
    for i in 0..100_000 {
        let x = if i % 2 == 0 {
            let e = (rng.next() % 40) as u32 + 127 - 24;
            (rng.next() as u32 & 0x807f_ffff) | e << 23
        } else {
            rng.f32_bits()
        };
        assert_eq!(f32_to_e4m3_satfinite(x), ref_fp8(x, true), "e4m3 {x:#010x}");
        assert_eq!(f32_to_e5m2_satfinite(x), ref_fp8(x, false), "e5m2 {x:#010x}");
    }
}

#[test]
fn fp8_widening_is_exact_and_round_trips() {
    for code in 0..=255u8 {
        let neg = code & 0x80 != 0;
        let a = (code & 0x7f) as u64;
        // E4M3: no Inf, 0x7f/0xff are NaN.
        let h = e4m3_to_f16(code);
        if a == 0x7f {
            assert_eq!(h, NAN_16, "e4m3 {code:#04x}");
        } else {
            let v = formula(a, 4, 3);
            let v = if neg { -v } else { v };
            assert_eq!(f16_to_f32(h), (v as f32).to_bits(), "e4m3 {code:#04x}");
            assert_eq!(f32_to_e4m3_satfinite(f16_to_f32(h)), code, "e4m3 round trip {code:#04x}");
        }
        // E5M2: IEEE-like, 0x7c Inf, 0x7d..0x7f NaN.
        let h = e5m2_to_f16(code);
        if a > 0x7c {
            assert_eq!(h, NAN_16, "e5m2 {code:#04x}");
        } else if a == 0x7c {
            assert_eq!(h, if neg { 0xfc00 } else { 0x7c00 });
        } else {
            let v = formula(a, 5, 2);
            let v = if neg { -v } else { v };
            assert_eq!(f16_to_f32(h), (v as f32).to_bits(), "e5m2 {code:#04x}");
            assert_eq!(f32_to_e5m2_satfinite(f16_to_f32(h)), code, "e5m2 round trip {code:#04x}");
        }
    }
}

/// The vectors in `tests/data/`: columns (hex) input_bits, e4m3fn_torch, e4m3fn_torch_sat,
/// e5m2_torch, e5m2_torch_sat, e4m3fn_mldtypes, e2m1.., e8m0...
fn load(name: &str) -> Vec<[u32; 6]> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/").to_string() + name;
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let rows: Vec<[u32; 6]> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<u32> = l.split(',').map(|s| u32::from_str_radix(s.trim(), 16).unwrap()).collect();
            assert_eq!(c.len(), 9, "{path}: {l}");
            [c[0], c[1], c[2], c[3], c[4], c[5]]
        })
        .collect();
    assert!(rows.len() > 6000, "{path}: {} rows", rows.len());
    rows
}

/// Checks the FP8 columns of one file. `cvt.rn.satfinite` equals PyTorch's clamp-then-cast
/// (`*_torch_sat`) on every row but a negative NaN, which PyTorch keeps negative (`0xff`) and
/// the device makes the canonical `0x7f`. The non-saturating casts (`e4m3fn_torch`,
/// `e4m3fn_mldtypes`, `e5m2_torch`) equal ours exactly where they do not overflow: E4M3 past
/// 464 becomes NaN there (ours ±448), E5M2 from 61440 up becomes Inf (ours ±57344).
/// Returns the rows where the saturating columns differ.
fn check_fp8_file(name: &str) -> Vec<u32> {
    let mut sat_diffs = Vec::new();
    let (mut e4_overflow_rows, mut e5_overflow_rows) = (0, 0);
    for [x, e4_torch, e4_sat, e5_torch, e5_sat, e4_ml] in load(name) {
        let v = f32::from_bits(x);
        let e4 = f32_to_e4m3_satfinite(x) as u32;
        let e5 = f32_to_e5m2_satfinite(x) as u32;
        if e4 != e4_sat || e5 != e5_sat {
            sat_diffs.push(x);
            assert!(
                v.is_nan() && v.is_sign_negative(),
                "{name} {x:#010x}: e4m3 {e4:#x} vs {e4_sat:#x}, e5m2 {e5:#x} vs {e5_sat:#x}"
            );
            assert_eq!((e4, e5, e4_sat, e5_sat), (0x7f, 0x7f, 0xff, 0xff));
        }
        if v.is_nan() {
            continue;
        }
        if v.abs() <= 464.0 {
            assert_eq!(e4, e4_torch, "{name} {x:#010x} e4m3 torch");
            assert_eq!(e4, e4_ml, "{name} {x:#010x} e4m3 ml_dtypes");
        } else {
            e4_overflow_rows += 1;
            assert_eq!(e4_torch & 0x7f, 0x7f, "{name} {x:#010x}: torch gives NaN past 464");
            assert_eq!(e4 & 0x7f, 0x7e);
        }
        if v.abs() < 61440.0 {
            assert_eq!(e5, e5_torch, "{name} {x:#010x} e5m2 torch");
        } else {
            e5_overflow_rows += 1;
            assert_eq!(e5_torch & 0x7f, 0x7c, "{name} {x:#010x}: torch gives Inf from 61440");
            assert_eq!(e5 & 0x7f, 0x7b);
        }
    }
    assert!(e4_overflow_rows > 10 && e5_overflow_rows > 5, "{name}: the overflow cases are covered");
    sat_diffs
}

#[test]
fn fp8_matches_pytorch_and_ml_dtypes_vectors() {
    assert_eq!(check_fp8_file("conversions_f32.csv"), Vec::<u32>::new(), "f32 inputs: the only NaN is +NaN");
    assert_eq!(check_fp8_file("conversions_bf16.csv"), vec![0xffff_0000], "bf16 inputs: one negative NaN");
}

/// `conversions_bf16.csv`'s inputs are `conversions_f32.csv`'s rounded to bf16 by PyTorch (RNE):
/// `cvt.rn.bf16.f32` must give the same bits, except for NaN (PyTorch: `0xffff`, PTX `0x7fff`).
#[test]
fn bf16_rounding_matches_pytorch_vectors() {
    let a = load("conversions_f32.csv");
    let b = load("conversions_bf16.csv");
    assert_eq!(a.len(), b.len());
    let mut nan_rows = 0;
    for (ra, rb) in a.iter().zip(&b) {
        let (x, want) = (ra[0], rb[0]);
        assert_eq!(want & 0xffff, 0);
        let got = f32_to_bf16(x, Rnd::Rn, false);
        if f32::from_bits(x).is_nan() {
            nan_rows += 1;
            assert_eq!((got, want), (NAN_16, 0xffff_0000));
        } else {
            assert_eq!(got as u32, want >> 16, "{x:#010x}");
            // Re-rounding a bf16 value is exact, in every mode.
            for rnd in MODES {
                assert_eq!(f32_to_bf16(want, rnd, false) as u32, want >> 16);
            }
        }
    }
    assert_eq!(nan_rows, 1);
}

// ---------------------------------------------------------------------------------------------
// Integer conversions
// ---------------------------------------------------------------------------------------------

#[test]
fn float_to_int_rounds_and_saturates() {
    let i32_ = |x: f32, rnd| float_to_int(f(x) as u64, false, rnd, true, 32);
    let u32_ = |x: f32, rnd| float_to_int(f(x) as u64, false, rnd, false, 32);
    let s = |v: i64| v as u64;
    // Rounding directions.
    assert_eq!(i32_(2.5, Rnd::Rni), s(2));
    assert_eq!(i32_(3.5, Rnd::Rni), s(4));
    assert_eq!(i32_(-2.5, Rnd::Rni), s(-2));
    assert_eq!(i32_(-2.7, Rnd::Rzi), s(-2));
    assert_eq!(i32_(-2.2, Rnd::Rmi), s(-3));
    assert_eq!(i32_(-2.7, Rnd::Rpi), s(-2));
    assert_eq!(i32_(2.2, Rnd::Rpi), s(3));
    assert_eq!(i32_(2.7, Rnd::Rmi), s(2));
    assert_eq!(i32_(2.7, Rnd::None), s(2), "no modifier truncates");
    // Saturation at the destination's range.
    assert_eq!(i32_(2147483648.0, Rnd::Rzi), s(i32::MAX as i64));
    assert_eq!(i32_(2147483520.0, Rnd::Rzi), s(2147483520), "largest f32 below 2^31");
    assert_eq!(i32_(-2147483648.0, Rnd::Rzi), s(i32::MIN as i64));
    assert_eq!(i32_(-3e9, Rnd::Rzi), s(i32::MIN as i64));
    assert_eq!(i32_(f32::INFINITY, Rnd::Rni), s(i32::MAX as i64));
    assert_eq!(i32_(f32::NEG_INFINITY, Rnd::Rni), s(i32::MIN as i64));
    assert_eq!(u32_(-0.7, Rnd::Rzi), 0);
    assert_eq!(u32_(-0.7, Rnd::Rni), 0);
    assert_eq!(u32_(-1.5, Rnd::Rzi), 0);
    assert_eq!(u32_(4294967296.0, Rnd::Rzi), u32::MAX as u64);
    assert_eq!(u32_(4294967040.0, Rnd::Rzi), 4294967040);
    assert_eq!(u32_(0.5, Rnd::Rpi), 1);
    // Narrow destinations: signed results sign-extended to 64 bits, unsigned zero-extended.
    assert_eq!(float_to_int(f(-1.0) as u64, false, Rnd::Rzi, true, 8), s(-1));
    assert_eq!(float_to_int(f(200.0) as u64, false, Rnd::Rzi, true, 8), 127);
    assert_eq!(float_to_int(f(-200.0) as u64, false, Rnd::Rzi, true, 8), s(-128));
    assert_eq!(float_to_int(f(300.0) as u64, false, Rnd::Rzi, false, 8), 255);
    assert_eq!(float_to_int(f(70000.0) as u64, false, Rnd::Rzi, true, 16), 32767);
    assert_eq!(float_to_int(f(70000.0) as u64, false, Rnd::Rzi, false, 16), 65535);
    // 64-bit destinations, f64 sources.
    let i64_ = |x: f64, rnd| float_to_int(d(x), true, rnd, true, 64);
    let u64_ = |x: f64, rnd| float_to_int(d(x), true, rnd, false, 64);
    assert_eq!(i64_(9.3e18, Rnd::Rzi), s(i64::MAX));
    assert_eq!(i64_(9223372036854774784.0, Rnd::Rzi), s(9223372036854774784));
    assert_eq!(i64_(-9223372036854775808.0, Rnd::Rzi), s(i64::MIN));
    assert_eq!(i64_(-1e19, Rnd::Rzi), s(i64::MIN));
    assert_eq!(u64_(1.8446744073709552e19, Rnd::Rzi), u64::MAX);
    assert_eq!(u64_(18446744073709549568.0, Rnd::Rzi), 18446744073709549568);
    assert_eq!(u64_(-5.0, Rnd::Rzi), 0);
    assert_eq!(i64_(-0.5, Rnd::Rmi), s(-1));
    assert_eq!(i64_(4503599627370497.5, Rnd::Rni), s(4503599627370498));
    assert_eq!(float_to_int(d(3e9), true, Rnd::Rzi, true, 32), s(i32::MAX as i64));
    assert_eq!(float_to_int(f(3e19) as u64, false, Rnd::Rzi, true, 64), s(i64::MAX));
    // NaN: 0 from f32 into <= 32 bits; 1 << (bits-1) from f64 or into 64 bits (ISA, cvt notes).
    let nan32 = 0x7fc0_0000u64;
    let nan64 = 0x7ff8_0000_0000_0000u64;
    assert_eq!(float_to_int(nan32, false, Rnd::Rni, true, 32), 0);
    assert_eq!(float_to_int(nan32, false, Rnd::Rni, false, 32), 0);
    assert_eq!(float_to_int(nan32, false, Rnd::Rzi, true, 16), 0);
    assert_eq!(float_to_int(nan32, false, Rnd::Rzi, true, 64), s(i64::MIN));
    assert_eq!(float_to_int(nan32, false, Rnd::Rzi, false, 64), 1 << 63);
    assert_eq!(float_to_int(nan64, true, Rnd::Rzi, true, 64), s(i64::MIN));
    assert_eq!(float_to_int(nan64, true, Rnd::Rzi, true, 32), s(i32::MIN as i64));
    assert_eq!(float_to_int(nan64, true, Rnd::Rzi, false, 32), 0x8000_0000);
    assert_eq!(float_to_int(nan64, true, Rnd::Rzi, true, 8), s(-128));

    // Random inputs against the host's saturating casts (NaN excluded).
    let mut rng = Rng(31);
    for _ in 0..20_000 {
        let x = rng.f32_bits();
        let v = f32::from_bits(x);
        if v.is_nan() {
            continue;
        }
        for (rnd, r) in
            [(Rnd::Rni, v.round_ties_even()), (Rnd::Rzi, v.trunc()), (Rnd::Rmi, v.floor()), (Rnd::Rpi, v.ceil())]
        {
            assert_eq!(float_to_int(x as u64, false, rnd, true, 32), r as i32 as i64 as u64);
            assert_eq!(float_to_int(x as u64, false, rnd, false, 32), r as u32 as u64);
            assert_eq!(float_to_int(x as u64, false, rnd, true, 64), r as i64 as u64);
            assert_eq!(float_to_int(x as u64, false, rnd, false, 64), r as u64);
            assert_eq!(float_to_int(x as u64, false, rnd, true, 16), r as i16 as i64 as u64);
            assert_eq!(float_to_int(x as u64, false, rnd, false, 8), r as u8 as u64);
        }
    }
}

/// Reference int -> float in a directed mode: the host's round-to-nearest cast, moved one step
/// when it lies on the wrong side of the exact value (compared exactly, in i128).
fn ref_int_to_float(v: i128, to_f64: bool, rnd: Rnd) -> u64 {
    let (bits, exact): (u64, i128) = if to_f64 {
        let r = v as f64;
        (d(r), r as i128)
    } else {
        let r = v as f32;
        (f(r) as u64, r as i128)
    };
    if exact == v || matches!(rnd, Rnd::Rn) {
        return bits;
    }
    let neg = v < 0;
    // Step one code toward (down) or away from (up) zero.
    let toward_zero = bits - 1;
    let away = bits + 1;
    let too_big = exact.abs() > v.abs(); // |rn| > |v|
    match rnd {
        Rnd::Rz => {
            if too_big {
                toward_zero
            } else {
                bits
            }
        }
        Rnd::Rm => {
            if neg {
                if too_big { bits } else { away }
            } else if too_big {
                toward_zero
            } else {
                bits
            }
        }
        Rnd::Rp => {
            if neg {
                if too_big { toward_zero } else { bits }
            } else if too_big {
                bits
            } else {
                away
            }
        }
        _ => unreachable!(),
    }
}

#[test]
fn int_to_float_rounds_in_every_mode() {
    let mut rng = Rng(77);
    let specials: [i128; 12] = [
        0,
        1,
        -1,
        (1 << 24) + 1,
        (1 << 24) + 3,
        -(1 << 24) - 1,
        (1 << 53) + 1,
        i64::MAX as i128,
        i64::MIN as i128,
        u64::MAX as i128,
        16777217 * 3,
        0x7fff_ff80_0000_0000,
    ];
    for i in 0..40_000 {
        let raw = if i < specials.len() { specials[i] as u64 } else { rng.next() >> (rng.next() % 64) };
        for (signed, bits) in [(true, 64), (false, 64), (true, 32), (false, 32), (true, 16), (false, 8)] {
            let shift = 128 - bits;
            let v: i128 =
                if signed { ((raw as i128) << shift) >> shift } else { (((raw as u128) << shift) >> shift) as i128 };
            for rnd in MODES {
                for to_f64 in [false, true] {
                    let want = ref_int_to_float(v, to_f64, rnd);
                    let got = int_to_float(raw, signed, bits, to_f64, rnd);
                    assert_eq!(got, want, "{v} (s={signed} bits={bits}) to_f64={to_f64} {rnd:?}");
                }
            }
        }
    }
    // Named cases.
    assert_eq!(int_to_float(16777217, false, 32, false, Rnd::Rn), f(16777216.0) as u64);
    assert_eq!(int_to_float(16777219, false, 32, false, Rnd::Rn), f(16777220.0) as u64);
    assert_eq!(int_to_float(16777217, false, 32, false, Rnd::Rp), f(16777218.0) as u64);
    assert_eq!(int_to_float((-16777217i64) as u64, true, 64, false, Rnd::Rm), f(-16777218.0) as u64);
    assert_eq!(int_to_float(u64::MAX, false, 64, false, Rnd::Rz), f(18446742974197923840.0) as u64);
    assert_eq!(int_to_float(u64::MAX, false, 64, true, Rnd::Rn), d(18446744073709551616.0));
    assert_eq!(int_to_float(0xff, true, 8, false, Rnd::Rn), f(-1.0) as u64, "v's low bits only");
    assert_eq!(int_to_float(0xffff_ff00, false, 8, false, Rnd::Rn), 0, "+0.0");
    assert_eq!(int_to_float(0, true, 32, false, Rnd::Rm), 0, "+0.0 in every mode");
    // int -> f16: overflow by mode.
    assert_eq!(int_to_f16(65504, false, 32, Rnd::Rn), 0x7bff);
    assert_eq!(int_to_f16(65519, false, 32, Rnd::Rn), 0x7bff);
    assert_eq!(int_to_f16(65520, false, 32, Rnd::Rn), 0x7c00);
    assert_eq!(int_to_f16(100000, false, 32, Rnd::Rz), 0x7bff);
    assert_eq!(int_to_f16((-100000i64) as u64, true, 64, Rnd::Rm), 0xfc00);
    assert_eq!(int_to_f16(2049, false, 16, Rnd::Rn), 0x6800);
    assert_eq!(int_to_f16(2049, false, 16, Rnd::Rp), 0x6801);
}

#[test]
fn round_to_integral_float() {
    let r = |x: f32, rnd| f32::from_bits(round_int_f32(f(x), rnd));
    assert_eq!(r(2.5, Rnd::Rni), 2.0);
    assert_eq!(r(-2.5, Rnd::Rni), -2.0);
    assert_eq!(r(-0.4, Rnd::Rni).to_bits(), f(-0.0));
    assert_eq!(r(-0.4, Rnd::Rpi).to_bits(), f(-0.0));
    assert_eq!(r(0.4, Rnd::Rmi).to_bits(), 0);
    assert_eq!(r(-1.1, Rnd::Rmi), -2.0);
    assert_eq!(r(1.1, Rnd::Rpi), 2.0);
    assert_eq!(r(1.9, Rnd::Rzi), 1.0);
    assert_eq!(r(f32::INFINITY, Rnd::Rni), f32::INFINITY);
    assert_eq!(round_int_f32(0xffc0_0001, Rnd::Rni), NAN_F32);
    assert_eq!(round_int_f64(d(-2.5), Rnd::Rni), d(-2.0));
    assert_eq!(round_int_f64(d(2.5), Rnd::Rpi), d(3.0));
    assert_eq!(round_int_f64(0x7ff0_0000_0000_0003, Rnd::Rzi), 0x7ff8_0000_0000_0003);
}

// ---------------------------------------------------------------------------------------------
// f32 arithmetic with directed rounding
// ---------------------------------------------------------------------------------------------

/// Rounds the exact value `sign · m · 2^-s` (m: u128) to f32 in mode `rnd`: the f32 codes next
/// to the host's approximation are compared with it exactly, in integers.
fn ref_exact_to_f32(neg: bool, m: u128, s: u32, rnd: Rnd) -> u32 {
    if m == 0 {
        return (neg as u32) << 31;
    }
    let approx = (m as f64 / 2f64.powi(s as i32)) as f32;
    // The scaled value of f32 code c (non-negative), or None if it is not a multiple of 2^-s
    // (far below the range these tests use).
    let scaled = |c: u32| -> u128 {
        let v = f32::from_bits(c);
        let (mant, exp) = {
            let b = v.to_bits();
            let e = ((b >> 23) & 0xff) as i32;
            let fr = (b & 0x7f_ffff) as u128;
            if e == 0 { (fr, -149) } else { (fr | 1 << 23, e - 150) }
        };
        let sh = exp + s as i32;
        assert!(sh >= 0, "reference range");
        mant << sh
    };
    let mut lo = approx.to_bits().saturating_sub(2);
    while scaled(lo + 1) <= m {
        lo += 1;
    }
    assert!(scaled(lo) <= m);
    let (vlo, vhi) = (scaled(lo), scaled(lo + 1));
    let code = if vlo == m {
        lo
    } else {
        match rnd {
            Rnd::Rn => {
                let (dl, dh) = (m - vlo, vhi - m);
                if dl < dh || (dl == dh && lo % 2 == 0) { lo } else { lo + 1 }
            }
            Rnd::Rz => lo,
            Rnd::Rm => {
                if neg {
                    lo + 1
                } else {
                    lo
                }
            }
            Rnd::Rp => {
                if neg {
                    lo
                } else {
                    lo + 1
                }
            }
            _ => unreachable!(),
        }
    };
    code | (neg as u32) << 31
}

/// A random f32 with exponent in [lo, hi] (unbiased) and a random sign and fraction.
fn rand_f32(rng: &mut Rng, lo: i32, hi: i32) -> f32 {
    let e = (lo + (rng.next() % (hi - lo + 1) as u64) as i32 + 127) as u32;
    let frac = rng.next() as u32 & 0x807f_ffff;
    f32::from_bits(frac | e << 23)
}

/// An f32 as an exact integer multiple of 2^-s: (negative, magnitude).
fn scaled_of(x: f32, s: u32) -> (bool, u128) {
    let b = x.to_bits();
    let e = ((b >> 23) & 0xff) as i32;
    let fr = (b & 0x7f_ffff) as u128;
    let (m, exp) = if e == 0 { (fr, -149) } else { (fr | 1 << 23, e - 150) };
    if m == 0 {
        return (b >> 31 != 0, 0);
    }
    let sh = exp + s as i32 + m.trailing_zeros() as i32;
    assert!(sh >= 0, "{x:e} is not a multiple of 2^-{s}");
    (b >> 31 != 0, (m >> m.trailing_zeros()) << sh)
}

fn signed_sum(a: (bool, u128), b: (bool, u128)) -> (bool, u128) {
    let (x, y) = (if a.0 { -(a.1 as i128) } else { a.1 as i128 }, if b.0 { -(b.1 as i128) } else { b.1 as i128 });
    let s = x + y;
    (s < 0, s.unsigned_abs())
}

fn exact_zero(rnd: Rnd) -> u32 {
    if rnd == Rnd::Rm { 0x8000_0000 } else { 0 }
}

/// Scales (all values multiples of 2^-scale and below 2^124, so sums fit i128 exactly):
/// sums: exponents in [-20, 20], scale 100; products and fmas: a, b in [-6, 6], c in [-14, 14],
/// scale 110; the neighbours of every result stay multiples of 2^-scale.
#[test]
fn directed_f32_arithmetic_matches_exact_arithmetic() {
    let mut rng = Rng(2024);
    for i in 0..30_000 {
        let (x, y) = (rand_f32(&mut rng, -20, 20), rand_f32(&mut rng, -20, 20));
        let y = if i % 7 == 0 { -x * 1.0000001 } else { y }; // heavy cancellation
        let (a, b) = (rand_f32(&mut rng, -6, 6), rand_f32(&mut rng, -6, 6));
        let c = if i % 5 == 0 { -(a as f64 * b as f64) as f32 } else { rand_f32(&mut rng, -14, 14) };
        for rnd in MODES {
            let round = |(neg, m): (bool, u128), s| {
                if m == 0 { exact_zero(rnd) } else { ref_exact_to_f32(neg, m, s, rnd) }
            };
            // add / sub
            let want = round(signed_sum(scaled_of(x, 100), scaled_of(y, 100)), 100);
            assert_eq!(add_f32(f(x), f(y), rnd), want, "{x:e} + {y:e} {rnd:?}");
            let want = round(signed_sum(scaled_of(x, 100), scaled_of(-y, 100)), 100);
            assert_eq!(sub_f32(f(x), f(y), rnd), want, "{x:e} - {y:e} {rnd:?}");
            // mul
            let (na, ma) = scaled_of(a, 55);
            let (nb, mb) = scaled_of(b, 55);
            let p = (na != nb, ma * mb);
            assert_eq!(mul_f32(f(a), f(b), rnd), round(p, 110), "{a:e} * {b:e} {rnd:?}");
            // fma
            let want = round(signed_sum(p, scaled_of(c, 110)), 110);
            assert_eq!(fma_f32(f(a), f(b), f(c), rnd), want, "fma({a:e}, {b:e}, {c:e}) {rnd:?}");
            // div and sqrt: the result brackets the exact value as the mode requires.
            let q = f32::from_bits(div_f32(f(a), f(b), rnd));
            check_div(a, b, q, rnd);
            let s = f32::from_bits(sqrt_f32(f(a.abs()), rnd));
            check_sqrt(a.abs(), s, rnd);
        }
    }
    // .rn agrees with the host's IEEE operations.
    for _ in 0..20_000 {
        let (x, y, z) = (rng.f32_bits(), rng.f32_bits(), rng.f32_bits());
        let (a, b, c) = (f32::from_bits(x), f32::from_bits(y), f32::from_bits(z));
        assert_eq!(add_f32(x, y, Rnd::Rn), canon_f32(f(a + b)));
        assert_eq!(sub_f32(x, y, Rnd::Rn), canon_f32(f(a - b)));
        assert_eq!(mul_f32(x, y, Rnd::Rn), canon_f32(f(a * b)));
        assert_eq!(div_f32(x, y, Rnd::Rn), canon_f32(f(a / b)));
        assert_eq!(fma_f32(x, y, z, Rnd::Rn), canon_f32(f(a.mul_add(b, c))));
        assert_eq!(sqrt_f32(x, Rnd::Rn), canon_f32(f(a.sqrt())));
        assert_eq!(add_f32(x, y, Rnd::None), add_f32(x, y, Rnd::Rn));
    }
}

/// `q` against the exact quotient `a / b` (a, b exponents in [-6, 6], so q ∈ (2^-13, 2^14)):
/// `t·b` versus `a` compared exactly, t scaled by 2^40, b by 2^30, a by 2^70.
fn check_div(a: f32, b: f32, q: f32, rnd: Rnd) {
    let (na, ma) = scaled_of(a, 70);
    let av = if na { -(ma as i128) } else { ma as i128 };
    let prod = |t: f32| {
        let (nt, mt) = scaled_of(t, 40);
        let (nb, mb) = scaled_of(b, 30);
        let v = (mt * mb) as i128;
        if nt != nb { -v } else { v }
    };
    // t above the exact quotient iff t·b − a has b's sign.
    let above = |t: f32| if b > 0.0 { prod(t) > av } else { prod(t) < av };
    let below = |t: f32| if b > 0.0 { prod(t) < av } else { prod(t) > av };
    let up = |t: f32| f32::from_bits(if t >= 0.0 { t.to_bits() + 1 } else { t.to_bits() - 1 });
    let down = |t: f32| f32::from_bits(if t > 0.0 { t.to_bits() - 1 } else { t.to_bits() + 1 });
    if !above(q) && !below(q) {
        return; // exact
    }
    let ok = match rnd {
        Rnd::Rz if q > 0.0 => below(q) && above(up(q)),
        Rnd::Rz => above(q) && below(down(q)),
        Rnd::Rm => below(q) && above(up(q)),
        Rnd::Rp => above(q) && below(down(q)),
        _ => q == a / b,
    };
    assert!(ok, "{a:e} / {b:e} = {q:e} {rnd:?}");
}

/// `s` against the exact `sqrt(a)` (a ∈ [2^-6, 2^7)): `t²` versus `a` exactly, t scaled by 2^30.
fn check_sqrt(a: f32, s: f32, rnd: Rnd) {
    let sq = |t: f32| {
        let (_, m) = scaled_of(t, 30);
        m * m
    };
    let (_, am) = scaled_of(a, 60);
    let next = |t: f32| f32::from_bits(t.to_bits() + 1);
    let prev = |t: f32| f32::from_bits(t.to_bits() - 1);
    if sq(s) == am {
        return;
    }
    let ok = match rnd {
        Rnd::Rz | Rnd::Rm => sq(s) < am && sq(next(s)) > am,
        Rnd::Rp => sq(s) > am && sq(prev(s)) < am,
        _ => s == a.sqrt(),
    };
    assert!(ok, "sqrt({a:e}) = {s:e} {rnd:?}");
}

#[test]
fn directed_f32_arithmetic_edges() {
    // Exact zero sums: +0 except under .rm; zeros of one sign keep it.
    for rnd in MODES {
        let neg_zero = rnd == Rnd::Rm;
        let z = if neg_zero { 0x8000_0000 } else { 0 };
        assert_eq!(add_f32(f(1.5), f(-1.5), rnd), z, "{rnd:?}");
        assert_eq!(add_f32(f(0.0), f(-0.0), rnd), z, "{rnd:?}");
        assert_eq!(add_f32(f(-0.0), f(-0.0), rnd), 0x8000_0000);
        assert_eq!(add_f32(f(0.0), f(0.0), rnd), 0);
        assert_eq!(sub_f32(f(2.0), f(2.0), rnd), z);
        assert_eq!(fma_f32(f(2.0), f(3.0), f(-6.0), rnd), z);
        assert_eq!(fma_f32(f(-0.0), f(3.0), f(-0.0), rnd), 0x8000_0000);
        assert_eq!(fma_f32(f(0.0), f(3.0), f(-0.0), rnd), z);
        assert_eq!(mul_f32(f(-0.0), f(3.0), rnd), 0x8000_0000);
        // NaNs are canonical; infinities exact.
        assert_eq!(add_f32(f(f32::INFINITY), f(f32::NEG_INFINITY), rnd), NAN_F32);
        assert_eq!(mul_f32(f(0.0), f(f32::INFINITY), rnd), NAN_F32);
        assert_eq!(add_f32(0xffc0_0001, f(1.0), rnd), NAN_F32);
        assert_eq!(sub_f32(f(1.0), 0x7f80_0001, rnd), NAN_F32);
        assert_eq!(div_f32(f(0.0), f(0.0), rnd), NAN_F32);
        assert_eq!(sqrt_f32(f(-1.0), rnd), NAN_F32);
        assert_eq!(sqrt_f32(f(-0.0), rnd), f(-0.0));
        assert_eq!(add_f32(f(f32::INFINITY), f(1.0), rnd), f(f32::INFINITY));
        assert_eq!(div_f32(f(1.0), f(0.0), rnd), f(f32::INFINITY));
        assert_eq!(rcp_f32(f(-0.0), rnd), f(f32::NEG_INFINITY));
        assert_eq!(rcp_f32(f(4.0), rnd), f(0.25));
    }
    // A tiny addend far below the ulp moves only the directed results.
    let tiny = f(1e-30);
    assert_eq!(add_f32(f(1.0), tiny, Rnd::Rn), f(1.0));
    assert_eq!(add_f32(f(1.0), tiny, Rnd::Rz), f(1.0));
    assert_eq!(add_f32(f(1.0), tiny, Rnd::Rm), f(1.0));
    assert_eq!(add_f32(f(1.0), tiny, Rnd::Rp), f(1.0) + 1);
    assert_eq!(add_f32(f(1.0), tiny | 0x8000_0000, Rnd::Rz), f(1.0) - 1);
    assert_eq!(add_f32(f(1.0), tiny | 0x8000_0000, Rnd::Rm), f(1.0) - 1);
    assert_eq!(add_f32(f(-1.0), tiny, Rnd::Rz), f(-1.0) - 1);
    assert_eq!(add_f32(f(-1.0), tiny, Rnd::Rm), f(-1.0));
    // Overflow per mode.
    assert_eq!(add_f32(f(f32::MAX), f(f32::MAX), Rnd::Rz), f(f32::MAX));
    assert_eq!(add_f32(f(f32::MAX), f(f32::MAX), Rnd::Rn), f(f32::INFINITY));
    assert_eq!(mul_f32(f(f32::MAX), f(-2.0), Rnd::Rp), f(f32::MIN));
    assert_eq!(mul_f32(f(f32::MAX), f(-2.0), Rnd::Rm), f(f32::NEG_INFINITY));
    // Subnormal results.
    assert_eq!(mul_f32(1, f(0.5), Rnd::Rn), 0, "tie to even");
    assert_eq!(mul_f32(1, f(0.5), Rnd::Rp), 1);
    assert_eq!(mul_f32(3, f(0.5), Rnd::Rn), 2);
    assert_eq!(mul_f32(3, f(0.5), Rnd::Rz), 1);
    // 1/3 rounds up to nearest (0x3eaaaaab); sqrt 2 rounds down (0x3fb504f3).
    assert_eq!(div_f32(f(1.0), f(3.0), Rnd::Rn), 0x3eaa_aaab);
    assert_eq!(div_f32(f(1.0), f(3.0), Rnd::Rz), 0x3eaa_aaaa);
    assert_eq!(div_f32(f(1.0), f(3.0), Rnd::Rp), 0x3eaa_aaab);
    assert_eq!(div_f32(f(-1.0), f(3.0), Rnd::Rm), 0xbeaa_aaab);
    assert_eq!(div_f32(f(-1.0), f(3.0), Rnd::Rp), 0xbeaa_aaaa);
    assert_eq!(sqrt_f32(f(2.0), Rnd::Rn), 0x3fb5_04f3);
    assert_eq!(sqrt_f32(f(2.0), Rnd::Rz), 0x3fb5_04f3);
    assert_eq!(sqrt_f32(f(2.0), Rnd::Rm), 0x3fb5_04f3);
    assert_eq!(sqrt_f32(f(2.0), Rnd::Rp), 0x3fb5_04f4);
}
