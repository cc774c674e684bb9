//! RMSNorm and fused residual-add + RMSNorm (device side: `kernels-gpu/src/rmsnorm.rs`).
//!
//! ```text
//! rmsnorm:      out = x / sqrt(mean(x², over the row) + eps) * weight
//! add_rmsnorm:  residual += x   (rounded to T, written back)
//!               out = residual / sqrt(mean(residual²) + eps) * weight
//! ```
//! bf16 or f16 in and out ([`Half`]), f32 arithmetic, one rounding per output. Any row count,
//! hidden sizes 1..=16384. The fast path needs `hidden % 8 == 0` and 16-byte aligned rows and
//! weight; other layouts run a slower scalar path (still correct). The fast path has three
//! kernels by hidden size: a warp per row up to 2048, a CTA per row holding 4 vectors per thread
//! up to 8192, 8 vectors per thread above. See `docs/kernels/rmsnorm.md`.
//!
//! Both ops follow lowp's argument order: inputs (`x`, `weight`), the one setting (`eps`), then
//! the outputs (`add_rmsnorm`'s `residual`, read and written in place, and `out`).

mod launch;
mod plan;

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};

use crate::context::Lowp;
use crate::dtype::Half;
use crate::error::Result;
use crate::matrix::Matrix;
use plan::{MatArg, plan};

/// Kernel entry points of this family (`kernels-gpu/src/rmsnorm.rs`).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "rmsnorm_bf16",
    "rmsnorm_f16",
    "add_rmsnorm_bf16",
    "add_rmsnorm_f16",
    "rmsnorm_v4_bf16",
    "rmsnorm_v4_f16",
    "add_rmsnorm_v4_bf16",
    "add_rmsnorm_v4_f16",
    "rmsnorm_warp_bf16",
    "rmsnorm_warp_f16",
    "add_rmsnorm_warp_bf16",
    "add_rmsnorm_warp_f16",
];

/// The validation view of a matrix (its address is filled in once the launch's guards are taken).
fn mat_arg<T: Half, B: DeviceSlice<T>>(name: &'static str, m: &Matrix<T, B>) -> MatArg {
    MatArg { name, rows: m.rows(), cols: m.cols(), stride: m.row_stride(), addr: 0, elem: std::mem::size_of::<T>() }
}

/// `out = x / sqrt(mean(x²) + eps) * weight`, row by row, on `stream` (asynchronous; nothing is
/// synchronized).
///
/// - `x`: `[rows, hidden]`, any row stride, hidden in 1..=16384; zero rows is a no-op.
/// - `weight`: `hidden` elements on the device (a `CudaSlice<T>`, a view, ...).
/// - `eps`: finite and >= 0.
/// - `out`: `[rows, hidden]` like `x`, any row stride; it must not overlap `x` or `weight`.
///
/// Each output is computed in f32 and rounded once to `T` (within one ulp of the exact value).
///
/// Errors: `Shape` (`x`, `weight`, `out`), `InvalidValue` (`eps`), `Aliasing` (`out` with `x` or
/// `weight`), `DeviceMismatch` (`stream`, `x`, `weight`, `out`).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use half::bf16;
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (rows, hidden) = (2, 64);
/// let x = Matrix::from_host(&stream, &vec![bf16::from_f32(-3.0); rows * hidden], rows, hidden)?;
/// let weight = stream.clone_htod(&vec![bf16::from_f32(0.5); hidden])?;
/// let mut out = Matrix::<bf16>::zeros(&stream, rows, hidden)?;
/// lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &weight, 1e-6, &mut out)?;
/// // a constant row normalizes to its sign, times the weight
/// assert!(out.to_host(&stream)?.iter().all(|&y| y == bf16::from_f32(-0.5)));
/// # Ok(()) }
/// ```
pub fn rmsnorm<T, X, W, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    weight: &W,
    eps: f32,
    out: &mut Matrix<T, O>,
) -> Result<()>
where
    T: Half,
    X: DevicePtr<T>,
    W: DevicePtr<T>,
    O: DevicePtrMut<T>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("weight", weight)?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut xm, mut om) = (mat_arg("x", x), mat_arg("out", out));
    let (xa, _gx) = x.device_ptr(stream);
    let (wa, _gw) = weight.device_ptr(stream);
    let (oa, _go) = out.device_ptr_mut(stream);
    (xm.addr, om.addr) = (xa, oa);
    let params = plan(xm, weight.len(), wa, eps, None, om)?;
    launch::launch(lowp, stream, "rmsnorm", T::SUFFIX, &params)
}

/// `residual += x; out = rmsnorm(residual) * weight` on `stream` (asynchronous): the residual
/// stream of a transformer block, updated in place, and its normalization for the next layer.
///
/// - `x`: `[rows, hidden]`, any row stride, hidden in 1..=16384; zero rows is a no-op.
/// - `weight`: `hidden` elements on the device.
/// - `eps`: finite and >= 0.
/// - `residual`: `[rows, hidden]`, read and written: each element becomes `residual + x`, rounded
///   once to `T`, and the norm is taken of that stored value (so `out` equals [`rmsnorm`] of the
///   updated residual).
/// - `out`: `[rows, hidden]`.
///
/// `residual` and `out` must not overlap each other, `x` or `weight`.
///
/// Errors: `Shape` (`x`, `weight`, `residual`, `out`), `InvalidValue` (`eps`), `Aliasing`
/// (`residual` or `out` with another argument), `DeviceMismatch` (`stream` or any buffer).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use half::f16;
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let (rows, hidden) = (2, 64);
/// let x = Matrix::from_host(&stream, &vec![f16::from_f32(1.0); rows * hidden], rows, hidden)?;
/// let weight = stream.clone_htod(&vec![f16::from_f32(2.0); hidden])?;
/// let mut residual = Matrix::from_host(&stream, &vec![f16::from_f32(2.0); rows * hidden], rows, hidden)?;
/// let mut out = Matrix::<f16>::zeros(&stream, rows, hidden)?;
/// lowp::rmsnorm::add_rmsnorm(&lowp, &stream, &x, &weight, 1e-6, &mut residual, &mut out)?;
/// assert!(residual.to_host(&stream)?.iter().all(|&r| r == f16::from_f32(3.0)));
/// assert!(out.to_host(&stream)?.iter().all(|&y| y == f16::from_f32(2.0)));
/// # Ok(()) }
/// ```
pub fn add_rmsnorm<T, X, W, R, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    weight: &W,
    eps: f32,
    residual: &mut Matrix<T, R>,
    out: &mut Matrix<T, O>,
) -> Result<()>
where
    T: Half,
    X: DevicePtr<T>,
    W: DevicePtr<T>,
    R: DevicePtrMut<T>,
    O: DevicePtrMut<T>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("weight", weight)?;
    lowp.check_buffer("residual", residual.buffer())?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut xm, mut rm, mut om) = (mat_arg("x", x), mat_arg("residual", residual), mat_arg("out", out));
    let (xa, _gx) = x.device_ptr(stream);
    let (wa, _gw) = weight.device_ptr(stream);
    let (ra, _gr) = residual.device_ptr_mut(stream);
    let (oa, _go) = out.device_ptr_mut(stream);
    (xm.addr, rm.addr, om.addr) = (xa, ra, oa);
    let params = plan(xm, weight.len(), wa, eps, Some(rm), om)?;
    launch::launch(lowp, stream, "add_rmsnorm", T::SUFFIX, &params)
}

#[cfg(test)]
#[path = "../tests/rmsnorm_plan.rs"]
mod tests;
