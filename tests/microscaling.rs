//! NVFP4 / MXFP4 / MXFP8 quantization, scale swizzling, the grouped layout and dequantization.
//!
//! CPU: the reference (`lowp::reference::microscaling`) on hand-worked examples and on the
//! swizzle test vectors from outside (`tests/data/swizzle_128x4.csv`). The per-block arithmetic
//! the kernels run is checked against the reference on millions of random blocks by the unit
//! tests (`host/tests/microscaling_math.rs`).
//!
//! GPU (or the simulator where there is none, with fewer rows of the same kinds): every format ×
//! input dtype × scale layout × (vector and scalar path) on fresh random inputs with special
//! values, outputs poisoned before the launch, codes and scales compared bit for bit with the
//! reference, swizzle padding checked zero and bytes past the outputs untouched; grouped launches
//! with empty, single-row, non-multiple-of-128 and Zipf-like groups and with invalid offsets;
//! round trips through the dequantizers; the swizzle kernels; the tensor amax and global scale.

mod common;

use std::sync::Arc;

use half::{bf16, f16};
use lowp::cudarc::driver::{CudaSlice, CudaStream};
use lowp::microscaling::{self as mx, GlobalScale};
use lowp::reference::microscaling as rf;
use lowp::{Error, ErrorFlag, F4E2M1x2, F8E4M3, Float, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};

use common::Rng;

// ---------------------------------------------------------------------------------------------
// CPU: the reference

/// (rows, cols, linear bytes, swizzled bytes) of each case of `tests/data/swizzle_128x4.csv`.
fn swizzle_vectors() -> Vec<(usize, usize, Vec<u8>, Vec<u8>)> {
    // Compiled in: the test executable runs wherever it is copied, without the source tree.
    let (path, text) = ("tests/data/swizzle_128x4.csv", include_str!("data/swizzle_128x4.csv"));
    let hex = |s: &str| -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or_else(|e| panic!("{path}: {e}")))
            .collect()
    };
    let mut cases = Vec::new();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    while let Some(head) = lines.next() {
        let dims: Vec<usize> = head
            .trim_start_matches('#')
            .split_whitespace()
            .map(|kv| {
                kv.split('=')
                    .nth(1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("{path}: bad header {head:?}"))
            })
            .collect();
        let input = lines.next().and_then(|l| l.strip_prefix("in,")).unwrap_or_else(|| panic!("{path}: no `in` row"));
        let output =
            lines.next().and_then(|l| l.strip_prefix("out,")).unwrap_or_else(|| panic!("{path}: no `out` row"));
        cases.push((dims[0], dims[1], hex(input), hex(output)));
    }
    assert_eq!(cases.len(), 4, "{path}");
    cases
}

#[test]
fn reference_swizzle_and_unswizzle_match_the_test_vectors() {
    for (rows, cols, lin, sw) in swizzle_vectors() {
        assert_eq!(lin.len(), rows * cols);
        assert_eq!(sw.len(), rf::swizzled_len(rows, cols), "{rows}x{cols}");
        assert_eq!(sw.len(), swizzled_len(rows, cols), "{rows}x{cols}");
        assert_eq!(rf::swizzle(&lin, rows, cols), sw, "swizzle {rows}x{cols}");
        assert_eq!(rf::unswizzle(&sw, rows, cols), lin, "unswizzle {rows}x{cols}");
    }
}

#[test]
fn reference_nvfp4_worked_examples() {
    // g = 1, amax 6: scale = e4m3(1.0) = 0x38, codes are the E2M1 codes of x itself.
    let x: Vec<f32> = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.5, -6.0, 0.25, 0.75, 2.5, 3.5, 5.0, -0.0].to_vec();
    let (s, c) = rf::nvfp4_block(&x, 1.0);
    assert_eq!(s, 0x38);
    // ties: 0.25 → 0, 0.75 → 1 (code 2), 2.5 → 2 (code 4), 3.5 → 4 (code 6), 5 → 4 (code 6)
    assert_eq!(c, vec![0, 1, 2, 3, 4, 5, 6, 7, 0x9, 0xf, 0, 2, 4, 6, 6, 0x8]);
    assert_eq!(rf::pack_e2m1(&c[..4]), vec![0x10, 0x32]);
    // g = 448·6 / 12 = 224: (12 / 6) · 224 = 448 → scale 0x7e; x · g / 448 = x / 2
    let mut y = vec![1.0f32; 16];
    y[0] = 12.0;
    y[1] = -3.0;
    let (s, c) = rf::nvfp4_block(&y, rf::nvfp4_global_scale(12.0));
    assert_eq!((s, c[0], c[1], c[2]), (0x7e, 7, 0xb, 1));
    // a zero block: scale 0, codes 0 (even −0); a NaN block: scale 0x7f, codes 0
    assert_eq!(rf::nvfp4_block(&[-0.0; 16], 3.0), (0, vec![0; 16]));
    let mut z = vec![1.0f32; 16];
    z[5] = f32::NAN;
    assert_eq!(rf::nvfp4_block(&z, 1.0), (0x7f, vec![0; 16]));
    // Inf: amax Inf → scale saturates to 448; Inf → ±6, finite values x / 448
    let mut w = vec![448.0f32; 16];
    w[0] = f32::NEG_INFINITY;
    let (s, c) = rf::nvfp4_block(&w, 1.0);
    assert_eq!((s, c[0], c[1]), (0x7e, 0xf, 2));
}

