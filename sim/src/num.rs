//! Bit-exact numerics of the PTX instructions: canonical NaNs, `min`/`max`, and every conversion
//! `cvt` performs. Values are raw bits; each function states the PTX ISA rule it follows.
//!
//! Sources of the rules, quoted where they decide a case:
//! - PTX ISA §9.7.3 (floating-point instructions): "NaN payloads are supported for
//!   double-precision instructions [...]. Single-precision instructions return an unspecified
//!   NaN"; the GPU's single-precision NaN is `0x7fffffff` (CUDA programming guide, and
//!   `CUDART_NAN_F`).
//! - PTX ISA §9.7.3.11/12 (`min`/`max`): one NaN operand gives the other operand, two give NaN,
//!   and "if values of both inputs are 0.0, then +0.0 > -0.0".
//! - PTX ISA §9.7.9.21 (`cvt`): rounding modifiers, `.sat` ("limits the result to the range
//!   [0.0, 1.0]. NaN results are flushed to positive zero"), `.satfinite` (NaN stays NaN, a
//!   magnitude above MAX_NORM becomes the sign-preserved MAX_NORM), float-to-integer clamping
//!   and its NaN results.
//! - NaN encodings the ISA leaves open (`f16`/`bf16`/FP8 results) follow the host emulation
//!   NVIDIA ships in `cuda_fp16.hpp`, `cuda_bf16.hpp` and `cuda_fp8.hpp`, which is written to
//!   match the device bit for bit: `f16`/`bf16` NaN `0x7fff`, E4M3 and E5M2 NaN `0x7f`.
//!
//! Rounding is done once, exactly: every conversion decomposes its input into an exact
//! `±m·2^e` and rounds that to the destination format (`round_mag`); no intermediate
//! format is involved, so there is no double rounding.

use crate::ir::Rnd;

/// PTX's canonical f32 NaN.
pub const NAN_F32: u32 = 0x7fff_ffff;
/// The NaN a double-precision operation creates from non-NaN operands (`inf - inf`, `0 * inf`):
/// `0xfff8000000000000`, the value of CUDA's `CUDART_NAN`. The ISA does not spell this pattern
/// out; NaN operands are propagated instead (see [`arith_nan_f64`]).
pub const NAN_F64: u64 = 0xfff8_0000_0000_0000;
/// The canonical `f16` and `bf16` NaN (`cvt` to `.f16`/`.bf16` of any NaN).
pub const NAN_16: u16 = 0x7fff;
/// The NaN of E4M3 and E5M2 produced by `cvt.rn.satfinite.{e4m3x2,e5m2x2}` from any NaN.
pub const NAN_FP8: u8 = 0x7f;

const F64_QUIET: u64 = 1 << 51;

// ---------------------------------------------------------------------------------------------
// Rounding core
// ---------------------------------------------------------------------------------------------

/// A binary floating-point format: exponent and explicit-mantissa widths.
#[derive(Clone, Copy)]
struct Fmt {
    ebits: u32,
    mbits: u32,
}

const F16: Fmt = Fmt { ebits: 5, mbits: 10 };
const BF16: Fmt = Fmt { ebits: 8, mbits: 7 };
const F32: Fmt = Fmt { ebits: 8, mbits: 23 };
const F64: Fmt = Fmt { ebits: 11, mbits: 52 };
const E4M3: Fmt = Fmt { ebits: 4, mbits: 3 };
const E5M2: Fmt = Fmt { ebits: 5, mbits: 2 };

impl Fmt {
    /// Magnitude code of +Inf (all-ones exponent, zero fraction).
    #[inline(always)]
    const fn inf(self) -> u64 {
        ((1 << self.ebits) - 1) << self.mbits
    }
    /// Bit position of the sign.
    #[inline(always)]
    const fn sign_shift(self) -> u32 {
        self.ebits + self.mbits
    }
}

/// The direction of a rounding: PTX's `.rn .rz .rm .rp`, and the integer forms `.rni .rzi
/// .rmi .rpi` round the same way (to an integer instead of to the format's precision).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Dir {
    Near,
    Zero,
    Down,
    Up,
}

/// `Rnd::None` is round-to-nearest-even, PTX's default for floating-point results.
#[inline(always)]
fn dir(rnd: Rnd) -> Dir {
    match rnd {
        Rnd::None | Rnd::Rn | Rnd::Rni => Dir::Near,
        Rnd::Rz | Rnd::Rzi => Dir::Zero,
        Rnd::Rm | Rnd::Rmi => Dir::Down,
        Rnd::Rp | Rnd::Rpi => Dir::Up,
    }
}

