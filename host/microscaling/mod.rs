//! NVFP4 / MXFP4 / MXFP8 quantization with row-major or 128×4-swizzled block scales, grouped
//! (MoE) scale layouts, swizzle/unswizzle, dequantization and the tensor amax of the NVFP4 global
//! scale (device side: `kernels-gpu/src/microscaling/`). See `docs/kernels/microscaling.md`.
//!
//! ```text
//! NVFP4  16-element blocks, E4M3 block scale, global encode scale g (f32):
//!        scale = e4m3_sat((amax / 6) · g)        codes = e2m1_sat((x · g) / scale)
//! MXFP4  32-element blocks, UE8M0 scale 2^(⌊log2 amax⌋ − 2) (Floor, the OCP rule) or
//!        2^⌈log2(amax / 6)⌉ (Ceil):             codes = e2m1_sat(x / scale)
//! MXFP8  32-element blocks, UE8M0 scale 2^(⌊log2 amax⌋ − 8) (Floor) or 2^⌈log2(amax / 448)⌉
//!        (Ceil):                                 codes = e4m3_sat(x / scale)
//! ```
//!
//! Inputs are bf16, f16 or f32 `[M, K]` matrices with any row stride, `K` a multiple of the
//! block. Every output comes from the caller: codes in a `Matrix<F4E2M1x2>` with `K / 2` columns
//! (element `2i` in the low nibble) or a `Matrix<F8E4M3>` with `K` columns; scales in a
//! [`Scales`] of `[M, K / block]` ([`F8E4M3`] for NVFP4, [`Ue8m0`] for MX, so a wrong scale type
//! does not compile) whose [`ScaleLayout`](crate::ScaleLayout) says where they go:
//! `RowMajor { ld }`, `Swizzled` (the 128×4 tiles of block-scaled tensor-core GEMMs, padding
//! written as zeros) or, for the grouped quantizers, `GroupedSwizzled { groups }`. A layout an op
//! does not take is [`Error::Layout`](crate::Error::Layout). The grouped quantizers read their
//! `group_ends` on the device: an end out of range is clamped and sets [`ERR_GROUP_BOUNDS`] in the
//! optional [`ErrorFlag`] they take last. Every call only enqueues work on the caller's stream.
//!
//! ```
//! # fn main() -> lowp::Result<()> {
//! # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
//! use half::bf16;
//! use lowp::microscaling::{self as mx, GlobalScale};
//! use lowp::{F4E2M1x2, F8E4M3, Lowp, Matrix, ScaleLayout, Scales};
//! let lowp = Lowp::new(0)?;
//! let stream = lowp.new_stream()?;
//! let (m, k) = (4, 64);
//! let host: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 13) as f32 - 6.0)).collect();
//! let x = Matrix::from_host(&stream, &host, m, k)?;
//! // g = 448 · 6 / amax(x), computed and kept on the device
//! let mut g = stream.alloc_zeros::<f32>(1)?;
//! mx::nvfp4_global_scale(&lowp, &stream, &x, &mut g)?;
//! let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, m, k / 2)?;
//! let mut scales = Scales::<F8E4M3>::zeros(&stream, m, k / 16, ScaleLayout::Swizzled)?;
//! mx::nvfp4_quantize(&lowp, &stream, &x, &GlobalScale::Device(&g), &mut codes, &mut scales)?;
//! let mut y = Matrix::<bf16>::zeros(&stream, m, k)?;
//! mx::nvfp4_dequantize(&lowp, &stream, &codes, &scales, &GlobalScale::Device(&g), &mut y)?;
//! // small integers survive the round trip through E2M1 within one step of its grid
//! let y = y.to_host(&stream)?;
//! assert!(host.iter().zip(&y).all(|(a, b)| (a.to_f32() - b.to_f32()).abs() <= 1.0));
//! # Ok(()) }
//! ```

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut};
use half::bf16;

