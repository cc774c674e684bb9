//! Software numeric conversions: integer arithmetic only, no intrinsics, no features.
//!
//! Used on the device where the target has no `cvt` for a format (FP8 below sm_89, FP4 and UE8M0
//! below sm_100a), and compiled into lowp's host tests too (`#[path]`), which check every function
//! here against values cast by PyTorch and ml_dtypes (`tests/data/`). Keep this file free of
//! anything that does not build on both the host and nvptx64.
//!
//! Conventions (the quantizer convention, "satfinite"): round to nearest, ties to even; finite
//! values and infinities beyond the largest finite value saturate to it, keeping the sign. FP8
//! (E4M3FN and E5M2): every NaN gives 0x7f whatever its sign, as the hardware's
//! `cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32` does, so both device paths give the same bits. E2M1 and
//! UE8M0 have their own NaN rules (see their encoders).

/// Round-to-nearest-even of `v / 2^shift`, for `v < 2^24` and `shift >= 1`.
#[inline(always)]
const fn rne_shr(v: u32, shift: u32) -> u32 {
    if shift >= 25 {
        return 0; // v / 2^shift <= 1/2, and exactly 1/2 rounds to the even 0
    }
    let q = v >> shift;
    let rem = v & ((1u32 << shift) - 1);
    let half = 1u32 << (shift - 1);
    if rem > half || (rem == half && (q & 1) == 1) { q + 1 } else { q }
}

/// Encodes a finite, non-negative f32 (given by its bits) into a small float with `man` mantissa
/// bits and minimum normal exponent `emin`, saturating at code `max_code`. Codes count up with
/// magnitude, subnormals included: code = ((e - emin) << man) + rounded significand.
#[inline(always)]
const fn encode_small(abs_bits: u32, man: u32, emin: i32, max_code: u32) -> u32 {
    let fe = (abs_bits >> 23) as i32;
    if fe == 0 {
        return 0; // f32 subnormals (< 2^-126) round to zero in every format here
    }
    let e = fe - 127;
    let full = (abs_bits & 0x7f_ffff) | 0x80_0000; // |x| = full * 2^(e - 23)
    let te = if e > emin { e } else { emin };
    // significand in units of the target quantum 2^(te - man): shift = 23 - man + te - e
    let shift = (23 - man as i32 + te - e) as u32;
    let code = (((te - emin) as u32) << man) + rne_shr(full, shift);
    if code > max_code { max_code } else { code }
}

/// f32 → an FP8 format whose NaN is S.1111111 and whose largest finite code is `max_code`
/// (RNE, saturating; any NaN, either sign, gives the positive NaN 0x7f, as `cvt.rn.satfinite`).
#[inline(always)]
const fn f32_to_fp8_sat(x: f32, man: u32, emin: i32, max_code: u32) -> u8 {
    let bits = x.to_bits();
    let sign = ((bits >> 24) & 0x80) as u8;
    let abs = bits & 0x7fff_ffff;
    if abs > 0x7f80_0000 {
        return 0x7f;
    }
    if abs == 0x7f80_0000 {
        return sign | max_code as u8;
    }
    sign | encode_small(abs, man, emin, max_code) as u8
}

/// f32 → FP8 E4M3FN (bias 7, no infinities, NaN = S.1111.111), saturating at ±448; NaN → 0x7f
/// whatever its sign.
#[inline(always)]
pub const fn f32_to_e4m3fn_sat(x: f32) -> u8 {
    f32_to_fp8_sat(x, 3, -6, 0x7e)
}

/// f32 → FP8 E5M2 (bias 15), saturating at ±57344; NaN → 0x7f (0.11111.11) whatever its sign.
#[inline(always)]
pub const fn f32_to_e5m2_sat(x: f32) -> u8 {
    f32_to_fp8_sat(x, 2, -14, 0x7b)
}

/// f32 → FP4 E2M1 (bias 1, grid {0, 0.5, 1, 1.5, 2, 3, 4, 6}), saturating at ±6, in the low
/// nibble (sign bit 0x8). E2M1 has no NaN and no infinity: ±Inf saturates to ±6, and NaN also
/// encodes as sign | 0x7 (±6); quantizers that must report NaN check for it before converting.
#[inline(always)]
pub const fn f32_to_e2m1_sat(x: f32) -> u8 {
    let bits = x.to_bits();
    let sign = ((bits >> 28) & 0x8) as u8;
    let abs = bits & 0x7fff_ffff;
    if abs >= 0x7f80_0000 {
        return sign | 0x7;
    }
    sign | encode_small(abs, 1, 0, 0x7) as u8
}

