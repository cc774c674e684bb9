//! CPU reference of the microscaling formats (NVFP4, MXFP4, MXFP8), the 128×4 scale swizzle, the
//! grouped (MoE) scale layout and dequantization, written from the specification
//! (`docs/kernels/microscaling.md`) independently of the device arithmetic
//! (`kernels-gpu/src/microscaling/math.rs`):
//!
//! - codes are chosen by value: the nearest representable value by f64 distance, ties to the even
//!   code, instead of the device's bit tricks;
//! - powers of two are computed in f64 (exact) and block exponents found by comparing with them,
//!   instead of reading exponent fields;
//! - only the operations the specification fixes in f32 are done in f32, in its order (NVFP4:
//!   `(amax / 6) * g` and `(x * g) / s`; the round-up MX rule: `amax / max`), so that the results
//!   are bit-exact.
//!
//! Inputs are f32 values (bf16 and f16 widen to f32 exactly). Codes come back one per element
//! (E2M1 in the low nibble, sign 0x8) or packed, as documented per function.

/// The 8 non-negative E2M1 values, by code.
const E2M1_GRID: [f64; 8] = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];

use crate::error::{Error, Result};
use crate::scale::ScaleRounding;

/// Whether an MX `rounding` rounds the scale up (`Ceil`) or down (`Floor`, the OCP rule);
/// `Exact` is the quantizers' `Error::InvalidValue { arg: "rounding" }`.
fn round_up(rounding: ScaleRounding) -> Result<bool> {
    crate::validate::mx_round_up(rounding)
}

/// `2^k` in f64 (exact for the exponents used here).
fn pow2(k: i32) -> f64 {
    2f64.powi(k)
}

/// Nearest of `grid` (ascending, non-negative) to `a >= 0`, ties to the even index; values
/// beyond the last point saturate to it.
fn nearest_index(grid: &[f64], a: f64) -> usize {
    let last = grid.len() - 1;
    if a >= grid[last] {
        return last;
    }
    let mut best = 0;
    for i in 1..grid.len() {
        let (d_best, d_i) = ((a - grid[best]).abs(), (a - grid[i]).abs());
        if d_i < d_best || (d_i == d_best && i % 2 == 0) {
            best = i;
        }
    }
    best
}

/// f32 → E2M1 code by value: nearest grid point, ties to the even code, saturating at ±6, the
/// sign in bit 3 (so −0 and small negatives that round to 0 give 0x8). NaN gives `sign | 7`
/// (lowp's convention for a NaN that reaches the encoder, see `docs/numerics.md`).
pub fn e2m1_by_value(v: f32) -> u8 {
    let sign = if v.is_sign_negative() { 0x8 } else { 0 };
    if v.is_nan() {
        return sign | 7;
    }
    sign | nearest_index(&E2M1_GRID, (v as f64).abs()) as u8
}

/// The 127 non-negative finite E4M3FN values, by code `0x00..=0x7e`, from the format's definition.
fn e4m3_grid() -> &'static [f64; 127] {
    static GRID: std::sync::OnceLock<[f64; 127]> = std::sync::OnceLock::new();
    GRID.get_or_init(|| {
        let mut g = [0.0; 127];
        for (code, v) in g.iter_mut().enumerate() {
            let (e, m) = ((code >> 3) as i32, (code & 7) as f64);
            *v = if e == 0 { m / 8.0 * pow2(-6) } else { (1.0 + m / 8.0) * pow2(e - 7) };
        }
        g
    })
}

/// f32 → E4M3FN code by value: nearest finite value, ties to the even code, saturating at ±448
/// (±Inf too); NaN gives `0x7f` whatever its sign (lowp's FP8 NaN, see `docs/numerics.md`).
pub fn e4m3_by_value(v: f32) -> u8 {
    if v.is_nan() {
        return 0x7f;
    }
    let sign = if v.is_sign_negative() { 0x80 } else { 0 };
    sign | nearest_index(e4m3_grid(), (v as f64).abs()) as u8
}