/// Error bit of [`ErrorFlag`] set by the grouped quantizers: a `group_ends` entry read on the
/// device was negative, past the rows of `x` or below the previous end, and was clamped to
/// `[previous end, M]`. Its value (4) is none of the other families' bits
/// ([`gemm::ERR_GROUP_BOUNDS`](crate::gemm::ERR_GROUP_BOUNDS),
/// [`qk_norm_rope::ERR_POSITION_OUT_OF_RANGE`](crate::qk_norm_rope::ERR_POSITION_OUT_OF_RANGE),
/// [`qk_norm_rope::ERR_SLOT_OUT_OF_RANGE`](crate::qk_norm_rope::ERR_SLOT_OUT_OF_RANGE)), so one
/// flag shared by a MoE layer's ops tells them apart.
pub use crate::abi::MX_ERR_GROUP_BOUNDS as ERR_GROUP_BOUNDS;
pub use crate::abi::{MX_BLOCK, MX_MAX_GROUPS, NVFP4_BLOCK};
use crate::abi::{MxAmaxParams, MxDequantizeParams, MxGlobalScaleParams, MxQuantizeParams, MxSwizzleParams};
use crate::context::Lowp;
use crate::dtype::{F4E2M1x2, F8E4M3, Float, Ue8m0};
use crate::error::Result;
use crate::flag::ErrorFlag;
use crate::matrix::Matrix;
use crate::matrix::Scales;
use crate::scale::ScaleRounding;

mod launch;
pub(crate) mod plan;
mod types;

pub use types::{GlobalScale, ScaleElement};

use plan::Format;

crate::abi::device_repr!(MxQuantizeParams, MxDequantizeParams, MxAmaxParams, MxGlobalScaleParams, MxSwizzleParams);

/// The software conversions `math` uses (`prim::soft` on the device).
use crate::reference::convert as soft;

/// The device's per-block arithmetic, compiled into the host for the unit tests and for
/// [`nvfp4_global_scale_from_amax`].
#[path = "../../kernels-gpu/src/microscaling/math.rs"]
#[allow(dead_code)]
pub(crate) mod math;

/// Kernel entry points of this family (`kernels-gpu/src/microscaling/mod.rs`).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "nvfp4_quantize_bf16",
    "nvfp4_quantize_f16",
    "nvfp4_quantize_f32",
    "nvfp4_quantize_grouped_bf16",
    "nvfp4_quantize_grouped_f16",
    "nvfp4_quantize_grouped_f32",
    "mxfp4_quantize_bf16",
    "mxfp4_quantize_f16",
    "mxfp4_quantize_f32",
    "mxfp4_quantize_grouped_bf16",
    "mxfp4_quantize_grouped_f16",
    "mxfp4_quantize_grouped_f32",
    "mxfp8_quantize_bf16",
    "mxfp8_quantize_f16",
    "mxfp8_quantize_f32",
    "mxfp8_quantize_grouped_bf16",
    "mxfp8_quantize_grouped_f16",
    "mxfp8_quantize_grouped_f32",
    "nvfp4_dequantize_bf16",
    "mxfp4_dequantize_bf16",
    "mxfp8_dequantize_bf16",
    "tensor_amax_bf16",
    "tensor_amax_f16",
    "tensor_amax_f32",
    "nvfp4_global_scale",
    "swizzle_scales",
    "unswizzle_scales",
];

/// The NVFP4 global encode scale for a tensor amax known on the host: `448 · 6 / amax` in f32;
/// 1 for amax 0, ±Inf or NaN; `f32::MAX` where the quotient overflows.
///
/// ```
/// use lowp::microscaling::nvfp4_global_scale_from_amax;
/// assert_eq!(nvfp4_global_scale_from_amax(12.0), 224.0);
/// assert_eq!(nvfp4_global_scale_from_amax(0.0), 1.0);
/// ```
pub fn nvfp4_global_scale_from_amax(amax: f32) -> f32 {
    math::nvfp4_global_scale(amax)
}

// ---------------------------------------------------------------------------------------------
// Quantize

