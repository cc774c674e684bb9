//! Blockwise FP8 (E4M3) quantization for the DeepSeek-V3 recipe (device side:
//! `kernels-gpu/src/fp8/`): the quantizers that feed the blockwise FP8 GEMM
//! ([`crate::gemm::blockwise_fp8`]), and dequantization.
//!
//! ```text
//! activations  x [M, K]  → codes [M, K] e4m3 + scales [M, K/128]: one f32 per (token, 128 columns)
//! weights      w [N, K]  → codes [N, K] e4m3 + scales [⌈N/128⌉, K/128]: one f32 per 128×128 block
//! x ≈ code · scale,  scale = max(amax, 1e-4) / 448             (ScaleRounding::Exact)
//!                    or that rounded up to a power of two       (ScaleRounding::Ceil: UE8M0)
//! ```
//! The scales are a [`Scales`] whose layout is part of the argument: per-token-group scales are
//! written straight into the layout the GEMM reads, [`ScaleLayout::RowMajor`] or
//! [`ScaleLayout::MMajor`] (`scale(m, g)` at `g · ld + m`, what cuBLAS and DeepGEMM consume;
//! [`m_major_ld`](crate::m_major_ld) gives the TMA-friendly `ld`); per-block scales are
//! row-major. Any other layout is [`Error::Layout`](crate::Error::Layout), `ScaleRounding::Floor`
//! is [`Error::InvalidValue`](crate::Error::InvalidValue). See `docs/kernels/fp8.md`.

mod launch;
pub(crate) mod plan;

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};
use half::bf16;

use crate::context::Lowp;
use crate::dtype::{Element, F8E4M3, Float};
use crate::error::Result;
use crate::matrix::Matrix;
use crate::matrix::Scales;
#[cfg(doc)]
use crate::scale::ScaleLayout;
use crate::scale::ScaleRounding;
use plan::{Operand, ScaleInput, plan, plan_dequantize};

/// Kernel entry points of this family.
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "fp8_quantize_group_bf16",
    "fp8_quantize_group_f16",
    "fp8_quantize_group_f32",
    "fp8_quantize_block_bf16",
    "fp8_quantize_block_f16",
    "fp8_quantize_block_f32",
    "fp8_dequantize_bf16",
];

/// Elements along K that share a scale (and rows of a weight block): 128.
pub const GROUP: usize = crate::abi::FP8_GROUP as usize;

fn operand<T: Element, B: DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>) -> Operand {
    Operand { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr: 0, elem: std::mem::size_of::<T>() }
}

fn scale_input<B: DeviceSlice<f32>>(s: &Scales<f32, B>, addr: u64) -> ScaleInput {
    ScaleInput { layout: s.layout(), shape: s.shape(), addr, len: s.buffer().len() }
}

/// Quantizes activations `x [M, K]` per token in groups of 1×128 along K (asynchronous on
/// `stream`): `codes [M, K]` E4M3 and one f32 scale per group into `scales`.
///
/// - `rounding`: [`ScaleRounding::Exact`] (`max(amax, 1e-4) / 448`) or [`ScaleRounding::Ceil`]
///   (that value rounded up to a power of two: the UE8M0 recipe, whose scales are representable
///   in E8M0 and lose nothing to their own rounding); `Floor` is `Error::InvalidValue`.
/// - `scales`: `[M, K/128]` in [`ScaleLayout::RowMajor`] or [`ScaleLayout::MMajor`] (any `ld`;
///   the padding of an M-major `ld` past M is not written); another layout is `Error::Layout`.
///
/// K must be a multiple of 128; any M; `x` bf16, f16 or f32 with any row stride (16-byte aligned
/// rows take the vectorized path). Codes and scales match `lowp::reference::fp8` bit for bit.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, fp8, m_major_ld};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (4, 256);
/// let host: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 13) as f32 - 6.0)).collect();
/// let x = Matrix::from_host(&stream, &host, m, k)?;
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
/// let layout = ScaleLayout::MMajor { ld: m_major_ld(m) }; // what the GEMM reads fastest
/// let mut scales = Scales::<f32>::zeros(&stream, m, k / fp8::GROUP, layout)?;
/// fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Exact, &mut codes, &mut scales)?;
/// let s = scales.to_host_raw(&stream)?; // M-major: scale (m, g) at g · ld + m
/// assert_eq!(s[0], 6.0 / 448.0); // row 0's first group holds -6 ..= 6
/// # Ok(()) }
/// ```
pub fn quantize_per_token_group<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    rounding: ScaleRounding,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut Scales<f32, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<f32>,
{
    quantize(lowp, stream, "quantize_per_token_group", ("x", x), rounding, codes, scales, 1)
}

/// Quantizes weights `w [N, K]` per 128×128 block (asynchronous on `stream`): `codes [N, K]`
/// E4M3 and one f32 scale per block into `scales [⌈N/128⌉, K/128]`, [`ScaleLayout::RowMajor`]
/// with any `ld` (another layout is `Error::Layout`). The last row of blocks takes the rows that
/// remain (N need not be a multiple of 128).
///
/// `rounding` as [`quantize_per_token_group`]; K a multiple of 128; `w` bf16, f16 or f32 with
/// any row stride.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleRounding, Scales, fp8};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (n, k) = (128, 256);
/// let host: Vec<bf16> = (0..n * k).map(|i| bf16::from_f32(if i % k < 128 { 3.0 } else { 0.5 })).collect();
/// let w = Matrix::from_host(&stream, &host, n, k)?;
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, n, k)?;
/// let buf = stream.alloc_zeros::<f32>(n.div_ceil(128) * (k / 128))?;
/// let mut scales = Scales::row_major(buf, n.div_ceil(128), k / 128)?; // [1, 2]
/// fp8::quantize_per_block(&lowp, &stream, &w, ScaleRounding::Ceil, &mut codes, &mut scales)?;
/// // UE8M0: powers of two at or above amax / 448
/// assert_eq!(scales.to_host_raw(&stream)?, vec![2f32.powi(-7), 2f32.powi(-9)]);
/// # Ok(()) }
/// ```
pub fn quantize_per_block<T, W, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    w: &Matrix<T, W>,
    rounding: ScaleRounding,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut Scales<f32, S>,
) -> Result<()>
where
    T: Float,
    W: DevicePtr<T>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<f32>,
{
    quantize(lowp, stream, "quantize_per_block", ("w", w), rounding, codes, scales, GROUP)
}