/// Rounds the exact magnitude `m·2^e` (sign `neg`, for the directed modes) to format `f`, IEEE
/// style with gradual underflow. Returns the magnitude code (biased exponent and fraction as one
/// integer); a code `>= f.inf()` means the rounded value overflowed the format, and the caller
/// decides what that gives (`finish`).
#[inline(always)]
fn round_mag(neg: bool, m: u64, e: i32, f: Fmt, d: Dir) -> u64 {
    if m == 0 {
        return 0;
    }
    let bias = (1i32 << (f.ebits - 1)) - 1;
    let emin = 1 - bias;
    // The value lies in [2^big_e, 2^(big_e+1)).
    let big_e = e + 63 - m.leading_zeros() as i32;
    let scale = big_e.max(emin);
    // Exponent of one unit in the last place of the result.
    let q = scale - f.mbits as i32;
    let shift = q - e;
    let n = if shift <= 0 {
        // Exact: the significand fits (it has at most mbits+1 bits here).
        m << (-shift) as u32
    } else {
        let (n, rem, half) = if shift >= 128 {
            (0u64, 1u128, u128::MAX)
        } else {
            let mm = m as u128;
            let s = shift as u32;
            ((mm >> s) as u64, mm & ((1u128 << s) - 1), 1u128 << (s - 1))
        };
        let up = match d {
            Dir::Near => rem > half || (rem == half && n & 1 == 1),
            Dir::Zero => false,
            Dir::Down => neg && rem != 0,
            Dir::Up => !neg && rem != 0,
        };
        n + up as u64
    };
    (((scale - emin) as u64) << f.mbits) + n
}

/// Applies IEEE overflow to a magnitude code from [`round_mag`] and attaches the sign: past the
/// largest finite value, `.rn` gives ±Inf, `.rz` ±MAX, `.rm` +MAX/−Inf, `.rp` +Inf/−MAX.
/// With `satfinite`, every overflow gives ±MAX (the caller has already mapped ±Inf inputs).
#[inline(always)]
fn finish(neg: bool, code: u64, f: Fmt, d: Dir, satfinite: bool) -> u64 {
    let inf = f.inf();
    let code = if code >= inf {
        let to_inf = !satfinite
            && match d {
                Dir::Near => true,
                Dir::Zero => false,
                Dir::Down => neg,
                Dir::Up => !neg,
            };
        if to_inf { inf } else { inf - 1 }
    } else {
        code
    };
    code | (neg as u64) << f.sign_shift()
}

/// An f32 or f64 input, decomposed.
enum Val {
    Nan,
    Inf,
    /// The exact magnitude `m·2^e` (`m == 0` for ±0).
    Fin(u64, i32),
}

#[inline(always)]
fn decode_f32(x: u32) -> (bool, Val) {
    let neg = x >> 31 != 0;
    let ef = (x >> 23) & 0xff;
    let frac = (x & 0x7f_ffff) as u64;
    let v = match ef {
        0xff if frac != 0 => Val::Nan,
        0xff => Val::Inf,
        0 => Val::Fin(frac, -149),
        _ => Val::Fin(frac | 1 << 23, ef as i32 - 150),
    };
    (neg, v)
}

#[inline(always)]
fn decode_f64(x: u64) -> (bool, Val) {
    let neg = x >> 63 != 0;
    let ef = ((x >> 52) & 0x7ff) as u32;
    let frac = x & ((1 << 52) - 1);
    let v = match ef {
        0x7ff if frac != 0 => Val::Nan,
        0x7ff => Val::Inf,
        0 => Val::Fin(frac, -1074),
        _ => Val::Fin(frac | 1 << 52, ef as i32 - 1075),
    };
    (neg, v)
}

/// Narrows a decoded value to an IEEE-like format `f` (one with infinities) under `cvt`'s
/// rules. NaN gives `nan` (or +0 with `.sat`); `.sat` clamps to [0.0, 1.0] (−0.0 and every
/// negative value give +0.0: the clamp is `max(+0.0, ·)` with +0.0 > −0.0, as `max` orders
/// zeros); `.satfinite` turns ±Inf inputs and overflow into ±MAX_NORM.
#[inline(always)]
fn narrow(neg: bool, v: Val, f: Fmt, rnd: Rnd, sat: bool, satfinite: bool, nan: u64) -> u64 {
    let d = dir(rnd);
    if sat {
        let one = ((1u64 << (f.ebits - 1)) - 1) << f.mbits;
        return match v {
            Val::Nan => 0,
            _ if neg => 0,
            Val::Inf => one,
            Val::Fin(m, e) => round_mag(false, m, e, f, d).min(one),
        };
    }
    match v {
        Val::Nan => nan,
        Val::Inf if satfinite => (f.inf() - 1) | (neg as u64) << f.sign_shift(),
        Val::Inf => f.inf() | (neg as u64) << f.sign_shift(),
        Val::Fin(m, e) => finish(neg, round_mag(neg, m, e, f, d), f, d, satfinite),
    }
}

