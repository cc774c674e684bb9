//! The per-block arithmetic of the microscaling formats: plain f32 and integer operations, no
//! intrinsics, no inline assembly, no features.
//!
//! The device kernels (`super`) call these functions, and the host compiles this same file
//! (`#[path]` in `host/microscaling/mod.rs`), where the unit tests compare it with the independent
//! reference (`lowp::reference::microscaling`) on millions of random blocks. Every f32 operation
//! here is an IEEE operation rounded to nearest even (`mul.rn`, `div.rn`, `add.rn` on the device,
//! SSE on the host, no contraction into FMA), so host and device give the same bits.
//!
//! `soft` is the integer software conversion module (`prim::soft` on the device,
//! `lowp::reference::convert` on the host), brought into scope by the parent module.
//!
//! Semantics (see `docs/kernels/microscaling.md`):
//!
//! ```text
//! amax    = max |x| over the block; a NaN element makes the block a NaN block
//! NVFP4   scale  = e4m3_sat( (amax / 6) * g )                    (NaN block: 0x7f, codes 0)
//!         codes  = 0 if scale = 0, else e2m1_sat( (x * g) / f32(scale) )
//! MX      scale  = clamp(floor(log2 amax) - emax + 127, 0, 254)  (OCP; emax 2 for E2M1, 8 for E4M3)
//!              or clamp(ceil(log2(amax / max)) + 127, 0, 254)   (round-up; max 6 or 448)
//!                  (amax = 0: scale 0, codes 0; NaN or Inf in the block: scale 0xff, codes 0)
//!         codes  = e2m1_sat / e4m3_sat( x * 2^(127 - scale) )
//! ```

use super::soft;

#[cfg(target_arch = "nvptx64")]
use core::f32::math::mul_add;
/// The host's fused multiply-add (libm `fmaf`, correctly rounded like PTX `fma.rn.f32`).
#[cfg(not(target_arch = "nvptx64"))]
#[inline(always)]
fn mul_add(x: f32, a: f32, b: f32) -> f32 {
    x.mul_add(a, b)
}