/// NVFP4 quantization of `x` `[M, K]` (K a multiple of 16): packed E2M1 `codes` `[M, K / 2]` and
/// E4M3 `scales` `[M, K / 16]`, row-major or swizzled, with the global encode scale
/// `global_scale` (NVFP4 takes no [`ScaleRounding`]: its block scales are E4M3 values).
/// Asynchronous; nothing is synchronized.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling::{self as mx, GlobalScale};
/// use lowp::{F4E2M1x2, F8E4M3, Lowp, Matrix, ScaleLayout, Scales};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(3.0); m * k], m, k)?;
/// let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, m, k / 2)?;
/// let mut scales = Scales::<F8E4M3>::zeros(&stream, m, k / 16, ScaleLayout::Swizzled)?;
/// mx::nvfp4_quantize(&lowp, &stream, &x, &GlobalScale::Value(1.0), &mut codes, &mut scales)?;
/// // amax 3, g = 1: scale e4m3(3 / 6) = 0.5 (0x30), every value 3 / 0.5 = 6 (E2M1 code 7)
/// assert!(codes.to_host(&stream)?.iter().all(|c| c.0 == 0x77));
/// assert_eq!(scales.to_host_raw(&stream)?[0].to_bits(), 0x30);
/// # Ok(()) }
/// ```
pub fn nvfp4_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    global_scale: &GlobalScale<'_>,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut Scales<F8E4M3, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<F8E4M3>,
{
    let g = Some(global_scale);
    launch::quantize(lowp, stream, Format::Nvfp4, "nvfp4_quantize", x, g, ScaleRounding::Floor, codes, scales)
}

/// MXFP4 quantization of `x` `[M, K]` (K a multiple of 32): packed E2M1 `codes` `[M, K / 2]` and
/// UE8M0 `scales` `[M, K / 32]`, row-major or swizzled. `rounding`: `Floor` (the OCP rule) or
/// `Ceil` (no value saturates); `Exact` is `InvalidValue { arg: "rounding" }`. Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{F4E2M1x2, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(3.0); m * k], m, k)?;
/// let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, m, k / 2)?;
/// let mut scales = Scales::<Ue8m0>::zeros(&stream, m, k / 32, ScaleLayout::RowMajor { ld: k / 32 })?;
/// mx::mxfp4_quantize(&lowp, &stream, &x, ScaleRounding::Floor, &mut codes, &mut scales)?;
/// // scale 2^(⌊log2 3⌋ − 2) = 0.5 (UE8M0 126), every value 3 / 0.5 = 6 (code 7)
/// assert_eq!(scales.to_host_raw(&stream)?, vec![Ue8m0(126); m]);
/// assert!(codes.to_host(&stream)?.iter().all(|c| c.0 == 0x77));
/// # Ok(()) }
/// ```
pub fn mxfp4_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    rounding: ScaleRounding,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut Scales<Ue8m0, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<Ue8m0>,
{
    launch::quantize(lowp, stream, Format::Mxfp4, "mxfp4_quantize", x, None, rounding, codes, scales)
}

/// MXFP8 quantization of `x` `[M, K]` (K a multiple of 32): E4M3 `codes` `[M, K]` and UE8M0
/// `scales` `[M, K / 32]`, row-major or swizzled. `rounding`: `Floor` (OCP) or `Ceil`.
/// Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 64);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(3.0); m * k], m, k)?;
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
/// let mut scales = Scales::<Ue8m0>::zeros(&stream, m, k / 32, ScaleLayout::Swizzled)?;
/// mx::mxfp8_quantize(&lowp, &stream, &x, ScaleRounding::Ceil, &mut codes, &mut scales)?;
/// // scale 2^⌈log2(3 / 448)⌉ = 2^-7 (UE8M0 120), every value 3 · 2^7 = 384 (E4M3 0x7c)
/// assert!(codes.to_host(&stream)?.iter().all(|c| c.to_bits() == 0x7c));
/// assert_eq!(scales.to_host_raw(&stream)?[0], Ue8m0(120));
/// # Ok(()) }
/// ```
pub fn mxfp8_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    rounding: ScaleRounding,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut Scales<Ue8m0, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<Ue8m0>,
{
    launch::quantize(lowp, stream, Format::Mxfp8, "mxfp8_quantize", x, None, rounding, codes, scales)
}

// ---------------------------------------------------------------------------------------------
// Grouped quantize