// ---------------------------------------------------------------------------------------------
// NaNs, min/max, saturation
// ---------------------------------------------------------------------------------------------

#[inline(always)]
fn is_nan_f32(x: u32) -> bool {
    x & 0x7fff_ffff > 0x7f80_0000
}

#[inline(always)]
fn is_nan_f64(x: u64) -> bool {
    x & 0x7fff_ffff_ffff_ffff > 0x7ff0_0000_0000_0000
}

/// The result of single-precision arithmetic: a NaN becomes the canonical `0x7fffffff`
/// (PTX ISA §9.7.3: single-precision NaN results carry no payload; the GPU's NaN is
/// `0x7fffffff`). Other values are unchanged.
#[inline]
pub fn canon_f32(bits: u32) -> u32 {
    if is_nan_f32(bits) { NAN_F32 } else { bits }
}

/// The result of double-precision arithmetic: "NaN payloads are supported for
/// double-precision instructions" (PTX ISA §9.7.3), so a NaN keeps its sign and payload and is
/// made quiet (IEEE 754 §6.2.3). Use [`arith_nan_f64`] where the operands are at hand: this
/// function cannot tell a propagated NaN from a newly created one.
#[inline]
pub fn canon_f64(bits: u64) -> u64 {
    if is_nan_f64(bits) { bits | F64_QUIET } else { bits }
}

/// The NaN rule of a double-precision operation with operands `a`, `b` whose host-computed
/// result is `r`: a non-NaN `r` is returned as is; otherwise the first NaN operand, made quiet
/// (payload propagation, PTX ISA §9.7.3; which operand wins when both are NaN is not specified
/// by the ISA, this takes the first); with no NaN operand (`inf - inf`, `0 * inf`) the created
/// NaN [`NAN_F64`]. This makes results independent of the host CPU's NaN conventions.
#[inline]
pub fn arith_nan_f64(r: u64, a: u64, b: u64) -> u64 {
    if !is_nan_f64(r) {
        r
    } else if is_nan_f64(a) {
        a | F64_QUIET
    } else if is_nan_f64(b) {
        b | F64_QUIET
    } else {
        NAN_F64
    }
}

/// [`arith_nan_f64`] for three operands (`fma`, `mad`).
#[inline]
pub fn arith_nan_f64_3(r: u64, a: u64, b: u64, c: u64) -> u64 {
    if is_nan_f64(r) && !is_nan_f64(a) && !is_nan_f64(b) && is_nan_f64(c) {
        c | F64_QUIET
    } else {
        arith_nan_f64(r, a, b)
    }
}

/// Maps f32 bits of a non-NaN value to a key whose unsigned order is the numeric order, with
/// −0.0 below +0.0.
#[inline(always)]
fn key32(x: u32) -> u32 {
    if x >> 31 != 0 { !x } else { x | 0x8000_0000 }
}

#[inline(always)]
fn key64(x: u64) -> u64 {
    if x >> 63 != 0 { !x } else { x | 0x8000_0000_0000_0000 }
}

/// `min.f32` (PTX ISA §9.7.3.11): one NaN operand gives the other operand, two give the
/// canonical NaN, and −0.0 < +0.0.
#[inline]
pub fn min_f32(a: u32, b: u32) -> u32 {
    match (is_nan_f32(a), is_nan_f32(b)) {
        (false, false) => {
            if key32(b) < key32(a) {
                b
            } else {
                a
            }
        }
        (true, false) => b,
        (false, true) => a,
        (true, true) => NAN_F32,
    }
}

/// `max.f32` (PTX ISA §9.7.3.12): one NaN operand gives the other operand, two give the
/// canonical NaN, and +0.0 > −0.0.
#[inline]
pub fn max_f32(a: u32, b: u32) -> u32 {
    match (is_nan_f32(a), is_nan_f32(b)) {
        (false, false) => {
            if key32(b) > key32(a) {
                b
            } else {
                a
            }
        }
        (true, false) => b,
        (false, true) => a,
        (true, true) => NAN_F32,
    }
}

/// `min.f64` (PTX ISA §9.7.3.11): one NaN operand gives the other operand; −0.0 < +0.0. Two
/// NaNs give a NaN, which the ISA leaves open: with double-precision payload propagation this
/// is `a`, made quiet.
#[inline]
pub fn min_f64(a: u64, b: u64) -> u64 {
    match (is_nan_f64(a), is_nan_f64(b)) {
        (false, false) => {
            if key64(b) < key64(a) {
                b
            } else {
                a
            }
        }
        (true, false) => b,
        (false, true) => a,
        (true, true) => a | F64_QUIET,
    }
}