/// Repeats `$body` once per index `0..4`, `0..8`, `0..16` or `0..32`, the index bound as a `const usize`: register
/// arrays indexed by it stay in registers (LLVM does not always unroll loops this large, and a
/// run-time index would move the arrays to local memory). The same as `prim`'s `unroll!`, kept
/// here so that this file also compiles into the host.
macro_rules! each {
    ($i:ident < 4 $body:block) => {
        each!(@ $i [0, 1, 2, 3] $body)
    };
    ($i:ident < 8 $body:block) => {
        each!(@ $i [0, 1, 2, 3, 4, 5, 6, 7] $body)
    };
    ($i:ident < 16 $body:block) => {
        each!(@ $i [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] $body)
    };
    ($i:ident < 32 $body:block) => {
        each!(@ $i [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31] $body)
    };
    (@ $i:ident [$($n:literal),*] $body:block) => {
        $( { #[allow(non_upper_case_globals)] const $i: usize = $n; $body } )*
    };
}

/// Largest E2M1 magnitude.
pub const E2M1_MAX: f32 = 6.0;
/// Largest E4M3FN magnitude.
pub const E4M3_MAX: f32 = 448.0;
/// `448 · 6`: the NVFP4 global encode scale is this over the tensor's amax.
pub const NVFP4_GLOBAL_NUMERATOR: f32 = E4M3_MAX * E2M1_MAX;

const F32_INF_BITS: u32 = 0x7f80_0000;

/// An f32 → FP8 E4M3FN encoder (RNE, saturating at ±448, NaN → 0x7f). Implementations must give
/// identical bits: the device uses the `cvt` where the target has one, the host the soft path.
pub trait Fp8Encoder {
    fn e4m3(x: f32) -> u8;
    /// Two values, `lo` in bits 0..8 and `hi` in 8..16 (the device has one instruction for both).
    #[inline(always)]
    fn e4m3x2(lo: f32, hi: f32) -> u16 {
        Self::e4m3(lo) as u16 | (Self::e4m3(hi) as u16) << 8
    }
}

/// The integer software encoder (`soft::f32_to_e4m3fn_sat`).
pub struct SoftFp8;

impl Fp8Encoder for SoftFp8 {
    #[inline(always)]
    fn e4m3(x: f32) -> u8 {
        soft::f32_to_e4m3fn_sat(x)
    }
}

/// `max |x|` as the bits of an f32. Comparing the magnitudes as integers orders them like the
/// floats, and puts any NaN (bits above `0x7f80_0000`) above +Inf, so a NaN is never lost
/// (`f32::max` would drop it).
#[inline(always)]
pub fn amax_bits<const N: usize>(x: &[f32; N]) -> u32 {
    let mut m = 0u32;
    for v in x {
        let a = v.to_bits() & 0x7fff_ffff;
        m = if a > m { a } else { m };
    }
    m
}

/// E2M1 magnitude code (0..=7) of `a` in `[0, 6]` (sign bit clear: `-0.0` is not allowed) in the
/// low 3 bits of the result, bit 3 clear, the bits above it unspecified: round to nearest, ties
/// to the even code.
///
/// Float arithmetic instead of the integer path of `soft`: the E2M1 grid has quantum 0.5 below 2,
/// 1 in [2, 4) and 2 in [4, 6], that is `2^(e - 1)` for `e = max(⌊log2 a⌋, 0)`. Adding
/// `M = 2^(e + 22) + 2e · 2^(e - 1)` (M's own binade, whose spacing is that quantum) to `a`
/// rounds it to the quantum in one IEEE addition (RNE), and the sum's significand field counts
/// the quanta above `2^(e + 22)`: `2e` plus the quanta in `a`, which is the code (`2e` is even,
/// so ties go to the even code; the first quantum count of each range is `2` for e = 1, 2,
/// mapping to codes 4 and 6, and `a + M` stays in M's binade since `a < 2^(e+1)`). With
/// `E = max(exponent field, 127)` (= e + 127; `a <= 6` keeps E <= 129),
/// `bits(M) = E · (2^23 + 2) + (22 · 2^23 - 254)`: two integer operations, a multiply-add and the
/// float addition. The sum's bits above the code are M's exponent, which callers either mask
/// (`& 7`) or shift out (`push_nibble`).
///
/// The choice of e is also safe within a few ulps of a range boundary (an `a` just below 2
/// added to the magic of [2, 4) rounds to 2, code 4, as it should), so it may come from an
/// approximation of `a`; here it comes from `a` itself.
#[inline(always)]
fn e2m1_rounded(a: f32) -> u32 {
    let e = a.to_bits() >> 23;
    let e = if e > 127 { e } else { 127 };
    let m = f32::from_bits(e * ((1 << 23) + 2) + ((22 << 23) - 254));
    (a + m).to_bits()
}

/// The E2M1 code of a value with the sign of `v` and the magnitude `a` in `[0, 6]` (the value's
/// magnitude, saturated at 6, not yet rounded; sign bit clear) in the low 4 bits (sign 0x8), the
/// bits above unspecified.
#[inline(always)]
fn e2m1_nibble(v: f32, a: f32) -> u32 {
    // bit 3 of e2m1_rounded is clear, so the sign goes in with an OR (one LOP3 with the mask)
    e2m1_rounded(a) | ((v.to_bits() >> 28) & 0x8)
}

/// Appends a 4-bit code to a word of 8 codes filled from the top: after 8 pushes, the first code
/// pushed is in bits 0..4 and the last in 28..32. Only the low 4 bits of `nibble` are used (one
/// funnel shift, `shf.r`, on the GPU: no masking of the code).
#[inline(always)]
fn push_nibble(out: u32, nibble: u32) -> u32 {
    (out >> 4) | (nibble << 28)
}

/// f32 → E2M1 code (low nibble, sign 0x8): round to nearest, ties to the even code, saturating
/// at ±6; NaN gives `sign | 7`. Equal to `soft::f32_to_e2m1_sat` bit for bit on every f32 (the host
/// tests check that over all 2^32 inputs).
#[inline(always)]
pub fn e2m1_code(q: f32) -> u32 {
    // `min` returns the non-NaN operand: NaN → 6, like the software encoder; ±Inf → 6.
    e2m1_nibble(q, q.abs().min(E2M1_MAX)) & 0xf
}

/// `RN(a / s)` for `0 <= a <= 8·s` and `s` a positive finite E4M3 value, given `r = RN(1 / s)`:
/// one multiplication and two fused multiply-adds (Markstein's correction step: the residual
/// `a - s·q0` is exact in the FMA, and one Newton step on the quotient with the correctly rounded
/// reciprocal gives the correctly rounded quotient). The host tests check this against the IEEE
/// division for every f32 `a` whose quotient lies in `[1/8, 8]`, for every significand `s` can
/// have; below 1/8 the result only has to stay below 0.25 (E2M1 code 0), which they also check.
/// This replaces a `div.rn.f32` per element (reciprocal approximation, refinement, range check
/// and slow-path branch each time) by three instructions.
#[inline(always)]
pub fn div_by_scale(a: f32, s: f32, r: f32) -> f32 {
    let q0 = a * r;
    let e = mul_add(-s, q0, a);
    mul_add(r, e, q0)
}

/// `RN(a / 6)` for every non-negative f32 `a`, +Inf and NaN included (the host tests compare it
/// with the IEEE division on every non-negative f32).
///
/// `div_by_scale`'s correction step with the constant `RN(1 / 6)`: four instructions instead of a
/// `div.rn.f32` (reciprocal, refinement, range check and slow-path call). For `a = +Inf` the
/// residual is `Inf - Inf`, a NaN, which `max` (returning the non-NaN operand) replaces by
/// `-f32::MAX`, so the correction leaves the +Inf quotient alone; a NaN `a` stays NaN. Below
/// `a = 2^-125` (odd multiples of 2^-149 exist there) a subnormal quotient can be an exact tie,
/// which the correction step rounds down rather than to even: there, a branch (which no real
/// block scale takes) to the IEEE division. From 2^-125 up, `a` is an even multiple of 2^-149
/// and `a / 6` never a tie at the subnormal quotients' spacing.
#[inline(always)]
pub fn div6(a: f32) -> f32 {
    const R: f32 = 1.0 / E2M1_MAX;
    if a.to_bits() < 0x0100_0000 {
        return a / E2M1_MAX;
    }
    let q0 = a * R;
    let e = mul_add(-E2M1_MAX, q0, a).max(-f32::MAX);
    mul_add(R, e, q0)
}

/// NVFP4 block scale (E4M3 code) for a block of magnitude `amax_bits` and global scale `g`:
/// `e4m3_sat((amax / 6) * g)`, or `0x7f` (NaN) for a NaN block (a select, not a branch).
#[inline(always)]
pub fn nvfp4_scale<E: Fp8Encoder>(amax_bits: u32, g: f32) -> u8 {
    let code = E::e4m3(div6(f32::from_bits(amax_bits)) * g);
    if amax_bits > F32_INF_BITS { 0x7f } else { code }
}

/// The value of a positive finite E4M3 code `1..=0x7e` (a block scale): `code · 2^-9` for the
/// subnormal codes, else the code's exponent and mantissa moved into f32 position and rebiased
/// (+120 on the exponent). Equal to `soft::e4m3fn_to_f32` on these codes (tested), in 3 or 4
/// operations instead of the general decoder.
#[inline(always)]
pub fn e4m3_scale_value(code: u8) -> f32 {
    let c = code as u32;
    if c < 8 { c as f32 * (1.0 / 512.0) } else { f32::from_bits((c << 20) + (120 << 23)) }
}

/// Entry `i` of the reciprocal table `e4m3_scale_recip` reads: `RN(1 / σ)` as f32 bits, for the
/// significand `σ = 1 + (i % 8) / 8` (an IEEE division, done once per table).
#[inline(always)]
pub fn recip_table_entry(i: u32) -> u32 {
    (1.0 / (1.0 + (i & 7) as f32 / 8.0)).to_bits()
}

/// `RN(1 / s)` for the value `s` of a positive finite E4M3 code `1..=0x7e` (a block scale), with
/// `entry(i)` returning `recip_table_entry(i)` for any `i` (only its low 3 bits select).
///
/// Every such `s` is a normal f32 `2^(E - 127) · σ` with a significand σ of at most 4 bits,
/// `1 + m / 8` for the mantissa's top 3 bits m (bits 20..23 of s, which `b >> 20` brings down
/// with the exponent above them), and `1 / s` lies in [2^-9, 2^9], so its correctly rounded
/// value is `2^(127 - E) · RN(1 / σ)`: the table entry with `127 - E` added to its exponent field.
/// The host tests compare it with `1.0 / s` for every code. On the GPU the table is one register
/// per lane and the lookup a shuffle: three instructions and the shuffle, instead of a
/// `rcp.rn.f32` (reciprocal, refinement, range check and a slow-path call).
#[inline(always)]
pub fn e4m3_scale_recip(s: f32, entry: impl FnOnce(u32) -> u32) -> f32 {
    let b = s.to_bits();
    f32::from_bits(entry(b >> 20).wrapping_add(0x3f80_0000).wrapping_sub(b & 0x7f80_0000))
}

/// What the NVFP4 encoder needs of a block scale code `1..=0x7e`: `(s, RN(1 / s), 6 · s)`, with
/// `s` its value (`6s` is exact: `s` has at most 4 significant bits), the reciprocal from
/// `e4m3_scale_recip` with the table lookup `entry`.
#[inline(always)]
pub fn nvfp4_scale_params(scale: u8, entry: impl FnOnce(u32) -> u32) -> (f32, f32, f32) {
    let s = e4m3_scale_value(scale);
    (s, e4m3_scale_recip(s, entry), 6.0 * s)
}

/// Whether an NVFP4 block with this scale code has codes: scale 0 (the block is zero or
/// underflowed) and NaN (0x7f) give all codes 0. `scale` is never negative (amax >= 0, g > 0),
/// so 0x00 is the only zero and 0x7f the only NaN.
#[inline(always)]
pub fn nvfp4_has_codes(scale: u8) -> bool {
    scale != 0 && scale != 0x7f
}

/// E2M1 codes of 8 consecutive elements of an NVFP4 block (element i in bits 4i..4i+4), given the
/// global scale and `nvfp4_scale_params` of the block's scale (one with codes).
///
/// code = e2m1_sat(RN((x·g) / s)). s > 0, so the quotient has the sign of y = x·g (zeros and
/// underflows included) and its magnitude is RN(|y| / s); |y| >= 6s means a quotient >= 6,
/// code 7, so |y| is clamped to 6s (which also turns an overflowed y = ±Inf into 6s) and the
/// division runs in the range where `div_by_scale` is exact. Per element: the product, the
/// clamp, the division (three), the rounding (`e2m1_rounded`: four), the sign (two) and the
/// funnel shift that packs the code.
#[inline(always)]
pub fn nvfp4_codes8(x: &[f32; 8], g: f32, s: f32, r: f32, six_s: f32) -> u32 {
    let mut out = 0u32;
    each!(i < 8 {
        let y = x[i] * g;
        let q = div_by_scale(y.abs().min(six_s), s, r);
        out = push_nibble(out, e2m1_nibble(y, q));
    });
    out
}

/// One NVFP4 block: 16 values → (E4M3 scale, 8 bytes of packed E2M1 codes as two words; byte k
/// holds elements 2k (low nibble) and 2k + 1).
#[inline(always)]
pub fn nvfp4_block<E: Fp8Encoder>(x: &[f32; 16], g: f32) -> (u8, [u32; 2]) {
    let scale = nvfp4_scale::<E>(amax_bits(x), g);
    if !nvfp4_has_codes(scale) {
        return (scale, [0; 2]);
    }
    let (s, r, six_s) = nvfp4_scale_params(scale, recip_table_entry);
    let (lo, hi) = halves(x);
    (scale, [nvfp4_codes8(&lo, g, s, r, six_s), nvfp4_codes8(&hi, g, s, r, six_s)])
}

/// Elements `0..8` and `8..16` of a 16-element array.
#[inline(always)]
fn halves(x: &[f32; 16]) -> ([f32; 8], [f32; 8]) {
    let (mut lo, mut hi) = ([0.0f32; 8], [0.0f32; 8]);
    each!(i < 8 {
        lo[i] = x[i];
        hi[i] = x[8 + i];
    });
    (lo, hi)
}

/// Elements `8k..8k + 8` of a 32-element array.
#[inline(always)]
fn eighth(x: &[f32; 32], k: usize) -> [f32; 8] {
    let mut v = [0.0f32; 8];
    each!(i < 8 {
        v[i] = x[8 * k + i];
    });
    v
}

/// MX block scale (UE8M0 code) for a block of magnitude `amax_bits`, elements with largest
/// exponent `emax` and largest magnitude `max` (E2M1: 2 and 6; E4M3: 8 and 448).
///
/// - NaN or ±Inf in the block: `0xff`. amax = 0: `0`.
/// - OCP rule: `floor(log2 amax) - emax + 127`, clamped at 0. `floor(log2 amax)` is the f32
///   exponent field minus 127 for a normal amax; a subnormal amax is below 2^-126, so the
///   clamped result is 0 for it too. The result never exceeds `254 - emax`.
/// - Round-up: `ceil(log2(amax ⊘ max)) + 127` clamped to `[0, 254]`, with `⊘` the f32 division
///   (`soft::f32_to_ue8m0_ceil`); a quotient that underflows to 0 gives 0. For a normal
///   quotient, `amax / 2^(scale - 127) <= max` (the rounding of the division can never hide an
///   excess: see the docs).
#[inline(always)]
pub fn mx_scale(amax_bits: u32, emax: u32, max: f32, round_up: bool) -> u8 {
    if amax_bits >= F32_INF_BITS {
        return 0xff;
    }
    if amax_bits == 0 {
        return 0;
    }
    if round_up {
        let d = f32::from_bits(amax_bits) / max;
        if d.to_bits() == 0 { 0 } else { soft::f32_to_ue8m0_ceil(d) }
    } else {
        let e = amax_bits >> 23;
        if e > emax { (e - emax) as u8 } else { 0 }
    }
}

/// `2^(127 - scale)` as an f32, for a UE8M0 scale code `0..=254`: the multiplier that brings
/// the block's values into the element format's range. Exact: a normal power of two for codes
/// up to 253, the subnormal 2^-127 for 254 (the rules above never produce 254, but the function
/// is total on the codes it may receive).
#[inline(always)]
pub fn mx_multiplier(scale: u8) -> f32 {
    let e = 254 - scale as u32;
    if e == 0 { f32::from_bits(0x0040_0000) } else { f32::from_bits(e << 23) }
}

/// Whether an MX block has codes (else they are all 0): not a NaN/Inf block, not a zero block.
#[inline(always)]
pub fn mx_has_codes(scale: u8, amax_bits: u32) -> bool {
    scale != 0xff && amax_bits != 0
}

/// E2M1 codes of 8 consecutive elements of an MXFP4 block (element i in bits 4i..4i+4), with the
/// block's `mx_multiplier`.
#[inline(always)]
pub fn mxfp4_codes8(x: &[f32; 8], m: f32) -> u32 {
    let mut out = 0u32;
    each!(i < 8 {
        out = push_nibble(out, e2m1_code(x[i] * m));
    });
    out
}

/// E4M3 codes of 8 consecutive elements of an MXFP8 block (element `4w + j` in byte `j` of word
/// `w`), with the block's `mx_multiplier`.
#[inline(always)]
pub fn mxfp8_codes8<E: Fp8Encoder>(x: &[f32; 8], m: f32) -> [u32; 2] {
    let mut out = [0u32; 2];
    each!(k < 4 {
        out[k / 2] += (E::e4m3x2(x[2 * k] * m, x[2 * k + 1] * m) as u32) << (16 * (k % 2));
    });
    out
}

/// One MXFP4 block: 32 values → (UE8M0 scale, 16 bytes of packed E2M1 codes as four words).
#[inline(always)]
pub fn mxfp4_block(x: &[f32; 32], round_up: bool) -> (u8, [u32; 4]) {
    let ab = amax_bits(x);
    let scale = mx_scale(ab, 2, E2M1_MAX, round_up);
    if !mx_has_codes(scale, ab) {
        return (scale, [0; 4]);
    }
    let m = mx_multiplier(scale);
    let mut out = [0u32; 4];
    each!(k < 4 {
        out[k] = mxfp4_codes8(&eighth(x, k), m);
    });
    (scale, out)
}

/// One MXFP8 block: 32 values → (UE8M0 scale, 32 E4M3 bytes as eight words, element `4w + j`
/// in byte `j` of word `w`).
#[inline(always)]
pub fn mxfp8_block<E: Fp8Encoder>(x: &[f32; 32], round_up: bool) -> (u8, [u32; 8]) {
    let ab = amax_bits(x);
    let scale = mx_scale(ab, 8, E4M3_MAX, round_up);
    if !mx_has_codes(scale, ab) {
        return (scale, [0; 8]);
    }
    let m = mx_multiplier(scale);
    let mut out = [0u32; 8];
    each!(k < 4 {
        let w = mxfp8_codes8::<E>(&eighth(x, k), m);
        out[2 * k] = w[0];
        out[2 * k + 1] = w[1];
    });
    (scale, out)
}

/// The NVFP4 global encode scale for a tensor amax: `448 · 6 / amax` (f32 division), so the
/// largest block scale lands at 448. amax = 0, ±Inf or NaN give 1; a quotient that overflows
/// (amax below about 7.9e-36) gives `f32::MAX`.
#[inline(always)]
pub fn nvfp4_global_scale(amax: f32) -> f32 {
    if !(amax > 0.0 && amax <= f32::MAX) {
        return 1.0;
    }
    let g = NVFP4_GLOBAL_NUMERATOR / amax;
    if g > f32::MAX { f32::MAX } else { g }
}

/// What the kernels use as g when it comes from device memory: the value itself when finite and
/// positive, 1 otherwise (a garbage scale must not turn into out-of-range scale codes).
#[inline(always)]
pub fn sanitize_global_scale(g: f32) -> f32 {
    if g > 0.0 && g <= f32::MAX { g } else { 1.0 }
}

/// Rows of a swizzled scale matrix: `rows` rounded up to a multiple of 128.
#[inline(always)]
pub const fn swizzled_rows(rows: u64) -> u64 {
    rows.div_ceil(128) * 128
}

/// Columns of a swizzled scale matrix: `cols` rounded up to a multiple of 4.
#[inline(always)]
pub const fn swizzled_cols(cols: u64) -> u64 {
    cols.div_ceil(4) * 4
}

/// Byte offset of scale `(row, col)` in the 128×4-swizzled layout whose padded column count is
/// `4 * col_tiles`: 512-byte tiles in row-tile-major order; inside a tile, row `r`, column `c`
/// at `(r % 32) * 16 + ((r % 128) / 32) * 4 + c % 4`. The tile index must fit in u32 (the host
/// checks that the layout has fewer than 2^32 tiles); the offset is 64-bit.
#[inline(always)]
pub const fn swizzled_offset(row: u32, col: u32, col_tiles: u32) -> u64 {
    let tile = (row >> 7) * col_tiles + (col >> 2);
    let within = ((row & 31) << 4) | (((row >> 5) & 3) << 2) | (col & 3);
    ((tile as u64) << 9) | within as u64
}

/// The row of a swizzled matrix that byte `offset` belongs to (`swizzled_offset`'s inverse, for
/// the first byte of a 4-byte word: column `4 * ((offset / 512) % col_tiles)` onwards).
#[inline(always)]
pub const fn swizzled_word_position(offset: u64, col_tiles: u64) -> (u64, u64) {
    let tile = offset / 512;
    let within = offset % 512;
    let row = (tile / col_tiles) * 128 + ((within / 4) % 4) * 32 + within / 16;
    let col = (tile % col_tiles) * 4;
    (row, col)
}

/// `pad128(end - start)`: the scale rows a group of rows `[start, end)` takes in the grouped
/// layout.
#[inline(always)]
pub const fn group_scale_rows(start: u32, end: u32) -> u32 {
    (end - start).div_ceil(128) * 128
}

/// The end of group `g` after clamping: `max(previous end, clamp(offs[g], 0, rows))`, so group
/// ends never decrease and never pass `rows`.
#[inline(always)]
pub fn clamp_group_end(prev_end: u32, off: i32, rows: u32) -> u32 {
    let e = if off < 0 {
        0
    } else if off as u32 > rows {
        rows
    } else {
        off as u32
    };
    if e > prev_end { e } else { prev_end }
}

/// One NVFP4 block back to f32: `(value · f32(scale)) / g`; a NaN scale (0x7f, 0xff) gives NaN.
#[inline(always)]
pub fn nvfp4_dequant_block(codes: [u32; 2], scale: u8, g: f32) -> [f32; 16] {
    let s = soft::e4m3fn_to_f32(scale);
    let mut y = [0.0f32; 16];
    each!(i < 16 {
        let c = (codes[i / 8] >> (4 * (i % 8))) & 0xf;
        y[i] = (soft::e2m1_to_f32(c as u8) * s) / g;
    });
    y
}

/// One MXFP4 block back to f32: `value · 2^(scale - 127)`; scale 0xff gives NaN.
#[inline(always)]
pub fn mxfp4_dequant_block(codes: [u32; 4], scale: u8) -> [f32; 32] {
    let s = soft::ue8m0_to_f32(scale);
    let mut y = [0.0f32; 32];
    each!(i < 32 {
        let c = (codes[i / 8] >> (4 * (i % 8))) & 0xf;
        y[i] = soft::e2m1_to_f32(c as u8) * s;
    });
    y
}

/// One MXFP8 block back to f32: `value · 2^(scale - 127)`; scale 0xff or a NaN code give NaN.
#[inline(always)]
pub fn mxfp8_dequant_block(codes: [u32; 8], scale: u8) -> [f32; 32] {
    let s = soft::ue8m0_to_f32(scale);
    let mut y = [0.0f32; 32];
    each!(i < 32 {
        let c = (codes[i / 4] >> (8 * (i % 4))) & 0xff;
        y[i] = soft::e4m3fn_to_f32(c as u8) * s;
    });
    y
}