#[test]
fn reference_mx_worked_examples() {
    let block = |top: f32| {
        let mut b = vec![0.0f32; 32];
        b[0] = top;
        b[1] = -0.5;
        b
    };
    use rf::MxElement::{E2m1, E4m3};
    // amax 6: OCP ⌊log2 6⌋ − 2 = 0 → 127; round-up ⌈log2 1⌉ = 0 → 127
    assert_eq!(rf::mx_block(&block(6.0), E2m1, ScaleRounding::Floor).expect("MX rounding").0, 127);
    assert_eq!(rf::mx_block(&block(6.0), E2m1, ScaleRounding::Ceil).expect("MX rounding").0, 127);
    // amax 7: OCP keeps 2^0 and 7 saturates to 6 (code 7); round-up takes 2^1, 7 / 2 = 3.5 → 4
    let (s, c) = rf::mx_block(&block(7.0), E2m1, ScaleRounding::Floor).expect("MX rounding");
    assert_eq!((s, c[0], c[1]), (127, 7, 0x9));
    let (s, c) = rf::mx_block(&block(7.0), E2m1, ScaleRounding::Ceil).expect("MX rounding");
    assert_eq!((s, c[0], c[1]), (128, 6, 0x8), "−0.5 / 2 = −0.25: a tie, rounds to −0");
    // MXFP8: amax 500: OCP 2^(8 − 8) → 500 saturates to 448; round-up 2^1 → 250 → 256 (0x78)
    let (s, c) = rf::mx_block(&block(500.0), E4m3, ScaleRounding::Floor).expect("MX rounding");
    assert_eq!((s, c[0], c[1]), (127, 0x7e, 0xb0));
    let (s, c) = rf::mx_block(&block(500.0), E4m3, ScaleRounding::Ceil).expect("MX rounding");
    assert_eq!((s, c[0]), (128, 0x78));
    // zero, NaN, Inf blocks
    assert_eq!(rf::mx_block(&[0.0; 32], E2m1, ScaleRounding::Floor).expect("MX rounding"), (0, vec![0; 32]));
    assert_eq!(rf::mx_block(&block(f32::NAN), E4m3, ScaleRounding::Floor).expect("MX rounding"), (0xff, vec![0; 32]));
    assert_eq!(
        rf::mx_block(&block(f32::INFINITY), E2m1, ScaleRounding::Ceil).expect("MX rounding"),
        (0xff, vec![0; 32])
    );
    // tiny amax: the scale clamps at 2^-127
    let mut tiny = vec![0.0f32; 32];
    tiny[9] = -1e-40;
    assert_eq!(rf::mx_scale(&tiny, E2m1, ScaleRounding::Floor).expect("MX rounding"), 0);
    assert_eq!(rf::mx_scale(&tiny, E4m3, ScaleRounding::Ceil).expect("MX rounding"), 0);
    // MX scales are powers of two: Exact is refused, as the quantizers refuse it
    let e = rf::mx_scale(&block(6.0), E2m1, ScaleRounding::Exact).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidValue { arg: "rounding", actual, .. } if actual == "ScaleRounding::Exact"),
        "{e}"
    );
    let e = rf::quantize(&block(6.0), 1, 32, rf::Format::Mxfp8(ScaleRounding::Exact)).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "fmt", .. }), "{e}");
}

#[test]
fn reference_group_layout_examples() {
    // empty first group, 3 rows, empty, 197 rows, 1 row
    let (ranges, offs) = rf::group_layout(&[0, 3, 3, 200, 201], 201);
    assert_eq!(ranges, vec![0..0, 0..3, 3..3, 3..200, 200..201]);
    assert_eq!(offs, vec![0, 0, 128, 128, 384, 512]);
    // invalid: decreasing, past the end, negative → clamped to [previous end, rows]
    let (ranges, offs) = rf::group_layout(&[10, 5, 300, -4], 100);
    assert_eq!(ranges, vec![0..10, 10..10, 10..100, 100..100]);
    assert_eq!(offs, vec![0, 128, 128, 256, 256]);
    // the grouped bytes are each group's swizzle, back to back
    let scales: Vec<u8> = (0..201 * 3).map(|i| (i % 251) as u8 + 1).collect();
    let (bytes, offs) = rf::grouped_swizzle(&scales, 201, 3, &[0, 3, 3, 200, 201]);
    assert_eq!(bytes.len(), 512 * 4);
    assert_eq!(&bytes[..512], &rf::swizzle(&scales[..9], 3, 3)[..]);
    assert_eq!(&bytes[512..1536], &rf::swizzle(&scales[9..600], 197, 3)[..]);
    assert_eq!(offs[4] * 4, 1536);
    assert!(bytes.len() <= rf::grouped_swizzled_len(201, 3, 5));
}