/// NVFP4 quantization of the row groups of `x` (tokens sorted by expert), in one launch.
///
/// `group_ends` holds `E` cumulative row ends (group `g` is rows `[ends[g-1], ends[g])`,
/// `ends[-1] = 0`, like `torch._grouped_mm`'s `offs`), read on the device. `scales` are
/// `[M, K / 16]` in `ScaleLayout::GroupedSwizzled { groups: E }`: each group's scales go to its
/// own swizzled region of `pad128(size)` rows, regions back to back; the kernel writes each
/// region's first scale row, then the total, into `scale_offsets` (`E + 1` i32). Ends are clamped
/// on the device to `[previous end, M]`, so bad offsets never cause an out-of-bounds access, and a
/// clamp sets [`ERR_GROUP_BOUNDS`] in `error_flag` (when given); rows past the last end are not
/// quantized and the buffer past the last region is not written. Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling::{self as mx, GlobalScale};
/// use lowp::{ErrorFlag, F4E2M1x2, F8E4M3, Lowp, Matrix, ScaleLayout, Scales};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (3, 32);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(1.0); m * k], m, k)?;
/// let ends = stream.clone_htod(&[1i32, 3])?; // expert 0: row 0, expert 1: rows 1 and 2
/// let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, m, k / 2)?;
/// let layout = ScaleLayout::GroupedSwizzled { groups: 2 };
/// let mut scales = Scales::<F8E4M3>::zeros(&stream, m, k / 16, layout)?;
/// let mut offsets = stream.alloc_zeros::<i32>(3)?;
/// let g = GlobalScale::Value(1.0);
/// let mut flag = ErrorFlag::new(&stream)?;
/// mx::nvfp4_quantize_grouped(&lowp, &stream, &x, &ends, &g, &mut codes, &mut scales, &mut offsets, Some(&mut flag))?;
/// let got = stream.clone_dtoh(&offsets)?;
/// stream.synchronize()?; // the copy is asynchronous
/// assert_eq!(got, vec![0, 128, 256]); // one 128-row region per expert
/// assert_eq!(flag.read(&stream)?, 0); // every end was in range
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn nvfp4_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    global_scale: &GlobalScale<'_>,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut Scales<F8E4M3, S>,
    scale_offsets: &mut O,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<F8E4M3>,
    O: DevicePtrMut<i32>,
{
    let (fmt, op, g) = (Format::Nvfp4, "nvfp4_quantize_grouped", Some(global_scale));
    launch::quantize_grouped(
        lowp,
        stream,
        fmt,
        op,
        x,
        group_ends,
        g,
        ScaleRounding::Floor,
        codes,
        scales,
        scale_offsets,
        error_flag,
    )
}

/// MXFP4 quantization of row groups (the layout, the clamping and `error_flag` as in
/// [`nvfp4_quantize_grouped`]; `rounding` as in [`mxfp4_quantize`]). Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{F4E2M1x2, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (3, 32);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(3.0); m * k], m, k)?;
/// let ends = stream.clone_htod(&[0i32, 3])?; // expert 0 has no tokens
/// let mut codes = Matrix::<F4E2M1x2>::zeros(&stream, m, k / 2)?;
/// let layout = ScaleLayout::GroupedSwizzled { groups: 2 };
/// let mut scales = Scales::<Ue8m0>::zeros(&stream, m, k / 32, layout)?;
/// let mut offsets = stream.alloc_zeros::<i32>(3)?;
/// mx::mxfp4_quantize_grouped(&lowp, &stream, &x, &ends, ScaleRounding::Floor, &mut codes, &mut scales, &mut offsets, None)?;
/// let got = stream.clone_dtoh(&offsets)?;
/// stream.synchronize()?; // the copy is asynchronous
/// assert_eq!(got, vec![0, 0, 128]);
/// assert_eq!(scales.to_host_raw(&stream)?[0], Ue8m0(126)); // row 0 of expert 1's region
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mxfp4_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    rounding: ScaleRounding,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut Scales<Ue8m0, S>,
    scale_offsets: &mut O,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<Ue8m0>,
    O: DevicePtrMut<i32>,
{
    let (fmt, op) = (Format::Mxfp4, "mxfp4_quantize_grouped");
    launch::quantize_grouped(
        lowp,
        stream,
        fmt,
        op,
        x,
        group_ends,
        None,
        rounding,
        codes,
        scales,
        scale_offsets,
        error_flag,
    )
}