/// E4M3FN code → value (f64, exact); NaN for `0x7f`/`0xff`.
pub fn e4m3_value(code: u8) -> f64 {
    if code & 0x7f == 0x7f {
        return f64::NAN;
    }
    let v = e4m3_grid()[(code & 0x7f) as usize];
    if code & 0x80 != 0 { -v } else { v }
}

/// E2M1 code (low nibble) → value.
pub fn e2m1_value(code: u8) -> f64 {
    let v = E2M1_GRID[(code & 7) as usize];
    if code & 8 != 0 { -v } else { v }
}

/// UE8M0 code → value: `2^(code - 127)`, NaN for 0xff.
pub fn ue8m0_value(code: u8) -> f64 {
    if code == 0xff { f64::NAN } else { pow2(code as i32 - 127) }
}

/// `max |x|` of a block and whether it holds a NaN / an infinity.
fn block_stats(x: &[f32]) -> (f64, bool, bool) {
    let mut amax = 0.0f64;
    let (mut nan, mut inf) = (false, false);
    for &v in x {
        if v.is_nan() {
            nan = true;
        } else if v.is_infinite() {
            inf = true;
        } else {
            amax = amax.max((v as f64).abs());
        }
    }
    (amax, nan, inf)
}

/// One NVFP4 block (16 values) with global encode scale `g`: (E4M3 scale code, one E2M1 code
/// per element).
///
/// ```text
/// NaN anywhere      → scale 0x7f, codes 0
/// amax (f32; +Inf if an element is infinite)
/// scale = e4m3_sat( (amax / 6) * g )        in f32, that order
/// s = value(scale); s = 0 → codes 0
/// code  = e2m1_sat( (x * g) / s )           in f32, that order
/// ```
pub fn nvfp4_block(x: &[f32], g: f32) -> (u8, Vec<u8>) {
    assert_eq!(x.len(), 16, "an NVFP4 block has 16 elements");
    let (amax, nan, inf) = block_stats(x);
    if nan {
        return (0x7f, vec![0; 16]);
    }
    let amax = if inf { f32::INFINITY } else { amax as f32 }; // exact: amax is one of the inputs
    let scale = e4m3_by_value((amax / 6.0f32) * g);
    let s = e4m3_value(scale) as f32;
    if s == 0.0 {
        return (scale, vec![0; 16]);
    }
    (scale, x.iter().map(|&v| e2m1_by_value((v * g) / s)).collect())
}

/// `floor(log2 a)` for a finite `a > 0`, by comparison with powers of two.
fn floor_log2(a: f64) -> i32 {
    let mut k = 0;
    while pow2(k) > a {
        k -= 1;
    }
    while pow2(k + 1) <= a {
        k += 1;
    }
    k
}

/// `ceil(log2 a)` for a finite `a > 0`.
fn ceil_log2(a: f64) -> i32 {
    let k = floor_log2(a);
    if pow2(k) == a { k } else { k + 1 }
}

/// Element format of an MX block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MxElement {
    /// FP4 E2M1: emax 2, max 6.
    E2m1,
    /// FP8 E4M3FN: emax 8, max 448.
    E4m3,
}

impl MxElement {
    fn emax(self) -> i32 {
        match self {
            MxElement::E2m1 => 2,
            MxElement::E4m3 => 8,
        }
    }
    fn max(self) -> f32 {
        match self {
            MxElement::E2m1 => 6.0,
            MxElement::E4m3 => 448.0,
        }
    }
    fn encode(self, v: f32) -> u8 {
        match self {
            MxElement::E2m1 => e2m1_by_value(v),
            MxElement::E4m3 => e4m3_by_value(v),
        }
    }
}