/// `max.f64` (PTX ISA §9.7.3.12): as [`min_f64`], with +0.0 > −0.0.
#[inline]
pub fn max_f64(a: u64, b: u64) -> u64 {
    match (is_nan_f64(a), is_nan_f64(b)) {
        (false, false) => {
            if key64(b) > key64(a) {
                b
            } else {
                a
            }
        }
        (true, false) => b,
        (false, true) => a,
        (true, true) => a | F64_QUIET,
    }
}

/// `min` (`MAX` false) or `max` of two 16-bit floats, `.f16` (`BF` false) or `.bf16`, with or
/// without `.NaN` (PTX ISA §9.7.4.7/8, the half-precision `min`/`max`): two NaN operands give
/// the canonical NaN, and so does one with `.NaN`; without it one NaN operand gives the other
/// operand. Otherwise `(a > b) ? a : b` (`<` for `min`) with +0.0 > −0.0; subnormals are
/// values like any other (no `.ftz`). Both formats are sign-magnitude, so one order key serves
/// both; only the NaN test differs (exponent field all ones: `0x7c00` for f16, `0x7f80` for
/// bf16, and a nonzero mantissa).
#[inline(always)]
pub fn minmax16<const BF: bool, const MAX: bool, const NAN: bool>(a: u16, b: u16) -> u16 {
    let inf = if BF { 0x7f80 } else { 0x7c00 };
    let (an, bn) = (a & 0x7fff > inf, b & 0x7fff > inf);
    if an && bn || NAN && (an || bn) {
        return NAN_16;
    }
    if an {
        return b;
    }
    if bn {
        return a;
    }
    let key = |x: u16| if x >> 15 != 0 { !x } else { x | 0x8000 };
    if (key(b) > key(a)) == MAX { b } else { a }
}

/// [`minmax16`] on both halves of a packed `.f16x2` / `.bf16x2` pair (`PAIR`), or on the low
/// 16 bits of a scalar `.f16` / `.bf16` register.
#[inline(always)]
pub fn minmax16x2<const BF: bool, const MAX: bool, const NAN: bool, const PAIR: bool>(a: u64, b: u64) -> u64 {
    let lo = minmax16::<BF, MAX, NAN>(a as u16, b as u16) as u64;
    if PAIR {
        let hi = minmax16::<BF, MAX, NAN>((a >> 16) as u16, (b >> 16) as u16) as u64;
        lo | hi << 16
    } else {
        lo
    }
}

/// `.sat` on an f32 result (`add/sub/mul/mad/fma.sat.f32`, `cvt.sat.f32.*`): clamps to
/// [0.0, 1.0], NaN gives +0.0 (PTX ISA §9.7.3, §9.7.9.21). −0.0 gives +0.0 (the clamp's lower
/// bound is `max` with +0.0, and `max` orders +0.0 > −0.0).
#[inline]
pub fn sat_f32(x: u32) -> u32 {
    let f = f32::from_bits(x);
    if f.is_nan() || f <= 0.0 {
        0
    } else if f >= 1.0 {
        0x3f80_0000
    } else {
        x
    }
}

/// `.sat` on an f64 result: as [`sat_f32`].
#[inline]
pub fn sat_f64(x: u64) -> u64 {
    let f = f64::from_bits(x);
    if f.is_nan() || f <= 0.0 {
        0
    } else if f >= 1.0 {
        0x3ff0_0000_0000_0000
    } else {
        x
    }
}

/// `.ftz` on an f32 input or result: a subnormal becomes the zero of its sign (PTX ISA §9.7.3).
#[inline]
pub fn ftz_f32(x: u32) -> u32 {
    if x & 0x7f80_0000 == 0 { x & 0x8000_0000 } else { x }
}

// ---------------------------------------------------------------------------------------------
// f32 -> f16 / bf16, and back
// ---------------------------------------------------------------------------------------------

/// `cvt{.rnd}{.sat}.f16.f32` (PTX ISA §9.7.9.21): IEEE rounding with the given mode (`None` is
/// `.rn`) and gradual underflow; overflow gives ±Inf under `.rn`, ±65504 under `.rz`, and the
/// directed modes round toward their infinity. NaN gives the canonical `0x7fff`. `.sat` clamps
/// to [0.0, 1.0], NaN and every negative value (−0.0 too) to +0.0.
#[inline]
pub fn f32_to_f16(x: u32, rnd: Rnd, sat: bool) -> u16 {
    let (neg, v) = decode_f32(x);
    narrow(neg, v, F16, rnd, sat, false, NAN_16 as u64) as u16
}

/// `cvt.frnd2.satfinite.f16.f32`: as [`f32_to_f16`], but ±Inf and magnitudes past 65504 give
/// ±65504 (`0x7bff`); NaN stays the canonical NaN (PTX ISA §9.7.9.21, `.satfinite`).
#[inline]
pub fn f32_to_f16_satfinite(x: u32, rnd: Rnd) -> u16 {
    let (neg, v) = decode_f32(x);
    narrow(neg, v, F16, rnd, false, true, NAN_16 as u64) as u16
}