/// MXFP8 quantization of row groups (the layout, the clamping and `error_flag` as in
/// [`nvfp4_quantize_grouped`]; `rounding` as in [`mxfp8_quantize`]). Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{ErrorFlag, F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(3.0); m * k], m, k)?;
/// let ends = stream.clone_htod(&[5i32])?; // one expert, its end past the 2 rows of x
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
/// let layout = ScaleLayout::GroupedSwizzled { groups: 1 };
/// let mut scales = Scales::<Ue8m0>::zeros(&stream, m, k / 32, layout)?;
/// let mut offsets = stream.alloc_zeros::<i32>(2)?;
/// let mut flag = ErrorFlag::new(&stream)?;
/// mx::mxfp8_quantize_grouped(&lowp, &stream, &x, &ends, ScaleRounding::Floor, &mut codes, &mut scales, &mut offsets, Some(&mut flag))?;
/// // the end was clamped to 2 rows, and the flag says so
/// assert_eq!(flag.read(&stream)?, mx::ERR_GROUP_BOUNDS);
/// let got = stream.clone_dtoh(&offsets)?;
/// stream.synchronize()?; // the copy is asynchronous
/// assert_eq!(got, vec![0, 128]);
/// assert!(codes.to_host(&stream)?.iter().all(|c| c.to_bits() == 0x7c)); // 3 · 2^7 = 384
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn mxfp8_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    rounding: ScaleRounding,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut Scales<Ue8m0, S>,
    scale_offsets: &mut O,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<Ue8m0>,
    O: DevicePtrMut<i32>,
{
    let (fmt, op) = (Format::Mxfp8, "mxfp8_quantize_grouped");
    launch::quantize_grouped(
        lowp,
        stream,
        fmt,
        op,
        x,
        group_ends,
        None,
        rounding,
        codes,
        scales,
        scale_offsets,
        error_flag,
    )
}

// ---------------------------------------------------------------------------------------------
// Swizzle

/// Row-major `[rows, cols]` scales `src` (`ScaleLayout::RowMajor`) → the same scales in the
/// 128×4-swizzled layout in `dst` (`ScaleLayout::Swizzled`, same shape, 16-byte aligned; every
/// element of the layout is written, padding as zeros). Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use lowp::microscaling as mx;
/// use lowp::{Lowp, ScaleLayout, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let host: Vec<Ue8m0> = (0..6).map(|i| Ue8m0(120 + i)).collect(); // [3, 2]
/// let src = Scales::row_major(stream.clone_htod(&host)?, 3, 2)?;
/// let mut dst = Scales::<Ue8m0>::zeros(&stream, 3, 2, ScaleLayout::Swizzled)?;
/// mx::swizzle_scales(&lowp, &stream, &src, &mut dst)?;
/// let raw = dst.to_host_raw(&stream)?; // 128 × 4 elements: row r at (r % 32) · 16 + (r / 32) · 4
/// assert_eq!((raw[0], raw[1], raw[2], raw[16], raw[32]), (Ue8m0(120), Ue8m0(121), Ue8m0(0), Ue8m0(122), Ue8m0(124)));
/// # Ok(()) }
/// ```
pub fn swizzle_scales<S, B, D>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    src: &Scales<S, B>,
    dst: &mut Scales<S, D>,
) -> Result<()>
where
    S: ScaleElement,
    B: DevicePtr<S>,
    D: DevicePtrMut<S>,
{
    launch::swizzle(lowp, stream, src, dst, false)
}