#[test]
fn reference_round_trips_stay_within_the_formats_resolution() {
    let mut rng = Rng::fresh("reference_round_trips_stay_within_the_formats_resolution");
    let (rows, k) = (8, 256);
    let x: Vec<f32> = (0..rows * k).map(|_| rng.normal() as f32).collect();
    for (fmt, rel) in [
        (rf::Format::Nvfp4 { g: rf::nvfp4_global_scale(rf::tensor_amax(&x)) }, 0.5),
        (rf::Format::Mxfp4(ScaleRounding::Floor), 0.5),
        (rf::Format::Mxfp8(ScaleRounding::Ceil), 1.0 / 16.0),
    ] {
        let q = rf::quantize(&x, rows, k, fmt).expect("reference");
        let y = rf::dequantize(&q.codes, &q.scales, rows, k, fmt);
        for b in 0..rows * k / fmt.block() {
            let blk = &x[b * fmt.block()..(b + 1) * fmt.block()];
            let amax = blk.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            for i in b * fmt.block()..(b + 1) * fmt.block() {
                // error at most half a quantum of the block's largest binade, plus saturation slack
                assert!((x[i] - y[i]).abs() <= rel * amax + 1e-6, "{fmt:?} element {i}: {} → {}", x[i], y[i]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// GPU helpers

/// The input dtypes on the host side of the tests.
trait In: Float + Copy {
    fn to_f32(self) -> f32;
}

impl In for bf16 {
    fn to_f32(self) -> f32 {
        bf16::to_f32(self)
    }
}

impl In for f16 {
    fn to_f32(self) -> f32 {
        f16::to_f32(self)
    }
}

impl In for f32 {
    fn to_f32(self) -> f32 {
        self
    }
}

const POISON: u8 = 0xa5;

/// `n` random values in blocks of `block`: each block at its own magnitude (2^-30 .. 2^30, and
/// now and then subnormal or near the type's limits), with exact E2M1 ties, zeros, ±0, and rare
/// ±Inf and NaN when `specials`. Never all zero.
fn random_values<T: In>(rng: &mut Rng, n: usize, block: usize, specials: bool) -> Vec<T> {
    const TIES: [f64; 8] = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0];
    let mut v = Vec::with_capacity(n);
    for b in 0..n.div_ceil(block) {
        let kind = rng.below(10);
        let mag = 2f64.powi(rng.below(60) as i32 - 30);
        for i in 0..block.min(n - b * block) {
            let x = match kind {
                0 => 0.0,
                1 => rng.pick_sign() * TIES[rng.below(8) as usize] * 2f64.powi(rng.below(20) as i32 - 10),
                2 => rng.normal() * 1e-38, // subnormal in bf16/f32, zero in f16
                3 => rng.normal() * 6e4,   // near f16's limit
                _ => rng.normal() * mag,
            };
            let x = if i == 0 && kind == 0 { 0.0 } else { x };
            v.push(T::from_f64(x));
        }
    }
    if specials {
        for _ in 0..(n / 4096).max(1) {
            let i = rng.below(n as u64) as usize;
            v[i] = T::from_f64(match rng.below(4) {
                0 => f64::NAN,
                1 => f64::INFINITY,
                2 => f64::NEG_INFINITY,
                _ => -0.0,
            });
        }
    }
    v[rng.below(n as u64) as usize] = T::from_f64(1.5); // never all zero
    v
}

trait RngExt {
    fn pick_sign(&mut self) -> f64;
}

impl RngExt for Rng {
    fn pick_sign(&mut self) -> f64 {
        if self.next_u64() & 1 == 0 { 1.0 } else { -1.0 }
    }
}

/// The dense `[rows, cols]` values of a host buffer with a row stride and a leading offset.
fn dense<T: Copy>(buf: &[T], rows: usize, cols: usize, stride: usize, offset: usize) -> Vec<T> {
    (0..rows).flat_map(|r| buf[offset + r * stride..offset + r * stride + cols].iter().copied()).collect()
}

/// Checks a strided byte matrix read back from the device: `rows × cols` at `stride` from
/// `offset` equals `want` (dense), every other byte of the buffer is still `POISON`.
fn check_bytes(what: &str, got: &[u8], want: &[u8], rows: usize, cols: usize, stride: usize, offset: usize) {
    for (i, g) in got.iter().enumerate() {
        let inside = i >= offset && (i - offset) / stride.max(1) < rows && (i - offset) % stride.max(1) < cols;
        if inside {
            let (r, c) = ((i - offset) / stride, (i - offset) % stride);
            assert_eq!(
                *g,
                want[r * cols + c],
                "{what}: byte ({r}, {c}): got {g:#04x}, want {:#04x}",
                want[r * cols + c]
            );
        } else {
            assert_eq!(*g, POISON, "{what}: byte {i} outside the matrix was written");
        }
    }
}

fn dtoh<T: lowp::cudarc::driver::DeviceRepr + Default + Clone>(stream: &Arc<CudaStream>, buf: &CudaSlice<T>) -> Vec<T> {
    let v = stream.clone_dtoh(buf).expect("dtoh");
    stream.synchronize().expect("sync");
    v
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Fmt {
    Nvfp4,
    Mxfp4(ScaleRounding),
    Mxfp8(ScaleRounding),
}

impl Fmt {
    fn block(self) -> usize {
        if self == Fmt::Nvfp4 { 16 } else { 32 }
    }
    fn code_cols(self, k: usize) -> usize {
        if matches!(self, Fmt::Mxfp8(_)) { k } else { k / 2 }
    }
    fn reference(self, g: f32) -> rf::Format {
        match self {
            Fmt::Nvfp4 => rf::Format::Nvfp4 { g },
            Fmt::Mxfp4(r) => rf::Format::Mxfp4(r),
            Fmt::Mxfp8(r) => rf::Format::Mxfp8(r),
        }
    }
}

const FORMATS: [Fmt; 5] = [
    Fmt::Nvfp4,
    Fmt::Mxfp4(ScaleRounding::Floor),
    Fmt::Mxfp4(ScaleRounding::Ceil),
    Fmt::Mxfp8(ScaleRounding::Floor),
    Fmt::Mxfp8(ScaleRounding::Ceil),
];

/// How the NVFP4 global scale is passed.
#[derive(Clone, Copy, Debug, PartialEq)]
enum GMode {
    /// `GlobalScale::Value(448·6 / amax)` computed on the host.
    Host,
    /// `nvfp4_global_scale` on the device, passed as `GlobalScale::Device`.
    Device,
    /// A fixed host value that makes some block scales saturate.
    Saturating,
}

/// One quantize case: shape, input stride and leading offset (elements), code row stride and
/// offset (bytes), scale layout (linear stride, or swizzled).
#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    k: usize,
    x_stride: usize,
    x_offset: usize,
    c_stride: usize,
    c_offset: usize,
    /// `Some(row stride)`: linear scales; `None`: swizzled.
    linear: Option<usize>,
    g: GMode,
}

/// Dense cases (the vector path) and strided / offset ones (the scalar path) for K = `k`; the
/// simulator runs the two largest with fewer rows and columns (still more than 128 rows, and
/// still a K of 4096 with padded linear scales).
fn cases(fmt: Fmt, lowp: &Lowp) -> Vec<Case> {
    let sim = common::small_sizes(lowp);
    let b = fmt.block();
    let cc = |k: usize| fmt.code_cols(k);
    let dense = |rows: usize, k: usize, linear: Option<usize>, g| Case {
        rows,
        k,
        x_stride: k,
        x_offset: 0,
        c_stride: cc(k),
        c_offset: 0,
        linear,
        g,
    };
    let mut v = vec![
        dense(1, b, Some(1), GMode::Host),
        dense(1, b, None, GMode::Device),
        dense(3, 3 * b, Some(3), GMode::Host),
        dense(130, 256, None, GMode::Host),
        dense(130, 256, Some(256 / b), GMode::Device),
        dense(257, 7 * b, None, GMode::Saturating), // 7 scale columns: column padding
        if sim { dense(131, 512, None, GMode::Device) } else { dense(200, 1024, None, GMode::Device) },
        dense(if sim { 5 } else { 64 }, 4096, Some(4096 / b + 3), GMode::Host),
    ];
    // strided rows that keep 16-byte alignment (vector path)
    v.push(Case {
        rows: 33,
        k: 4 * b,
        x_stride: 4 * b + 8,
        x_offset: 0,
        c_stride: cc(4 * b) + 16,
        c_offset: 16,
        linear: None,
        g: GMode::Host,
    });
    // code rows 4-byte aligned but not 8: the vector path for FP4 (4 code bytes per lane), the
    // scalar path for FP8 (8 per lane)
    v.push(Case {
        rows: 21,
        k: 6 * b,
        x_stride: 6 * b,
        x_offset: 0,
        c_stride: cc(6 * b) + 4,
        c_offset: 4,
        linear: Some(6),
        g: GMode::Host,
    });
    // unaligned: x starts one element in, odd strides (scalar path)
    v.push(Case {
        rows: 17,
        k: 2 * b,
        x_stride: 2 * b + 3,
        x_offset: 1,
        c_stride: cc(2 * b) + 1,
        c_offset: 3,
        linear: Some(5),
        g: GMode::Host,
    });
    v.push(Case {
        rows: 129,
        k: 5 * b,
        x_stride: 5 * b + 1,
        x_offset: 0,
        c_stride: cc(5 * b),
        c_offset: 0,
        linear: None,
        g: GMode::Device,
    });
    v
}

/// One-byte element types, poisoned and read back as bytes.
trait Byte: lowp::Element + Copy {
    fn from_byte(b: u8) -> Self;
    fn byte(self) -> u8;
}

impl Byte for F4E2M1x2 {
    fn from_byte(b: u8) -> Self {
        F4E2M1x2(b)
    }
    fn byte(self) -> u8 {
        self.0
    }
}

impl Byte for F8E4M3 {
    fn from_byte(b: u8) -> Self {
        F8E4M3::from_bits(b)
    }
    fn byte(self) -> u8 {
        self.to_bits()
    }
}

impl Byte for Ue8m0 {
    fn from_byte(b: u8) -> Self {
        Ue8m0(b)
    }
    fn byte(self) -> u8 {
        self.0
    }
}

type View<'a, T> = lowp::cudarc::driver::CudaView<'a, T>;
type ViewMut<'a, T> = lowp::cudarc::driver::CudaViewMut<'a, T>;

/// A quantizer with input `T`, codes `C` and scales `S` (NVFP4 ignores the rounding, the MX
/// formats the global scale).
type QuantizeFn<T, C, S> = fn(
    &Lowp,
    &Arc<CudaStream>,
    &Matrix<T, View<'_, T>>,
    &GlobalScale<'_>,
    ScaleRounding,
    &mut Matrix<C, ViewMut<'_, C>>,
    &mut Scales<S, ViewMut<'_, S>>,
) -> lowp::Result<()>;

/// A grouped quantizer (arguments as `QuantizeFn`, with the group ends, the scale offsets and the
/// error flag).
type GroupedFn<T, C, S> = fn(
    &Lowp,
    &Arc<CudaStream>,
    &Matrix<T, View<'_, T>>,
    &CudaSlice<i32>,
    &GlobalScale<'_>,
    ScaleRounding,
    &mut Matrix<C, ViewMut<'_, C>>,
    &mut Scales<S, ViewMut<'_, S>>,
    &mut CudaSlice<i32>,
    Option<&mut ErrorFlag>,
) -> lowp::Result<()>;

/// A dequantizer (MX formats ignore the global scale).
type DequantizeFn<C, S> = fn(
    &Lowp,
    &Arc<CudaStream>,
    &Matrix<C, View<'_, C>>,
    &Scales<S, View<'_, S>>,
    &GlobalScale<'_>,
    &mut Matrix<bf16, ViewMut<'_, bf16>>,
) -> lowp::Result<()>;

/// The typed ops of one format, so that one generic path tests all three.
struct Ops<T: In, C: Byte, S: Byte> {
    quantize: QuantizeFn<T, C, S>,
    grouped: GroupedFn<T, C, S>,
    dequantize: DequantizeFn<C, S>,
}

fn nvfp4_ops<T: In>() -> Ops<T, F4E2M1x2, F8E4M3> {
    Ops {
        quantize: |l, s, x, g, _, c, sc| mx::nvfp4_quantize(l, s, x, g, c, sc),
        grouped: |l, s, x, e, g, _, c, sc, o, f| mx::nvfp4_quantize_grouped(l, s, x, e, g, c, sc, o, f),
        dequantize: |l, s, c, sc, g, out| mx::nvfp4_dequantize(l, s, c, sc, g, out),
    }
}

fn mxfp4_ops<T: In>() -> Ops<T, F4E2M1x2, Ue8m0> {
    Ops {
        quantize: |l, s, x, _, r, c, sc| mx::mxfp4_quantize(l, s, x, r, c, sc),
        grouped: |l, s, x, e, _, r, c, sc, o, f| mx::mxfp4_quantize_grouped(l, s, x, e, r, c, sc, o, f),
        dequantize: |l, s, c, sc, _, out| mx::mxfp4_dequantize(l, s, c, sc, out),
    }
}

fn mxfp8_ops<T: In>() -> Ops<T, F8E4M3, Ue8m0> {
    Ops {
        quantize: |l, s, x, _, r, c, sc| mx::mxfp8_quantize(l, s, x, r, c, sc),
        grouped: |l, s, x, e, _, r, c, sc, o, f| mx::mxfp8_quantize_grouped(l, s, x, e, r, c, sc, o, f),
        dequantize: |l, s, c, sc, _, out| mx::mxfp8_dequantize(l, s, c, sc, out),
    }
}

fn rounding(fmt: Fmt) -> ScaleRounding {
    match fmt {
        Fmt::Mxfp4(r) | Fmt::Mxfp8(r) => r,
        Fmt::Nvfp4 => ScaleRounding::Floor,
    }
}

fn poisoned<B: Byte>(stream: &Arc<CudaStream>, n: usize) -> CudaSlice<B> {
    stream.clone_htod(&vec![B::from_byte(POISON); n]).expect("htod")
}

fn bytes_back<B: Byte>(stream: &Arc<CudaStream>, buf: &CudaSlice<B>) -> Vec<u8> {
    dtoh(stream, buf).iter().map(|b| b.byte()).collect()
}

/// Elements of the swizzled layout of `[rows, cols]` scales.
fn swizzled_len(rows: usize, cols: usize) -> usize {
    ScaleLayout::Swizzled.required_len(rows, cols).expect("swizzled length")
}

/// Runs one case with input dtype `T`; panics on any mismatch.
fn run_case<T: In>(lowp: &Lowp, stream: &Arc<CudaStream>, rng: &mut Rng, fmt: Fmt, case: Case) {
    match fmt {
        Fmt::Nvfp4 => run_typed(lowp, stream, rng, fmt, case, &nvfp4_ops::<T>()),
        Fmt::Mxfp4(_) => run_typed(lowp, stream, rng, fmt, case, &mxfp4_ops::<T>()),
        Fmt::Mxfp8(_) => run_typed(lowp, stream, rng, fmt, case, &mxfp8_ops::<T>()),
    }
}

fn run_typed<T: In, C: Byte, S: Byte>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    rng: &mut Rng,
    fmt: Fmt,
    case: Case,
    ops: &Ops<T, C, S>,
) {
    let Case { rows, k, x_stride, x_offset, c_stride, c_offset, linear, g: gmode } = case;
    let nb = k / fmt.block();
    let what = format!("{fmt:?} {} {case:?}", T::DTYPE);
    let x_host: Vec<T> = random_values::<T>(rng, x_offset + rows * x_stride, fmt.block(), true);
    let x_dense: Vec<f32> = dense(&x_host, rows, k, x_stride, x_offset).iter().map(|v| v.to_f32()).collect();
    let x_dev = stream.clone_htod(&x_host).expect("htod");
    let x = Matrix::from_buffer_strided(x_dev.slice(x_offset..), rows, k, x_stride).expect("x");

    // the global scale (NVFP4; the MX formats ignore it)
    let mut g_dev = stream.clone_htod(&[f32::NAN]).expect("htod");
    let g = match gmode {
        GMode::Host => rf::nvfp4_global_scale(rf::tensor_amax(&x_dense)),
        GMode::Saturating => rf::nvfp4_global_scale(rf::tensor_amax(&x_dense)) * 3.0,
        GMode::Device => {
            mx::nvfp4_global_scale(lowp, stream, &x, &mut g_dev).expect("nvfp4_global_scale");
            let got = dtoh(stream, &g_dev)[0];
            let want = rf::nvfp4_global_scale(rf::tensor_amax(&x_dense));
            assert_eq!(got.to_bits(), want.to_bits(), "{what}: device global scale {got:e}, reference {want:e}");
            got
        }
    };
    let gs = match gmode {
        GMode::Device => GlobalScale::Device(&g_dev),
        _ => GlobalScale::Value(g),
    };

    // outputs, poisoned
    let ccols = fmt.code_cols(k);
    let mut codes_dev = poisoned::<C>(stream, c_offset + rows * c_stride);
    let sw_len = swizzled_len(rows, nb);
    let (s_len, layout) = match linear {
        Some(ld) => (rows * ld, ScaleLayout::RowMajor { ld }),
        None => (sw_len + 48, ScaleLayout::Swizzled), // bytes past the layout must stay untouched
    };
    let mut scales_dev = poisoned::<S>(stream, s_len);
    {
        let mut codes =
            Matrix::from_buffer_strided(codes_dev.slice_mut(c_offset..), rows, ccols, c_stride).expect("codes");
        let mut scales = Scales::from_buffer(scales_dev.slice_mut(..), rows, nb, layout).expect("scales");
        (ops.quantize)(lowp, stream, &x, &gs, rounding(fmt), &mut codes, &mut scales).expect("quantize");
    }
    let want = rf::quantize(&x_dense, rows, k, fmt.reference(g)).expect("reference");
    check_bytes(
        &format!("{what} codes"),
        &bytes_back(stream, &codes_dev),
        &want.codes,
        rows,
        ccols,
        c_stride,
        c_offset,
    );
    let got_scales = bytes_back(stream, &scales_dev);
    match linear {
        Some(st) => check_bytes(&format!("{what} scales"), &got_scales, &want.scales, rows, nb, st, 0),
        None => {
            let sw = rf::swizzle(&want.scales, rows, nb);
            for (i, (g, w)) in got_scales[..sw_len].iter().zip(&sw).enumerate() {
                assert_eq!(g, w, "{what}: swizzled scale byte {i} (padding is zero): got {g:#04x}, want {w:#04x}");
            }
            assert!(
                got_scales[sw_len..].iter().all(|&b| b == POISON),
                "{what}: bytes past the swizzled layout were written"
            );
        }
    }

    // Round trip: dequantize what came back, compare with the reference dequantization.
    let want_y: Vec<u16> = rf::dequantize(&want.codes, &want.scales, rows, k, fmt.reference(g))
        .iter()
        .map(|&v| rf::bf16_bits(v))
        .collect();
    let out_stride = k + 8;
    let mut out_dev = stream.clone_htod(&vec![bf16::from_bits(common::POISON16); rows * out_stride]).expect("htod");
    {
        let mut out = Matrix::from_buffer_strided(out_dev.slice_mut(..), rows, k, out_stride).expect("out");
        let codes = Matrix::from_buffer_strided(codes_dev.slice(c_offset..), rows, ccols, c_stride).expect("codes");
        let scales = Scales::from_buffer(scales_dev.slice(..), rows, nb, layout).expect("scales");
        (ops.dequantize)(lowp, stream, &codes, &scales, &gs, &mut out).expect("dequantize");
    }
    let got_y = dtoh(stream, &out_dev);
    let nan = |b: u16| b & 0x7fff > 0x7f80;
    for r in 0..rows {
        for c in 0..out_stride {
            let g = got_y[r * out_stride + c].to_bits();
            if c >= k {
                assert_eq!(g, common::POISON16, "{what}: dequantized padding ({r}, {c}) written");
                continue;
            }
            let w = want_y[r * k + c];
            assert!(g == w || (nan(g) && nan(w)), "{what}: dequantized ({r}, {c}): got {g:#06x}, want {w:#06x}");
        }
    }
}

fn sweep<T: In>(test: &str) {
    let lowp = common::gpu(test);
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh(test);
    for fmt in FORMATS {
        for case in cases(fmt, &lowp) {
            run_case::<T>(&lowp, &stream, &mut rng, fmt, case);
        }
    }
}

#[test]
fn quantize_bf16_matches_reference_bit_for_bit() {
    sweep::<bf16>("quantize_bf16_matches_reference_bit_for_bit");
}

#[test]
fn quantize_f16_matches_reference_bit_for_bit() {
    sweep::<f16>("quantize_f16_matches_reference_bit_for_bit");
}

#[test]
fn quantize_f32_matches_reference_bit_for_bit() {
    sweep::<f32>("quantize_f32_matches_reference_bit_for_bit");
}

#[test]
fn quantize_large_moe_shape() {
    let lowp = common::gpu("quantize_large_moe_shape");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("quantize_large_moe_shape");
    // K = 7168 with a partial last tile of 128 rows; the simulator runs 77 rows of it
    let rows = common::sized(&lowp, 2048 + 77, 77);
    for fmt in [Fmt::Nvfp4, Fmt::Mxfp8(ScaleRounding::Floor)] {
        let case = Case {
            rows,
            k: 7168,
            x_stride: 7168,
            x_offset: 0,
            c_stride: fmt.code_cols(7168),
            c_offset: 0,
            linear: None,
            g: GMode::Device,
        };
        run_case::<bf16>(&lowp, &stream, &mut rng, fmt, case);
    }
}

// ---------------------------------------------------------------------------------------------
// Grouped

/// Group ends for `sizes` (cumulative).
fn ends_of(sizes: &[usize]) -> Vec<i32> {
    sizes
        .iter()
        .scan(0usize, |acc, s| {
            *acc += s;
            Some(*acc as i32)
        })
        .collect()
}

/// Whether the device clamps any of the group ends `offs` of a `rows`-row input (negative, past
/// `rows`, below the previous end): then the grouped quantizers set `mx::ERR_GROUP_BOUNDS`.
fn ends_out_of_range(offs: &[i32], rows: usize) -> bool {
    let mut prev = 0i64;
    offs.iter().any(|&o| {
        let bad = o < 0 || o as i64 > rows as i64 || (o as i64) < prev;
        prev = prev.max((o as i64).clamp(0, rows as i64));
        bad
    })
}

/// Zipf-like token counts for `e` experts over `total` tokens.
fn zipf_sizes(rng: &mut Rng, e: usize, total: usize) -> Vec<usize> {
    let w: Vec<f64> = (1..=e).map(|i| 1.0 / i as f64).collect();
    let sum: f64 = w.iter().sum();
    let mut sizes: Vec<usize> = w.iter().map(|x| (x / sum * total as f64) as usize).collect();
    // shuffle so the large groups are not all first
    for i in (1..e).rev() {
        sizes.swap(i, rng.below(i as u64 + 1) as usize);
    }
    sizes
}

fn run_grouped<T: In>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    rng: &mut Rng,
    fmt: Fmt,
    rows: usize,
    k: usize,
    offs: &[i32],
) {
    match fmt {
        Fmt::Nvfp4 => run_grouped_typed(lowp, stream, rng, fmt, rows, k, offs, &nvfp4_ops::<T>()),
        Fmt::Mxfp4(_) => run_grouped_typed(lowp, stream, rng, fmt, rows, k, offs, &mxfp4_ops::<T>()),
        Fmt::Mxfp8(_) => run_grouped_typed(lowp, stream, rng, fmt, rows, k, offs, &mxfp8_ops::<T>()),
    }
}

#[allow(clippy::too_many_arguments)]
fn run_grouped_typed<T: In, C: Byte, S: Byte>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    rng: &mut Rng,
    fmt: Fmt,
    rows: usize,
    k: usize,
    offs: &[i32],
    ops: &Ops<T, C, S>,
) {
    let nb = k / fmt.block();
    let what = format!("grouped {fmt:?} {} rows {rows} k {k} offs {offs:?}", T::DTYPE);
    let x_host: Vec<T> = if rows > 0 { random_values::<T>(rng, rows * k, fmt.block(), false) } else { Vec::new() };
    let x_dense: Vec<f32> = x_host.iter().map(|v| v.to_f32()).collect();
    // a few spare elements: cudarc does not allocate empty buffers
    let x_dev = stream.clone_htod(&[x_host.clone(), vec![T::from_f64(0.0); 8]].concat()).expect("htod");
    let x = Matrix::from_buffer(x_dev.slice(..rows * k), rows, k).expect("x");
    let g = rf::nvfp4_global_scale(rf::tensor_amax(&x_dense));
    let ends_dev = stream.clone_htod(offs).expect("htod");
    let ccols = fmt.code_cols(k);
    let mut codes_dev = poisoned::<C>(stream, rows * ccols + 16);
    let layout = ScaleLayout::GroupedSwizzled { groups: offs.len() };
    // the worst case over every split of the rows (at least the kernel's `rows + 127 · groups`)
    let s_len = rf::grouped_swizzled_len(rows, nb, offs.len());
    assert!(s_len >= layout.required_len(rows, nb).expect("grouped length"), "{what}");
    let mut scales_dev = poisoned::<S>(stream, s_len.max(16));
    let mut offsets_dev = stream.clone_htod(&vec![-7i32; offs.len() + 1]).expect("htod");
    let mut flag = ErrorFlag::new(stream).expect("flag");
    {
        let mut codes = Matrix::from_buffer(codes_dev.slice_mut(..rows * ccols), rows, ccols).expect("codes");
        let mut scales = Scales::from_buffer(scales_dev.slice_mut(..), rows, nb, layout).expect("scales");
        let gs = GlobalScale::Value(g);
        let r = rounding(fmt);
        (ops.grouped)(lowp, stream, &x, &ends_dev, &gs, r, &mut codes, &mut scales, &mut offsets_dev, Some(&mut flag))
            .expect("grouped quantize");
    }
    // the bit exactly when an end was clamped
    let want_flag = if ends_out_of_range(offs, rows) { mx::ERR_GROUP_BOUNDS } else { 0 };
    assert_eq!(flag.read(stream).expect("flag"), want_flag, "{what}: error flag");
    let (ranges, want_offsets) = rf::group_layout(offs, rows);
    let covered = ranges.last().map_or(0, |r| r.end);
    let want = rf::quantize(&x_dense, rows, k, fmt.reference(g)).expect("reference");
    assert_eq!(dtoh(stream, &offsets_dev), want_offsets, "{what}: scale offsets");
    // codes of covered rows as the reference, rows past the last end untouched
    let got_codes = bytes_back(stream, &codes_dev);
    for (i, b) in got_codes.iter().enumerate() {
        let want_b = if i < covered * ccols { want.codes[i] } else { POISON };
        assert_eq!(*b, want_b, "{what}: code byte ({}, {})", i / ccols.max(1), i % ccols.max(1));
    }
    let (want_bytes, _) = rf::grouped_swizzle(&want.scales[..covered * nb], covered, nb, offs);
    let got_scales = bytes_back(stream, &scales_dev);
    for (i, b) in got_scales.iter().enumerate() {
        let w = want_bytes.get(i).copied().unwrap_or(POISON);
        assert_eq!(*b, w, "{what}: grouped scale byte {i} (regions end at {})", want_bytes.len());
    }
}

#[test]
fn grouped_quantize_matches_reference() {
    let lowp = common::gpu("grouped_quantize_matches_reference");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("grouped_quantize_matches_reference");
    let n = |gpu: usize, sim: usize| common::sized(&lowp, gpu, sim);
    let zipf = zipf_sizes(&mut rng, 16, n(1000, 300));
    let zrows: usize = zipf.iter().sum();
    for fmt in FORMATS {
        let k = 4 * fmt.block() + if fmt == Fmt::Nvfp4 { 16 } else { 0 }; // 5 or 4 scale columns
        // empty groups (first, middle, last), size 1, sizes around 128
        let sizes = [0usize, 1, 127, 0, 128, 129, 3, 0];
        let rows: usize = sizes.iter().sum();
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, rows, k, &ends_of(&sizes));
        // Zipf-like experts
        run_grouped::<f16>(&lowp, &stream, &mut rng, fmt, zrows, k, &ends_of(&zipf));
        // one group (more than 128 rows); all empty
        let one = n(300, 130);
        run_grouped::<f32>(&lowp, &stream, &mut rng, fmt, one, k, &[one as i32]);
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, 50, k, &[0, 0, 0]);
        // invalid offsets: decreasing, past the end, negative, rows left uncovered
        let rows = n(400, 260);
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, rows, k, &[100, 40, 1000, -5, 250]);
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, rows, k, &[i32::MIN, i32::MAX]);
        // more groups than threads in a block (the scans take several entries per thread)
        let many: Vec<usize> = (0..n(600, 300)).map(|i| i % 3).collect();
        let mrows = many.iter().sum();
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, mrows, k, &ends_of(&many));
        // ... with one end decreasing at the first entry of a thread's chunk (2 per thread on the
        // simulator, 3 on a GPU), seen only through the running end of the threads before
        let mut bad = ends_of(&many);
        let j = 126; // a multiple of 2 and of 3
        bad[j] = bad[j - 1] - 1;
        run_grouped::<bf16>(&lowp, &stream, &mut rng, fmt, mrows, k, &bad);
    }
    // no rows at all: only the offsets are written
    run_grouped::<bf16>(&lowp, &stream, &mut rng, Fmt::Nvfp4, 0, 64, &[0, 0]);
}