/// Decodes a small float code (`man` mantissa bits, minimum normal exponent `emin`, sign at bit
/// `sign_bit`) to f32, ignoring NaN/Inf encodings (callers check those).
#[inline(always)]
fn decode_small(code: u32, man: u32, emin: i32, sign_bit: u32) -> f32 {
    let sign = if (code >> sign_bit) & 1 == 1 { -1.0f32 } else { 1.0f32 };
    let mag = code & ((1 << sign_bit) - 1);
    let exp_field = (mag >> man) as i32;
    let m = (mag & ((1 << man) - 1)) as f32;
    let scale = (1u32 << man) as f32;
    let v = if exp_field == 0 { m / scale * exp2i(emin) } else { (1.0 + m / scale) * exp2i(emin + exp_field - 1) };
    sign * v
}

/// 2^e for e in the f32 normal range.
#[inline(always)]
fn exp2i(e: i32) -> f32 {
    f32::from_bits(((e + 127) as u32) << 23)
}

/// FP8 E4M3FN → f32 (exact).
#[inline(always)]
pub fn e4m3fn_to_f32(v: u8) -> f32 {
    if v & 0x7f == 0x7f {
        return f32::NAN;
    }
    decode_small(v as u32, 3, -6, 7)
}

/// FP8 E5M2 → f32 (exact).
#[inline(always)]
pub fn e5m2_to_f32(v: u8) -> f32 {
    // E5M2 is the top byte of an IEEE binary16: widen through the f16 bits.
    f16_bits_to_f32((v as u16) << 8)
}

/// FP4 E2M1 (low nibble) → f32 (exact).
#[inline(always)]
pub fn e2m1_to_f32(v: u8) -> f32 {
    decode_small((v & 0xf) as u32, 1, 0, 3)
}

/// UE8M0 (unsigned power of two, bias 127, 0xff = NaN) → f32. Code 0 is 2^-127, an f32 subnormal.
#[inline(always)]
pub fn ue8m0_to_f32(v: u8) -> f32 {
    match v {
        0xff => f32::NAN,
        0 => f32::from_bits(0x0040_0000),
        _ => f32::from_bits((v as u32) << 23),
    }
}

/// Positive finite f32 → UE8M0 rounding down: 2^⌊log2 x⌋ (the exponent field), clamped to
/// [2^-127, 2^127]. NaN, Inf and non-positive inputs give 0xff (NaN).
#[inline(always)]
pub const fn f32_to_ue8m0_floor(x: f32) -> u8 {
    let bits = x.to_bits();
    if bits == 0 || bits >= 0x7f80_0000 {
        return 0xff;
    }
    // f32 subnormals (exponent 0) clamp to 2^-127, code 0
    (bits >> 23) as u8
}

/// Positive finite f32 → UE8M0 rounding up: 2^⌈log2 x⌉, clamped to [2^-127, 2^127]. NaN, Inf and
/// non-positive inputs give 0xff (NaN).
#[inline(always)]
pub const fn f32_to_ue8m0_ceil(x: f32) -> u8 {
    let bits = x.to_bits();
    if bits == 0 || bits >= 0x7f80_0000 {
        return 0xff;
    }
    let e = bits >> 23;
    let m = bits & 0x7f_ffff;
    if e == 0 {
        // subnormal: 2^-127 covers x <= 2^-127 (m <= 0x40_0000), else 2^-126
        return if m <= 0x40_0000 { 0 } else { 1 };
    }
    let up = if m != 0 { e + 1 } else { e };
    if up > 254 { 254 } else { up as u8 }
}

/// bf16 bits → f32 (exact).
#[inline(always)]
pub const fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// f32 → bf16 bits, round to nearest even; NaN stays a (quiet) NaN with its sign.
#[inline(always)]
pub const fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if (bits & 0x7fff_ffff) > 0x7f80_0000 {
        return ((bits >> 16) | 0x0040) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    ((bits + round) >> 16) as u16
}

/// IEEE binary16 bits → f32 (exact).
#[inline(always)]
pub fn f16_bits_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let e = ((h >> 10) & 0x1f) as u32;
    let m = (h & 0x3ff) as u32;
    let mag = if e == 0x1f {
        0x7f80_0000 | (m << 13)
    } else if e == 0 {
        if m == 0 {
            0
        } else {
            // subnormal: m * 2^-24, exact in f32
            (m as f32 * exp2i(-24)).to_bits()
        }
    } else {
        ((e + 112) << 23) | (m << 13)
    };
    f32::from_bits(sign | mag)
}