/// Swizzled scales `src` (`ScaleLayout::Swizzled`) → the same `[rows, cols]` scales row-major in
/// `dst` (`ScaleLayout::RowMajor`, any `ld`; the padding of `src` is not read). Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use lowp::microscaling as mx;
/// use lowp::{F8E4M3, Lowp, ScaleLayout, Scales};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let host: Vec<F8E4M3> = (0..6).map(|i| F8E4M3::from_bits(0x30 + i)).collect(); // [3, 2]
/// let linear = Scales::row_major(stream.clone_htod(&host)?, 3, 2)?;
/// let mut swizzled = Scales::<F8E4M3>::zeros(&stream, 3, 2, ScaleLayout::Swizzled)?;
/// mx::swizzle_scales(&lowp, &stream, &linear, &mut swizzled)?;
/// let mut back = Scales::<F8E4M3>::zeros(&stream, 3, 2, ScaleLayout::RowMajor { ld: 2 })?;
/// mx::unswizzle_scales(&lowp, &stream, &swizzled, &mut back)?;
/// let bits = |v: Vec<F8E4M3>| v.iter().map(|s| s.to_bits()).collect::<Vec<_>>();
/// assert_eq!(bits(back.to_host_raw(&stream)?), bits(host));
/// # Ok(()) }
/// ```
pub fn unswizzle_scales<S, B, D>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    src: &Scales<S, B>,
    dst: &mut Scales<S, D>,
) -> Result<()>
where
    S: ScaleElement,
    B: DevicePtr<S>,
    D: DevicePtrMut<S>,
{
    launch::swizzle(lowp, stream, src, dst, true)
}

// ---------------------------------------------------------------------------------------------
// Dequantize

/// NVFP4 → bf16: `out[r, c] = bf16((value · scale) / g)` (f32 arithmetic, one rounding to bf16),
/// from `codes` `[M, K / 2]`, E4M3 `scales` `[M, K / 16]` (row-major or swizzled) and the global
/// scale they were quantized with, into `out` `[M, K]`. Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling::{self as mx, GlobalScale};
/// use lowp::{F4E2M1x2, F8E4M3, Lowp, Matrix, ScaleLayout, Scales};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// // every value 1.5 (E2M1 code 3), block scale 2.0 (E4M3 0x40), g = 0.5: 1.5 · 2 / 0.5 = 6
/// let codes = Matrix::from_host(&stream, &vec![F4E2M1x2(0x33); m * k / 2], m, k / 2)?;
/// let scales = Scales::row_major(stream.clone_htod(&vec![F8E4M3::from_bits(0x40); m * 2])?, m, 2)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, m, k)?;
/// mx::nvfp4_dequantize(&lowp, &stream, &codes, &scales, &GlobalScale::Value(0.5), &mut out)?;
/// assert!(out.to_host(&stream)?.iter().all(|v| v.to_f32() == 6.0));
/// # Ok(()) }
/// ```
pub fn nvfp4_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F4E2M1x2, C>,
    scales: &Scales<F8E4M3, S>,
    global_scale: &GlobalScale<'_>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F4E2M1x2>,
    S: DevicePtr<F8E4M3>,
    O: DevicePtrMut<bf16>,
{
    launch::dequantize(lowp, stream, Format::Nvfp4, "nvfp4_dequantize", codes, scales, Some(global_scale), out)
}

/// MXFP4 → bf16: `out = bf16(value · 2^(scale − 127))`; scale 0xff gives NaN. `codes`
/// `[M, K / 2]`, UE8M0 `scales` `[M, K / 32]` (row-major or swizzled), `out` `[M, K]`.
/// Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{F4E2M1x2, Lowp, Matrix, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// // code 0xb is −1.5, scale 2^(129 − 127) = 4: −6
/// let codes = Matrix::from_host(&stream, &vec![F4E2M1x2(0xbb); m * k / 2], m, k / 2)?;
/// let scales = Scales::row_major(stream.clone_htod(&vec![Ue8m0(129); m])?, m, 1)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, m, k)?;
/// mx::mxfp4_dequantize(&lowp, &stream, &codes, &scales, &mut out)?;
/// assert!(out.to_host(&stream)?.iter().all(|v| v.to_f32() == -6.0));
/// # Ok(()) }
/// ```
pub fn mxfp4_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F4E2M1x2, C>,
    scales: &Scales<Ue8m0, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F4E2M1x2>,
    S: DevicePtr<Ue8m0>,
    O: DevicePtrMut<bf16>,
{
    launch::dequantize(lowp, stream, Format::Mxfp4, "mxfp4_dequantize", codes, scales, None, out)
}