/// `out = code · scale` in bf16 with per-token-group scales (the inverse of
/// [`quantize_per_token_group`], up to the rounding of the values), asynchronous on `stream`.
///
/// `codes [M, K]`, `scales [M, K/128]` in [`ScaleLayout::RowMajor`] or [`ScaleLayout::MMajor`]
/// (another layout is `Error::Layout`), `out [M, K]`; K a multiple of 128.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, fp8};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (m, k) = (2, 128);
/// let host: Vec<bf16> = (0..m * k).map(|i| bf16::from_f32((i % 9) as f32 * 0.25)).collect();
/// let x = Matrix::from_host(&stream, &host, m, k)?;
/// let mut codes = Matrix::<F8E4M3>::zeros(&stream, m, k)?;
/// let mut scales = Scales::<f32>::zeros(&stream, m, k / 128, ScaleLayout::RowMajor { ld: k / 128 })?;
/// fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Ceil, &mut codes, &mut scales)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, m, k)?;
/// fp8::dequantize_per_token_group(&lowp, &stream, &codes, &scales, &mut out)?;
/// assert_eq!(out.to_host(&stream)?, host); // quarters up to 2 are exact in E4M3
/// # Ok(()) }
/// ```
pub fn dequantize_per_token_group<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F8E4M3, C>,
    scales: &Scales<f32, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F8E4M3>,
    S: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    dequantize(lowp, stream, "dequantize_per_token_group", codes, scales, out, 1)
}

/// `out = code · scale` in bf16 with per-128×128-block scales (the inverse of
/// [`quantize_per_block`], up to the rounding of the values), asynchronous on `stream`.
///
/// `codes [N, K]`, `scales [⌈N/128⌉, K/128]` in [`ScaleLayout::RowMajor`] (another layout is
/// `Error::Layout`), `out [N, K]`; K a multiple of 128.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{F8E4M3, Lowp, Matrix, Scales, fp8};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (n, k) = (130, 128); // two rows of blocks, the second of 2 rows
/// let one = F8E4M3::from_bits(0x38); // 1.0
/// let codes = Matrix::from_host(&stream, &vec![one; n * k], n, k)?;
/// let scales = Scales::row_major(stream.clone_htod(&[0.5f32, 4.0])?, 2, 1)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, n, k)?;
/// fp8::dequantize_per_block(&lowp, &stream, &codes, &scales, &mut out)?;
/// let y = out.to_host(&stream)?;
/// assert_eq!((y[0].to_f32(), y[129 * k].to_f32()), (0.5, 4.0));
/// # Ok(()) }
/// ```
pub fn dequantize_per_block<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F8E4M3, C>,
    scales: &Scales<f32, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F8E4M3>,
    S: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    dequantize(lowp, stream, "dequantize_per_block", codes, scales, out, GROUP)
}

/// One quantize call: checks, plans (`block_rows` 1 for 1×128 groups, [`GROUP`] for 128×128
/// blocks) and launches, the buffers' stream guards held until the launch is enqueued.
fn quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    (name, x): (&'static str, &Matrix<T, X>),
    rounding: ScaleRounding,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut Scales<f32, S>,
    block_rows: usize,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<f32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer(name, x.buffer())?;
    lowp.check_buffer("codes", codes.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    let (mut xo, mut co) = (operand(name, x), operand("codes", codes));
    let sin = scale_input(scales, 0);
    let (xa, _g1) = x.device_ptr(stream);
    let (ca, _g2) = codes.device_ptr_mut(stream);
    let (sa, _g3) = scales.device_ptr_mut(stream);
    (xo.addr, co.addr) = (xa, ca);
    let p = plan(xo, co, ScaleInput { addr: sa, ..sin }, block_rows, rounding)?;
    if block_rows == 1 {
        launch::quantize_groups(lowp, stream, op, T::SUFFIX, &p)
    } else {
        launch::quantize_blocks(lowp, stream, op, T::SUFFIX, &p)
    }
}

/// One dequantize call, as [`quantize`].
fn dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    codes: &Matrix<F8E4M3, C>,
    scales: &Scales<f32, S>,
    out: &mut Matrix<bf16, O>,
    block_rows: usize,
) -> Result<()>
where
    C: DevicePtr<F8E4M3>,
    S: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("codes", codes.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut co, mut oo) = (operand("codes", codes), operand("out", out));
    let sin = scale_input(scales, 0);
    let (ca, _g1) = codes.device_ptr(stream);
    let (sa, _g2) = scales.device_ptr(stream);
    let (oa, _g3) = out.device_ptr_mut(stream);
    (co.addr, oo.addr) = (ca, oa);
    let p = plan_dequantize(oo, co, ScaleInput { addr: sa, ..sin }, block_rows)?;
    launch::dequantize(lowp, stream, op, &p)
}

#[cfg(test)]
#[path = "../tests/fp8_plan.rs"]
mod tests;