/// `cvt{.rnd}{.sat}.bf16.f32` (PTX ISA §9.7.9.21): as [`f32_to_f16`] for bf16 (8-bit exponent,
/// 7-bit fraction, the f32 exponent range; max finite `0x7f7f`). NaN gives `0x7fff`.
#[inline]
pub fn f32_to_bf16(x: u32, rnd: Rnd, sat: bool) -> u16 {
    if !sat && matches!(rnd, Rnd::Rn | Rnd::None) {
        // bf16 is the top half of f32: round the low half to nearest even.
        if is_nan_f32(x) {
            return NAN_16;
        }
        return ((x + 0x7fff + ((x >> 16) & 1)) >> 16) as u16;
    }
    let (neg, v) = decode_f32(x);
    narrow(neg, v, BF16, rnd, sat, false, NAN_16 as u64) as u16
}

/// `cvt.frnd2.satfinite.bf16.f32`: as [`f32_to_bf16`], but ±Inf and overflow give ±MAX
/// (`0x7f7f`).
#[inline]
pub fn f32_to_bf16_satfinite(x: u32, rnd: Rnd) -> u16 {
    let (neg, v) = decode_f32(x);
    narrow(neg, v, BF16, rnd, false, true, NAN_16 as u64) as u16
}

/// `cvt{.rnd}{.sat}.f16.f64`: as [`f32_to_f16`] from an f64 source (one rounding).
#[inline]
pub fn f64_to_f16(x: u64, rnd: Rnd, sat: bool) -> u16 {
    let (neg, v) = decode_f64(x);
    narrow(neg, v, F16, rnd, sat, false, NAN_16 as u64) as u16
}

/// `cvt{.rnd}.bf16.f64`: as [`f32_to_bf16`] from an f64 source (one rounding).
#[inline]
pub fn f64_to_bf16(x: u64, rnd: Rnd, sat: bool) -> u16 {
    let (neg, v) = decode_f64(x);
    narrow(neg, v, BF16, rnd, sat, false, NAN_16 as u64) as u16
}

/// `cvt.f32.f16`: exact (every f16, subnormals included, is an f32). A NaN gives the canonical
/// f32 NaN `0x7fffffff` (the device result; `cuda_fp16.hpp`'s host emulation of
/// `__half2float` likewise discards a NaN's sign and payload).
#[inline]
pub fn f16_to_f32(h: u16) -> u32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let a = (h & 0x7fff) as u32;
    if a >= 0x7c00 {
        if a > 0x7c00 { NAN_F32 } else { sign | 0x7f80_0000 }
    } else if a >= 0x0400 {
        // Normal: rebias the exponent by 127 - 15.
        sign | ((a << 13) + (112 << 23))
    } else {
        // Zero or subnormal: a·2^-24, exact in f32.
        sign | (a as f32 * f32::from_bits(0x3380_0000)).to_bits()
    }
}

/// `cvt.f32.bf16`: exact, the bf16 bits become the top half of the f32. The ISA says "For
/// `cvt.f32.bf16`, NaN input yields unspecified NaN"; this keeps the NaN as it is (the widening
/// is the shift NVIDIA's headers use for it).
#[inline]
pub fn bf16_to_f32(h: u16) -> u32 {
    (h as u32) << 16
}

// ---------------------------------------------------------------------------------------------
// FP8
// ---------------------------------------------------------------------------------------------

/// `cvt.rn.satfinite.e4m3x2.f32`, one lane (PTX ISA §9.7.9.21, §5.2.3): round to nearest even
/// with E4M3's subnormals (min 2^-9); E4M3 has no infinity, so magnitudes past 448 and ±Inf
/// give ±448 (`0x7e`/`0xfe`): a value in (448, 464] rounds to 448 anyway, one past 464 would
/// round to the NaN code and saturates. NaN gives `0x7f` whatever its sign (`cuda_fp8.hpp`
/// canonicalizes the input NaN to `0x7fffffff` first). Underflow keeps the sign (±0).
#[inline]
pub fn f32_to_e4m3_satfinite(x: u32) -> u8 {
    let (neg, v) = decode_f32(x);
    let code = match v {
        Val::Nan => return NAN_FP8,
        Val::Inf => 0x7e,
        // E4M3's top exponent holds normals up to 1.75·2^8 (code 0x7e); 0x7f is NaN.
        Val::Fin(m, e) => round_mag(neg, m, e, E4M3, Dir::Near).min(0x7e) as u8,
    };
    code | (neg as u8) << 7
}