/// MXFP8 → bf16: `out = bf16(value · 2^(scale − 127))`; scale 0xff or a NaN code give NaN.
/// `codes` `[M, K]`, UE8M0 `scales` `[M, K / 32]` (row-major or swizzled), `out` `[M, K]`.
/// Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, Ue8m0};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 32);
/// let host: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 8) as f32 - 4.0)).collect();
/// let x = Matrix::from_host(&stream, &host, m, k)?;
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
/// let mut scales = Scales::<Ue8m0>::zeros(&stream, m, 1, ScaleLayout::Swizzled)?;
/// mx::mxfp8_quantize(&lowp, &stream, &x, ScaleRounding::Floor, &mut codes, &mut scales)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, m, k)?;
/// mx::mxfp8_dequantize(&lowp, &stream, &codes, &scales, &mut out)?;
/// // amax 4: scale 2^(2 − 8), codes x · 2^6, all exact in E4M3, so the round trip is exact
/// assert_eq!(out.to_host(&stream)?, host);
/// # Ok(()) }
/// ```
pub fn mxfp8_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F8E4M3, C>,
    scales: &Scales<Ue8m0, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F8E4M3>,
    S: DevicePtr<Ue8m0>,
    O: DevicePtrMut<bf16>,
{
    launch::dequantize(lowp, stream, Format::Mxfp8, "mxfp8_dequantize", codes, scales, None, out)
}

// ---------------------------------------------------------------------------------------------
// Tensor amax and the NVFP4 global scale

/// `max |x|` of the matrix into `amax` (one f32; NaN if any element is NaN): zeroes `amax` on
/// `stream`, then folds every warp's maximum in with an atomic max. Asynchronous.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use lowp::microscaling as mx;
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let x = Matrix::from_host(&stream, &[1.0f32, -7.5, 3.0, 2.0, 0.5, -1.0], 2, 3)?;
/// let mut amax = stream.alloc_zeros::<f32>(1)?;
/// mx::tensor_amax(&lowp, &stream, &x, &mut amax)?;
/// let got = stream.clone_dtoh(&amax)?;
/// stream.synchronize()?; // the copy is asynchronous
/// assert_eq!(got, vec![7.5]);
/// # Ok(()) }
/// ```
pub fn tensor_amax<T, X, A>(lowp: &Lowp, stream: &Arc<CudaStream>, x: &Matrix<T, X>, amax: &mut A) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    A: DevicePtrMut<f32>,
{
    launch::tensor_amax(lowp, stream, "tensor_amax", x, amax)
}

/// The NVFP4 global encode scale of `x` into `global_scale` (one f32), on the device:
/// [`tensor_amax`] into it, then `g = 448 · 6 / amax` in place (1 for amax 0, Inf or NaN;
/// `f32::MAX` where the quotient overflows). Pass it on as [`GlobalScale::Device`].
/// Asynchronous: no value comes back to the host.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use half::bf16;
/// use lowp::microscaling as mx;
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let host: Vec<bf16> = [1.0f32, -12.0, 3.0, 0.0].iter().map(|&v| bf16::from_f32(v)).collect();
/// let x = Matrix::from_host(&stream, &host, 2, 2)?;
/// let mut g = stream.alloc_zeros::<f32>(1)?;
/// mx::nvfp4_global_scale(&lowp, &stream, &x, &mut g)?;
/// let got = stream.clone_dtoh(&g)?;
/// stream.synchronize()?; // the copy is asynchronous
/// assert_eq!(got, vec![224.0]); // 448 · 6 / 12
/// # Ok(()) }
/// ```
pub fn nvfp4_global_scale<T, X, G>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    global_scale: &mut G,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    G: DevicePtrMut<f32>,
{
    launch::nvfp4_global_scale(lowp, stream, x, global_scale)
}

#[cfg(test)]
#[path = "../tests/microscaling_math.rs"]
mod math_tests;