#[test]
fn grouped_quantize_flags_bad_group_ends() {
    let lowp = common::gpu("grouped_quantize_flags_bad_group_ends");
    let stream = lowp.new_stream().expect("stream");
    let (m, k) = (6, 64);
    let x = Matrix::from_host(&stream, &vec![bf16::from_f32(1.0); m * k], m, k).expect("x");
    let layout = ScaleLayout::GroupedSwizzled { groups: 2 };
    let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k).expect("codes");
    let mut scales = Scales::<Ue8m0>::zeros(&stream, m, k / 32, layout).expect("scales");
    let mut offs = stream.alloc_zeros::<i32>(3).expect("alloc");
    let r = ScaleRounding::Floor;
    let mut flag = ErrorFlag::new(&stream).expect("flag");
    for (ends, want) in [
        (vec![2i32, 6], 0),
        (vec![4, 2], mx::ERR_GROUP_BOUNDS),
        (vec![-1, 6], mx::ERR_GROUP_BOUNDS),
        (vec![3, 7], mx::ERR_GROUP_BOUNDS),
    ] {
        flag.clear(&stream).expect("clear");
        let dev = stream.clone_htod(&ends).expect("htod");
        mx::mxfp8_quantize_grouped(&lowp, &stream, &x, &dev, r, &mut codes, &mut scales, &mut offs, Some(&mut flag))
            .expect("grouped");
        assert_eq!(flag.read(&stream).expect("flag"), want, "{ends:?}");
    }
    // the bit stays set through a later good call (kernels only set bits)
    let good = stream.clone_htod(&[2i32, 6]).expect("htod");
    mx::mxfp8_quantize_grouped(&lowp, &stream, &x, &good, r, &mut codes, &mut scales, &mut offs, Some(&mut flag))
        .expect("grouped");
    assert_eq!(flag.read(&stream).expect("flag"), mx::ERR_GROUP_BOUNDS);
    // without a flag a bad table still quantizes the clamped groups, in bounds
    let bad = stream.clone_htod(&[4i32, 2]).expect("htod");
    mx::mxfp8_quantize_grouped(&lowp, &stream, &x, &bad, r, &mut codes, &mut scales, &mut offs, None).expect("grouped");
    assert_eq!(dtoh(&stream, &offs), vec![0, 128, 128]);
    // its own bit: one flag shared with the grouped GEMMs and qk_norm_rope tells them apart
    let others = lowp::gemm::ERR_GROUP_BOUNDS
        | lowp::qk_norm_rope::ERR_POSITION_OUT_OF_RANGE
        | lowp::qk_norm_rope::ERR_SLOT_OUT_OF_RANGE;
    assert_eq!(mx::ERR_GROUP_BOUNDS & others, 0);
}