/// `cvt.rn.satfinite.e5m2x2.f32`, one lane: round to nearest even with E5M2's subnormals (min
/// 2^-16); magnitudes past 57344 and ±Inf give ±57344 (`0x7b`/`0xfb`); NaN gives `0x7f`
/// (`cuda_fp8.hpp`: the canonical f32 NaN's fraction bits become the quiet NaN `0x7f`).
#[inline]
pub fn f32_to_e5m2_satfinite(x: u32) -> u8 {
    let (neg, v) = decode_f32(x);
    match v {
        Val::Nan => NAN_FP8,
        v => narrow(neg, v, E5M2, Rnd::Rn, false, true, 0) as u8,
    }
}

/// `cvt.rn.f16x2.e4m3x2`, one lane: exact widening (E4M3 subnormals become f16 normals); the
/// NaN codes `0x7f`/`0xff` give the canonical f16 NaN `0x7fff` (`cuda_fp8.hpp`: "fp16
/// canonical NaN, discard sign").
#[inline]
pub fn e4m3_to_f16(x: u8) -> u16 {
    let sign = ((x & 0x80) as u16) << 8;
    let a = (x & 0x7f) as u16;
    if a == 0x7f {
        return NAN_16;
    }
    let exp = a >> 3;
    let man = a & 7;
    if exp != 0 {
        // Rebias 7 -> 15.
        sign | ((exp + 8) << 10) | (man << 7)
    } else if man == 0 {
        sign
    } else {
        // man·2^-9 with man in 1..=7: normalize.
        let p = 15 - man.leading_zeros() as u16; // msb position, 0..=2
        let biased = p + 15 - 9;
        sign | (biased << 10) | ((man << (10 - p)) & 0x3ff)
    }
}

/// `cvt.rn.f16x2.e5m2x2`, one lane: exact (E5M2 is the top byte of f16); the NaN codes give the
/// canonical f16 NaN `0x7fff` (`cuda_fp8.hpp`: "If NaN, return canonical NaN").
#[inline]
pub fn e5m2_to_f16(x: u8) -> u16 {
    if x & 0x7f > 0x7c { NAN_16 } else { (x as u16) << 8 }
}

// ---------------------------------------------------------------------------------------------
// f32 <-> f64
// ---------------------------------------------------------------------------------------------

/// `cvt{.rnd}{.sat}.f32.f64` (PTX ISA §9.7.9.21): IEEE rounding in the given mode (`None` is
/// `.rn`) with f32 subnormals; overflow per mode as in [`f32_to_f16`]; a NaN gives the
/// canonical f32 NaN (single-precision results carry no payload). `.sat` as in [`sat_f32`].
#[inline]
pub fn f64_to_f32(x: u64, rnd: Rnd, sat: bool) -> u32 {
    let (neg, v) = decode_f64(x);
    narrow(neg, v, F32, rnd, sat, false, NAN_F32 as u64) as u32
}

/// `cvt.f64.f32`: exact. A NaN keeps its sign and payload (the fraction moves to the top of the
/// f64 fraction) and is made quiet, as double precision propagates payloads (PTX ISA §9.7.3).
#[inline]
pub fn f32_to_f64(x: u32) -> u64 {
    if is_nan_f32(x) {
        let sign = ((x >> 31) as u64) << 63;
        return sign | 0x7ff0_0000_0000_0000 | ((x as u64 & 0x7f_ffff) << 29) | F64_QUIET;
    }
    (f32::from_bits(x) as f64).to_bits()
}

// ---------------------------------------------------------------------------------------------
// Integer conversions
// ---------------------------------------------------------------------------------------------

/// `cvt.irnd.{s,u}{8,16,32,64}.{f32,f64}` (PTX ISA §9.7.9.21, "Integer Notes"): rounds `x` (f64
/// bits if `from_f64`, else f32 bits in the low 32; an f16/bf16 source is widened to f32 first,
/// exactly) to an integer with `.rni/.rzi/.rmi/.rpi` (the float modes map to the same
/// directions; `None` truncates, as `.rzi`), then clamps to the destination's range ("the result
/// is clamped to the destination range by default"). NaN gives, per the ISA: zero if the source
/// is not `.f64` and the destination is not 64-bit, otherwise `1 << (bits - 1)` (MININT for
/// signed types).
///
/// The result is the destination value in the low `bits` bits, sign-extended to 64 bits for a
/// signed destination and zero-extended for an unsigned one, so truncating it to the register's
/// width gives the ISA's extension of a narrow destination.
#[inline]
pub fn float_to_int(x: u64, from_f64: bool, rnd: Rnd, signed: bool, bits: u32) -> u64 {
    let f = if from_f64 { f64::from_bits(x) } else { f32::from_bits(x as u32) as f64 };
    let min_signed = -(1i128 << (bits - 1));
    if f.is_nan() {
        return if !from_f64 && bits != 64 {
            0
        } else if signed {
            min_signed as u64
        } else {
            1u64 << (bits - 1)
        };
    }
    let r = match rnd {
        Rnd::None | Rnd::Rz | Rnd::Rzi => f.trunc(),
        Rnd::Rn | Rnd::Rni => f.round_ties_even(),
        Rnd::Rm | Rnd::Rmi => f.floor(),
        Rnd::Rp | Rnd::Rpi => f.ceil(),
    };
    let (lo, hi) = if signed { (min_signed, -min_signed - 1) } else { (0, (1i128 << bits) - 1) };
    // Compare in f64 against the exact powers of two bounding the range.
    let v: i128 = if r < lo as f64 {
        lo
    } else if r >= (hi + 1) as f64 {
        hi
    } else {
        r as i128
    };
    v as i64 as u64
}