/// The UE8M0 scale of an MX block.
///
/// ```text
/// NaN or Inf in the block → 0xff;  amax = 0 → 0
/// Floor (OCP): clamp( floor(log2 amax) − emax + 127, 0, 254 )
/// Ceil:        clamp( ceil(log2(amax ⊘ max)) + 127, 0, 254 ),  ⊘ the f32 division; a quotient of 0 → 0
/// ```
///
/// `rounding` is `Floor` or `Ceil`; `ScaleRounding::Exact` (MX scales are powers of two) is
/// `Error::InvalidValue { arg: "rounding" }`, as the quantizers say it.
///
/// ```
/// use lowp::ScaleRounding;
/// use lowp::reference::microscaling::{MxElement, mx_scale};
/// let mut block = [0.0f32; 32];
/// block[0] = 7.0;
/// assert_eq!(mx_scale(&block, MxElement::E2m1, ScaleRounding::Floor)?, 127); // 2^(2 − 2)
/// assert_eq!(mx_scale(&block, MxElement::E2m1, ScaleRounding::Ceil)?, 128); // 2^⌈log2(7 / 6)⌉
/// assert!(mx_scale(&block, MxElement::E2m1, ScaleRounding::Exact).is_err());
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn mx_scale(x: &[f32], elem: MxElement, rounding: ScaleRounding) -> Result<u8> {
    let up = round_up(rounding)?;
    let (amax, nan, inf) = block_stats(x);
    if nan || inf {
        return Ok(0xff);
    }
    if amax == 0.0 {
        return Ok(0);
    }
    let e = if up {
        let d = (amax as f32) / elem.max();
        if d == 0.0 {
            return Ok(0);
        }
        ceil_log2(d as f64)
    } else {
        floor_log2(amax) - elem.emax()
    };
    Ok((e + 127).clamp(0, 254) as u8)
}

/// One MX block (32 values): (UE8M0 scale, one code per element: E2M1 in the low nibble or an
/// E4M3 byte). Scale 0xff or an all-zero block: every code 0. Otherwise
/// `code = encode(x · 2^(127 − scale))`, the product computed exactly in f64 and rounded once to
/// f32 (which is what the f32 multiplication by a power of two gives). `rounding` as in
/// [`mx_scale`]; a block of another length than 32 is `Error::Shape { arg: "x" }`.
pub fn mx_block(x: &[f32], elem: MxElement, rounding: ScaleRounding) -> Result<(u8, Vec<u8>)> {
    if x.len() != 32 {
        return Err(Error::Shape {
            arg: "x",
            expected: "32 elements (one MX block)".into(),
            actual: x.len().to_string(),
        });
    }
    let scale = mx_scale(x, elem, rounding)?;
    let (amax, _, _) = block_stats(x);
    if scale == 0xff || amax == 0.0 {
        return Ok((scale, vec![0; 32]));
    }
    let m = pow2(127 - scale as i32);
    Ok((scale, x.iter().map(|&v| elem.encode(((v as f64) * m) as f32)).collect()))
}

/// Packs E2M1 codes two per byte, element `2i` in the low nibble.
pub fn pack_e2m1(codes: &[u8]) -> Vec<u8> {
    codes.chunks(2).map(|p| (p[0] & 0xf) | ((p.get(1).copied().unwrap_or(0) & 0xf) << 4)).collect()
}

/// The output of quantizing a dense `[rows, k]` matrix.
#[derive(Clone, Debug, PartialEq)]
pub struct Quantized {
    /// `[rows, k / 2]` packed E2M1 bytes or `[rows, k]` E4M3 bytes, dense.
    pub codes: Vec<u8>,
    /// `[rows, k / block]` scale bytes, linear, dense.
    pub scales: Vec<u8>,
}

/// The microscaling formats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Format {
    /// NVFP4 with this global encode scale.
    Nvfp4 {
        /// The global encode scale.
        g: f32,
    },
    /// MXFP4 with this scale rounding (`Floor` or `Ceil`).
    Mxfp4(ScaleRounding),
    /// MXFP8 with this scale rounding (`Floor` or `Ceil`).
    Mxfp8(ScaleRounding),
}