// ---------------------------------------------------------------------------------------------
// Swizzle kernels, amax, errors

#[test]
fn swizzle_kernels_match_reference() {
    let lowp = common::gpu("swizzle_kernels_match_reference");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("swizzle_kernels_match_reference");
    let mut shapes: Vec<(usize, usize, Vec<u8>, Option<Vec<u8>>)> =
        swizzle_vectors().into_iter().map(|(r, c, lin, sw)| (r, c, lin, Some(sw))).collect();
    let big = common::sized(&lowp, (1000, 448), (300, 448)); // a partial last 128-row tile
    for (r, c) in [(3, 5), big, (129, 1), (256, 8)] {
        shapes.push((r, c, (0..r * c).map(|_| rng.next_u64() as u8).collect(), None));
    }
    for (rows, cols, lin, sw_vec) in shapes {
        let stride = cols + 3;
        let mut lin_buf = vec![POISON; rows * stride];
        for r in 0..rows {
            lin_buf[r * stride..r * stride + cols].copy_from_slice(&lin[r * cols..(r + 1) * cols]);
        }
        let want = rf::swizzle(&lin, rows, cols);
        if let Some(v) = &sw_vec {
            assert_eq!(&want, v);
        }
        let src_dev = stream.clone_htod(&lin_buf.iter().map(|&b| Ue8m0(b)).collect::<Vec<_>>()).expect("htod");
        let len = swizzled_len(rows, cols);
        let mut dst_dev = poisoned::<Ue8m0>(&stream, len + 32);
        {
            let src =
                Scales::from_buffer(src_dev.slice(..), rows, cols, ScaleLayout::RowMajor { ld: stride }).expect("src");
            let mut dst = Scales::swizzled(dst_dev.slice_mut(..), rows, cols).expect("dst");
            mx::swizzle_scales(&lowp, &stream, &src, &mut dst).expect("swizzle");
        }
        let got = bytes_back(&stream, &dst_dev);
        assert_eq!(&got[..len], &want[..], "swizzle {rows}x{cols}");
        assert!(got[len..].iter().all(|&b| b == POISON), "swizzle {rows}x{cols}: wrote past the layout");
        // and back, into a poisoned strided tensor
        let mut back_dev = poisoned::<Ue8m0>(&stream, rows * stride);
        {
            let src = Scales::swizzled(dst_dev.slice(..), rows, cols).expect("src");
            let layout = ScaleLayout::RowMajor { ld: stride };
            let mut back = Scales::from_buffer(back_dev.slice_mut(..), rows, cols, layout).expect("back");
            mx::unswizzle_scales(&lowp, &stream, &src, &mut back).expect("unswizzle");
        }
        let got = bytes_back(&stream, &back_dev);
        check_bytes(&format!("unswizzle {rows}x{cols}"), &got, &lin, rows, cols, stride, 0);
    }
}