/// `cvt.frnd.{f32,f64}.{s,u}{8,16,32,64}` (PTX ISA §9.7.9.21): the integer in the low `bits` bits
/// of `v` (two's complement if `signed`) rounded to f32 (result in the low 32 bits) or f64 with
/// the given mode (`None` is `.rn`). Zero is +0.0; no overflow is possible.
#[inline]
pub fn int_to_float(v: u64, signed: bool, bits: u32, to_f64: bool, rnd: Rnd) -> u64 {
    let shift = 64 - bits;
    let (neg, mag) = if signed {
        let s = ((v << shift) as i64) >> shift;
        (s < 0, s.unsigned_abs())
    } else {
        (false, (v << shift) >> shift)
    };
    let f = if to_f64 { F64 } else { F32 };
    let d = dir(rnd);
    finish(neg, round_mag(neg, mag, 0, f, d), f, d, false)
}

/// `cvt.frnd.f16.{s,u}{8,16,32,64}`: as [`int_to_float`] to f16 (which can overflow: past 65504
/// per the rounding mode, as in [`f32_to_f16`]).
#[inline]
pub fn int_to_f16(v: u64, signed: bool, bits: u32, rnd: Rnd) -> u16 {
    let shift = 64 - bits;
    let (neg, mag) = if signed {
        let s = ((v << shift) as i64) >> shift;
        (s < 0, s.unsigned_abs())
    } else {
        (false, (v << shift) >> shift)
    };
    let d = dir(rnd);
    finish(neg, round_mag(neg, mag, 0, F16, d), F16, d, false) as u16
}

/// `cvt.irnd.f32.f32` (round to an integral value, in float format; PTX ISA §9.7.9.21): NaN
/// gives the canonical NaN; ±0, ±Inf and integral values are unchanged; the sign of a zero
/// result is the input's (IEEE roundToIntegral).
#[inline]
pub fn round_int_f32(x: u32, rnd: Rnd) -> u32 {
    let f = f32::from_bits(x);
    if f.is_nan() {
        return NAN_F32;
    }
    let r = match dir(rnd) {
        Dir::Near => f.round_ties_even(),
        Dir::Zero => f.trunc(),
        Dir::Down => f.floor(),
        Dir::Up => f.ceil(),
    };
    r.to_bits()
}

/// `cvt.irnd.f64.f64`: as [`round_int_f32`]; a NaN keeps its payload, made quiet.
#[inline]
pub fn round_int_f64(x: u64, rnd: Rnd) -> u64 {
    let f = f64::from_bits(x);
    if f.is_nan() {
        return x | F64_QUIET;
    }
    let r = match dir(rnd) {
        Dir::Near => f.round_ties_even(),
        Dir::Zero => f.trunc(),
        Dir::Down => f.floor(),
        Dir::Up => f.ceil(),
    };
    r.to_bits()
}

// ---------------------------------------------------------------------------------------------
// f32 arithmetic with a rounding mode
// ---------------------------------------------------------------------------------------------
//
// `.rn` arithmetic is the host's (IEEE) f32 operations followed by `canon_f32`. For `.rz .rm
// .rp` the exact result is formed in f64, rounded to odd there (to nearest, then the last bit
// forced to 1 when inexact, toward zero), and rounded once more to f32 in the requested mode:
// rounding to odd at 53 bits and then to 24 bits in any mode equals one correct rounding of the
// exact value (53 >= 24 + 2). f32 operands never overflow or underflow f64 here.

/// Rounds the f64 `s` to f32 under `rnd`, where `s` is the round-to-nearest f64 of an exact
/// value whose position relative to `s` is `above` (exact > s), `below`, or equal (neither).
#[inline(always)]
fn odd_to_f32(s: f64, exact_above: bool, exact_below: bool, rnd: Rnd) -> u32 {
    let mut bits = s.to_bits();
    if exact_above || exact_below {
        // Truncate toward zero: step |s| down one ulp when the exact magnitude is smaller.
        let neg = s < 0.0;
        if (neg && exact_above) || (!neg && exact_below) {
            bits -= 1;
        }
        bits |= 1;
    }
    f64_to_f32(bits, rnd, false)
}