impl Format {
    /// Elements per scale block.
    pub fn block(self) -> usize {
        if matches!(self, Format::Nvfp4 { .. }) { 16 } else { 32 }
    }
    /// Code bytes per row of `k` elements.
    pub fn code_cols(self, k: usize) -> usize {
        if matches!(self, Format::Mxfp8(_)) { k } else { k / 2 }
    }
}

/// Quantizes a dense row-major `[rows, k]` matrix (`k` a multiple of the block). An MX `fmt` with
/// `ScaleRounding::Exact` is `Error::InvalidValue { arg: "fmt" }`; `k` not a multiple of the block
/// `Error::Shape { arg: "k" }`, `x` of another length than `rows · k` `Error::Shape { arg: "x" }`.
pub fn quantize(x: &[f32], rows: usize, k: usize, fmt: Format) -> Result<Quantized> {
    if let Format::Mxfp4(r) | Format::Mxfp8(r) = fmt {
        round_up(r).map_err(|e| match e {
            Error::InvalidValue { expected, actual, .. } => Error::InvalidValue { arg: "fmt", expected, actual },
            e => e,
        })?;
    }
    let block = fmt.block();
    if k % block != 0 {
        return Err(Error::Shape { arg: "k", expected: format!("a multiple of {block}"), actual: k.to_string() });
    }
    if Some(x.len()) != rows.checked_mul(k) {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("rows · k = {rows} · {k} elements"),
            actual: x.len().to_string(),
        });
    }
    let mut codes = Vec::with_capacity(rows * fmt.code_cols(k));
    let mut scales = Vec::with_capacity(rows * k / block);
    for b in x.chunks(block) {
        let (s, c) = match fmt {
            Format::Nvfp4 { g } => nvfp4_block(b, g),
            Format::Mxfp4(rounding) => mx_block(b, MxElement::E2m1, rounding)?,
            Format::Mxfp8(rounding) => mx_block(b, MxElement::E4m3, rounding)?,
        };
        scales.push(s);
        if matches!(fmt, Format::Mxfp8(_)) {
            codes.extend_from_slice(&c);
        } else {
            codes.extend(pack_e2m1(&c));
        }
    }
    Ok(Quantized { codes, scales })
}

/// Dequantizes codes (dense, as `quantize` returns them) with linear scales to f32:
/// NVFP4 `(value · s) / g` in f32, in that order; MX `value · 2^(scale − 127)` (f32 product).
/// A NaN scale or NaN code gives NaN. Round the result to bf16 with `bf16_bits`.
pub fn dequantize(codes: &[u8], scales: &[u8], rows: usize, k: usize, fmt: Format) -> Vec<f32> {
    let block = fmt.block();
    let mut y = Vec::with_capacity(rows * k);
    for i in 0..rows * k {
        let s = scales[i / block];
        let v = match fmt {
            Format::Mxfp8(_) => e4m3_value(codes[i]),
            _ => e2m1_value(if i % 2 == 0 { codes[i / 2] & 0xf } else { codes[i / 2] >> 4 }),
        };
        y.push(match fmt {
            Format::Nvfp4 { g } => ((v as f32) * (e4m3_value(s) as f32)) / g,
            _ => (v * ue8m0_value(s)) as f32,
        });
    }
    y
}

/// f32 → bf16 bits, round to nearest even (`half`'s conversion, independent of lowp's).
pub fn bf16_bits(v: f32) -> u16 {
    half::bf16::from_f32(v).to_bits()
}

/// Byte offset of scale `(r, c)` in the 128×4 swizzled layout of a matrix with `cols` scale
/// columns (written out from the layout's definition).
pub fn swizzled_offset(r: usize, c: usize, cols: usize) -> usize {
    let col_tiles = cols.div_ceil(4);
    let (tile_row, tile_col) = (r / 128, c / 4);
    let (r_in, c_in) = (r % 128, c % 4);
    (tile_row * col_tiles + tile_col) * 512 + (r_in % 32) * 16 + (r_in / 32) * 4 + c_in
}