#[test]
fn tensor_amax_matches_reference() {
    let lowp = common::gpu("tensor_amax_matches_reference");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("tensor_amax_matches_reference");
    fn one<T: In>(
        lowp: &Lowp,
        stream: &Arc<CudaStream>,
        rng: &mut Rng,
        rows: usize,
        cols: usize,
        stride: usize,
        nan: bool,
    ) {
        let mut host: Vec<T> = random_values::<T>(rng, rows * stride, 16, false);
        if nan {
            let i = rng.below((rows * stride) as u64) as usize;
            host[i] = T::from_f64(f64::NAN);
        }
        let want = rf::tensor_amax(&dense(&host, rows, cols, stride, 0).iter().map(|v| v.to_f32()).collect::<Vec<_>>());
        let dev = stream.clone_htod(&host).expect("htod");
        let x = Matrix::from_buffer_strided(dev.slice(..), rows, cols, stride).expect("x");
        let mut out = stream.clone_htod(&[123.0f32]).expect("htod");
        mx::tensor_amax(lowp, stream, &x, &mut out).expect("tensor_amax");
        let got = dtoh(stream, &out)[0];
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "{} [{rows}, {cols}] stride {stride}: amax {got:e}, want {want:e}",
            T::DTYPE
        );
    }
    // the simulator's large shapes still grid-stride (its grid is capped at 8 CTAs per SM)
    let large = common::sized(&lowp, [(777, 4096, 4096), (4096, 64, 72)], [(77, 4096, 4096), (1024, 64, 72)]);
    for (rows, cols, stride) in [(1, 16, 16), large[0], (33, 100, 103), (5, 8, 9), large[1]] {
        for nan in [false, true] {
            one::<bf16>(&lowp, &stream, &mut rng, rows, cols, stride, nan);
            one::<f16>(&lowp, &stream, &mut rng, rows, cols, stride, nan);
            one::<f32>(&lowp, &stream, &mut rng, rows, cols, stride, nan);
        }
    }
    // an empty tensor: amax 0, so g = 1
    let dev = stream.alloc_zeros::<bf16>(16).expect("alloc");
    let x = Matrix::from_buffer(dev.slice(..), 0, 16).expect("x");
    let mut g = stream.clone_htod(&[7.0f32]).expect("htod");
    mx::nvfp4_global_scale(&lowp, &stream, &x, &mut g).expect("global scale");
    assert_eq!(dtoh(&stream, &g)[0], 1.0);
}