/// The sum `p + c` (both exact f64 values) rounded to f32 under `rnd`, with IEEE's zero sign
/// (an exact zero sum of operands that are not both −0.0 is +0.0, −0.0 under `.rm`).
#[inline(always)]
fn sum_to_f32(p: f64, c: f64, rnd: Rnd) -> u32 {
    let s = p + c;
    if !s.is_finite() {
        return canon_f32(f64_to_f32(s.to_bits(), rnd, false));
    }
    if s == 0.0 {
        let neg_zero = if p == 0.0 && c == 0.0 {
            let (pn, cn) = (p.is_sign_negative(), c.is_sign_negative());
            (pn && cn) || (dir(rnd) == Dir::Down && (pn || cn))
        } else {
            dir(rnd) == Dir::Down
        };
        // p + c == 0 with a non-zero operand is exact (Sterbenz), except for an underflow,
        // which f32 operands cannot reach.
        return if neg_zero { 0x8000_0000 } else { 0 };
    }
    // TwoSum: err = (p + c) - s, exactly.
    let bb = s - p;
    let err = (p - (s - bb)) + (c - bb);
    odd_to_f32(s, err > 0.0, err < 0.0, rnd)
}

/// `add{.rnd}.f32`: IEEE addition rounded in the given mode; NaN results canonical.
#[inline]
pub fn add_f32(a: u32, b: u32, rnd: Rnd) -> u32 {
    let (x, y) = (f32::from_bits(a), f32::from_bits(b));
    if matches!(dir(rnd), Dir::Near) {
        return canon_f32((x + y).to_bits());
    }
    sum_to_f32(x as f64, y as f64, rnd)
}

/// `sub{.rnd}.f32`: `a + (−b)`.
#[inline]
pub fn sub_f32(a: u32, b: u32, rnd: Rnd) -> u32 {
    if is_nan_f32(b) {
        return NAN_F32;
    }
    add_f32(a, b ^ 0x8000_0000, rnd)
}

/// `mul{.rnd}.f32`: the product of two f32 is exact in f64, so one rounding to f32 suffices.
#[inline]
pub fn mul_f32(a: u32, b: u32, rnd: Rnd) -> u32 {
    let p = f32::from_bits(a) as f64 * f32::from_bits(b) as f64;
    canon_f32(f64_to_f32(p.to_bits(), rnd, false))
}

/// `fma{.rnd}.f32` / `mad{.rnd}.f32`: `a·b + c` with one rounding.
#[inline]
pub fn fma_f32(a: u32, b: u32, c: u32, rnd: Rnd) -> u32 {
    let (x, y, z) = (f32::from_bits(a), f32::from_bits(b), f32::from_bits(c));
    if matches!(dir(rnd), Dir::Near) {
        return canon_f32(x.mul_add(y, z).to_bits());
    }
    let p = x as f64 * y as f64;
    sum_to_f32(p, z as f64, rnd)
}

/// `div{.rnd}.f32` (IEEE-compliant division, PTX ISA §9.7.3.8): the quotient is rounded in f64,
/// its residual `q·b − a` (exact, via fma) tells on which side the exact quotient lies.
#[inline]
pub fn div_f32(a: u32, b: u32, rnd: Rnd) -> u32 {
    if matches!(dir(rnd), Dir::Near) {
        return canon_f32((f32::from_bits(a) / f32::from_bits(b)).to_bits());
    }
    let (x, y) = (f32::from_bits(a) as f64, f32::from_bits(b) as f64);
    let q = x / y;
    if !q.is_finite() || q == 0.0 {
        // Infinite, NaN and zero quotients are exact.
        return canon_f32(f64_to_f32(q.to_bits(), rnd, false));
    }
    let r = q.mul_add(y, -x);
    let q_too_big = (r > 0.0) == (y > 0.0);
    odd_to_f32(q, r != 0.0 && !q_too_big, r != 0.0 && q_too_big, rnd)
}

/// `sqrt{.rnd}.f32` (IEEE-compliant square root).
#[inline]
pub fn sqrt_f32(a: u32, rnd: Rnd) -> u32 {
    if matches!(dir(rnd), Dir::Near) {
        return canon_f32(f32::from_bits(a).sqrt().to_bits());
    }
    let x = f32::from_bits(a) as f64;
    let s = x.sqrt();
    if !s.is_finite() || s == 0.0 {
        // NaN, Inf and zero roots are exact.
        return canon_f32(f64_to_f32(s.to_bits(), rnd, false));
    }
    let r = s.mul_add(s, -x);
    odd_to_f32(s, r < 0.0, r > 0.0, rnd)
}

/// `rcp{.rnd}.f32` (IEEE-compliant reciprocal): `1 / a`.
#[inline]
pub fn rcp_f32(a: u32, rnd: Rnd) -> u32 {
    div_f32(0x3f80_0000, a, rnd)
}