/// Length in bytes of the swizzled layout of a `[rows, cols]` scale matrix.
pub fn swizzled_len(rows: usize, cols: usize) -> usize {
    rows.div_ceil(128) * 128 * cols.div_ceil(4) * 4
}

/// Linear `[rows, cols]` scales (dense) → the swizzled bytes, padding zero.
pub fn swizzle(scales: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; swizzled_len(rows, cols)];
    for r in 0..rows {
        for c in 0..cols {
            out[swizzled_offset(r, c, cols)] = scales[r * cols + c];
        }
    }
    out
}

/// Swizzled bytes → linear `[rows, cols]` scales (dense); padding ignored.
pub fn unswizzle(sw: &[u8], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = sw[swizzled_offset(r, c, cols)];
        }
    }
    out
}

/// The grouped layout of `rows` input rows split by cumulative ends `offs` (`torch._grouped_mm`
/// style: group `g` has rows `[offs[g-1], offs[g])`, `offs[-1] = 0`), after clamping: each end
/// is clamped to `[0, rows]` and to at least the previous end.
///
/// Returns the clamped row range of each group and the scale row offsets: entry `g` is the first
/// scale row of group `g`'s region (regions are consecutive, each `pad128(size)` rows), entry
/// `groups` the total.
pub fn group_layout(offs: &[i32], rows: usize) -> (Vec<std::ops::Range<usize>>, Vec<i32>) {
    let mut ranges = Vec::with_capacity(offs.len());
    let mut offsets = vec![0i32];
    let mut prev = 0usize;
    let mut total = 0usize;
    for &o in offs {
        let end = (o.max(0) as usize).min(rows).max(prev);
        ranges.push(prev..end);
        total += (end - prev).div_ceil(128) * 128;
        offsets.push(total as i32);
        prev = end;
    }
    (ranges, offsets)
}

/// Worst-case length of a grouped scale buffer: `rows + 127 · groups` scale rows rounded up to
/// 128, times the padded scale columns.
pub fn grouped_swizzled_len(rows: usize, cols: usize, groups: usize) -> usize {
    swizzled_len(rows + 127 * groups, cols)
}

/// The grouped scale buffer's meaningful bytes (up to the last region's end): each group's linear
/// scales (rows of `scales`, a dense `[rows, cols]` matrix) swizzled into its own region, padding
/// zero; plus the scale row offsets (`group_layout`).
pub fn grouped_swizzle(scales: &[u8], rows: usize, cols: usize, offs: &[i32]) -> (Vec<u8>, Vec<i32>) {
    let (ranges, offsets) = group_layout(offs, rows);
    let region_bytes = cols.div_ceil(4) * 4;
    let total = *offsets.last().unwrap_or(&0) as usize;
    let mut out = vec![0u8; total * region_bytes];
    for (g, range) in ranges.iter().enumerate() {
        let n = range.len();
        let region = swizzle(&scales[range.start * cols..range.end * cols], n, cols);
        let start = offsets[g] as usize * region_bytes;
        out[start..start + region.len()].copy_from_slice(&region);
    }
    (out, offsets)
}

/// `max |x|` of a tensor, NaN if any element is NaN.
pub fn tensor_amax(x: &[f32]) -> f32 {
    if x.iter().any(|v| v.is_nan()) {
        return f32::NAN;
    }
    x.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The NVFP4 global encode scale of a tensor amax: `(448 · 6) / amax` in f32; 1 when amax is 0,
/// infinite or NaN; `f32::MAX` when the quotient overflows.
pub fn nvfp4_global_scale(amax: f32) -> f32 {
    if amax == 0.0 || !amax.is_finite() {
        return 1.0;
    }
    let g = 2688.0f32 / amax;
    if g.is_infinite() { f32::MAX } else { g }
}