#[test]
fn device_global_scale_out_of_range_is_used_as_one() {
    let lowp = common::gpu("device_global_scale_out_of_range_is_used_as_one");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = Rng::fresh("device_global_scale_out_of_range_is_used_as_one");
    let host: Vec<bf16> = random_values::<bf16>(&mut rng, 4 * 64, 16, false);
    let dense_x: Vec<f32> = host.iter().map(|v| v.to_f32()).collect();
    let want = rf::quantize(&dense_x, 4, 64, rf::Format::Nvfp4 { g: 1.0 }).expect("reference");
    let x_dev = stream.clone_htod(&host).expect("htod");
    let x = Matrix::from_buffer(x_dev.slice(..), 4, 64).expect("x");
    for bad in [0.0f32, -2.0, f32::NAN, f32::INFINITY] {
        let g_dev = stream.clone_htod(&[bad]).expect("htod");
        let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, 4, 32).expect("codes");
        let mut scales = Scales::<F8E4M3>::zeros(&stream, 4, 4, ScaleLayout::RowMajor { ld: 4 }).expect("scales");
        // the device value straight from its `CudaSlice`
        mx::nvfp4_quantize(&lowp, &stream, &x, &GlobalScale::Device(&g_dev), &mut codes, &mut scales)
            .expect("quantize");
        let c: Vec<u8> = codes.to_host(&stream).expect("codes").iter().map(|v| v.0).collect();
        let s: Vec<u8> = scales.to_host_raw(&stream).expect("scales").iter().map(|v| v.to_bits()).collect();
        assert_eq!((c, s), (want.codes.clone(), want.scales.clone()), "device g = {bad}");
    }
}

#[test]
fn microscaling_rejects_bad_arguments_on_device() {
    let lowp = common::gpu("microscaling_rejects_bad_arguments_on_device");
    let stream = lowp.new_stream().expect("stream");
    let row_major = |cols| ScaleLayout::RowMajor { ld: cols };
    let x = Matrix::<bf16>::zeros(&stream, 4, 64).expect("x");
    let x40 = Matrix::<bf16>::zeros(&stream, 4, 40).expect("x");
    let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, 4, 32).expect("codes");
    let mut codes_bad = Matrix::<F4E2M1x2>::zeros(&stream, 4, 64).expect("codes");
    let mut scales = Scales::<F8E4M3>::zeros(&stream, 4, 4, row_major(4)).expect("scales");
    let g = GlobalScale::Value(1.0);
    let e = mx::nvfp4_quantize(&lowp, &stream, &x40, &g, &mut codes, &mut scales).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = mx::nvfp4_quantize(&lowp, &stream, &x, &g, &mut codes_bad, &mut scales).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "codes", .. }), "{e}");
    // a swizzled buffer too small for the layout is refused where it is described
    let small = stream.alloc_zeros::<F8E4M3>(100).expect("alloc");
    let e = Scales::swizzled(small, 4, 4).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "buf", required: 512, actual: 100 }), "{e}");
    let e = mx::nvfp4_quantize(&lowp, &stream, &x, &GlobalScale::Value(f32::NAN), &mut codes, &mut scales).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "global_scale", .. }), "{e}");
    let g_two = stream.alloc_zeros::<f32>(2).expect("alloc");
    let e = mx::nvfp4_quantize(&lowp, &stream, &x, &GlobalScale::Device(&g_two), &mut codes, &mut scales).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "global_scale", .. }), "{e}");
    // scales of the wrong shape, in a layout the op does not take, rounding it does not take
    let mut mxs = Scales::<Ue8m0>::zeros(&stream, 4, 3, row_major(3)).expect("scales");
    let e = mx::mxfp4_quantize(&lowp, &stream, &x, ScaleRounding::Floor, &mut codes, &mut mxs).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }), "{e}");
    let mut mmajor = Scales::<Ue8m0>::zeros(&stream, 4, 2, ScaleLayout::MMajor { ld: 4 }).expect("scales");
    let e = mx::mxfp4_quantize(&lowp, &stream, &x, ScaleRounding::Floor, &mut codes, &mut mmajor).unwrap_err();
    assert!(
        matches!(e, Error::Layout { arg: "scales", expected: "ScaleLayout::RowMajor or ScaleLayout::Swizzled", .. }),
        "{e}"
    );
    let mut mx_scales = Scales::<Ue8m0>::zeros(&stream, 4, 2, row_major(2)).expect("scales");
    let e = mx::mxfp4_quantize(&lowp, &stream, &x, ScaleRounding::Exact, &mut codes, &mut mx_scales).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "rounding", .. }), "{e}");
    let mut out = Matrix::<bf16>::zeros(&stream, 4, 64).expect("out");
    let e = mx::mxfp4_dequantize(&lowp, &stream, &codes, &mmajor, &mut out).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", .. }), "{e}");
    // grouped: the offsets' length, the layout, the number of groups
    let ends = stream.clone_htod(&[2i32, 4]).expect("htod");
    let mut offs = stream.alloc_zeros::<i32>(2).expect("alloc");
    let mut offs3 = stream.alloc_zeros::<i32>(3).expect("alloc");
    let grouped = |groups| ScaleLayout::GroupedSwizzled { groups };
    let mut big = Scales::<F8E4M3>::zeros(&stream, 4, 4, grouped(2)).expect("scales");
    let e =
        mx::nvfp4_quantize_grouped(&lowp, &stream, &x, &ends, &g, &mut codes, &mut big, &mut offs, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scale_offsets", .. }), "{e}");
    let mut sw = Scales::<F8E4M3>::zeros(&stream, 4, 4, ScaleLayout::Swizzled).expect("scales");
    let e =
        mx::nvfp4_quantize_grouped(&lowp, &stream, &x, &ends, &g, &mut codes, &mut sw, &mut offs3, None).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", expected: "ScaleLayout::GroupedSwizzled", .. }), "{e}");
    let mut three = Scales::<F8E4M3>::zeros(&stream, 4, 4, grouped(3)).expect("scales");
    let e = mx::nvfp4_quantize_grouped(&lowp, &stream, &x, &ends, &g, &mut codes, &mut three, &mut offs3, None)
        .unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }), "{e}");
    let e = mx::nvfp4_quantize(&lowp, &stream, &x, &g, &mut codes, &mut big).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", .. }), "{e}");
    // swizzle: row-major in, swizzled out, and the reverse
    let e = mx::swizzle_scales(&lowp, &stream, &sw, &mut scales).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "src", expected: "ScaleLayout::RowMajor", .. }), "{e}");
    let e = mx::unswizzle_scales(&lowp, &stream, &scales.view(), &mut sw).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "src", expected: "ScaleLayout::Swizzled", .. }), "{e}");
    // zero rows: nothing to do, no error
    let x0 = Matrix::<f32>::zeros(&stream, 0, 64).expect("x");
    let mut c0 = Matrix::<F8E4M3>::zeros(&stream, 0, 64).expect("codes");
    let mut s0 = Scales::<Ue8m0>::zeros(&stream, 0, 2, row_major(2)).expect("scales");
    mx::mxfp8_quantize(&lowp, &stream, &x0, ScaleRounding::Ceil, &mut c0, &mut s0).expect("empty");
    stream.synchronize().expect("sync");
}
