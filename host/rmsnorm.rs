//! RMSNorm and fused residual-add + RMSNorm (device side: `kernels-gpu/src/rmsnorm.rs`).
//!
//! ```text
//! rmsnorm:      out = x / sqrt(mean(x², over the row) + eps) * weight
//! add_rmsnorm:  residual += x   (rounded to T, written back)
//!               out = residual / sqrt(mean(residual²) + eps) * weight
//! ```
//! bf16 or f16 in and out, f32 arithmetic, one rounding per output. Any row count, hidden sizes
//! 1..=16384. The fast path needs `hidden % 8 == 0` and 16-byte aligned rows and weight; other
//! layouts run a slower scalar path (still correct). The fast path has three kernels by hidden
//! size (`Variant`): a warp per row up to 2048, a CTA per row holding 4 vectors per thread up to
//! 8192, 8 vectors per thread above. See `docs/kernels/rmsnorm.md`.

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use crate::abi::{
    RMSNORM_MAX_HIDDEN, RMSNORM_ROWS_PER_WARP_CTA, RMSNORM_SMEM_BYTES, RMSNORM_THREADS, RMSNORM_V4_MAX_HIDDEN,
    RMSNORM_WARP_MAX_HIDDEN, RmsNormParams,
};
use crate::context::Lowp;
use crate::dtype::Half;
use crate::error::{CudaResultExt, Error, Result};
use crate::matrix::Matrix;

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

/// Which kernel runs a validated call (`plan`'s parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Variant {
    /// A warp per row, 8 rows per CTA (vector path, hidden ≤ 2048).
    Warp,
    /// A CTA per row, at most 4 vectors per thread, the weight held (vector path, hidden ≤ 8192).
    V4,
    /// A CTA per row, at most 8 vectors per thread (vector path), or the scalar path.
    General,
}

impl Variant {
    pub(crate) fn of(p: &RmsNormParams) -> Variant {
        match p.hidden {
            _ if p.vectorized == 0 => Variant::General,
            h if h <= RMSNORM_WARP_MAX_HIDDEN => Variant::Warp,
            h if h <= RMSNORM_V4_MAX_HIDDEN => Variant::V4,
            _ => Variant::General,
        }
    }

    /// The entry point: `{op}{infix}_{dtype}`.
    fn kernel(self, op: &str, suffix: &str) -> String {
        let infix = match self {
            Variant::Warp => "_warp",
            Variant::V4 => "_v4",
            Variant::General => "",
        };
        format!("{op}{infix}_{suffix}")
    }
}

/// A matrix argument for validation (`validate::Operand`, 2-byte elements).
pub(crate) use crate::validate::Operand as MatArg;
use crate::validate::disjoint;

/// Checks every argument and fills the kernel parameters (pure: unit-tested without a GPU).
pub(crate) fn plan(
    x: MatArg,
    residual: Option<MatArg>,
    out: MatArg,
    weight_len: usize,
    weight_addr: u64,
    eps: f32,
) -> Result<RmsNormParams> {
    const ELEM: usize = 2;
    let hidden = x.cols;
    if hidden == 0 || hidden > RMSNORM_MAX_HIDDEN as usize {
        return Err(Error::Shape {
            arg: "x",
            expected: format!("hidden size (columns) in 1..={RMSNORM_MAX_HIDDEN}"),
            actual: hidden.to_string(),
        });
    }
    if x.rows > u32::MAX as usize {
        return Err(Error::Shape { arg: "x", expected: format!("at most {} rows", u32::MAX), actual: x.rows.to_string() });
    }
    for m in residual.iter().chain(std::iter::once(&out)) {
        if m.rows != x.rows || m.cols != x.cols {
            return Err(Error::Shape {
                arg: m.name,
                expected: format!("[{}, {}] like x", x.rows, x.cols),
                actual: format!("[{}, {}]", m.rows, m.cols),
            });
        }
    }
    if weight_len != hidden {
        return Err(Error::Shape {
            arg: "weight",
            expected: format!("{hidden} elements (the hidden size)"),
            actual: format!("{weight_len} elements"),
        });
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(Error::InvalidValue { arg: "eps", expected: "a finite value >= 0", actual: eps.to_string() });
    }
    if x.rows > 0 {
        // x and weight are read through the non-coherent path: nothing the kernel writes may
        // overlap them, and the two outputs may not overlap each other.
        let weight = MatArg { name: "weight", rows: 1, cols: weight_len, stride: weight_len, addr: weight_addr, elem: ELEM };
        for written in residual.iter().chain(std::iter::once(&out)) {
            disjoint(written, &x)?;
            disjoint(written, &weight)?;
        }
        if let Some(r) = &residual {
            disjoint(&out, r)?;
        }
    }
    let aligned = |m: &MatArg| m.aligned(16);
    let vectorized = hidden % 8 == 0
        && weight_addr % 16 == 0
        && aligned(&x)
        && aligned(&out)
        && residual.as_ref().is_none_or(aligned);
    Ok(RmsNormParams {
        x: x.addr,
        residual: residual.map_or(0, |r| r.addr),
        weight: weight_addr,
        out: out.addr,
        x_stride: x.stride as u64,
        residual_stride: residual.map_or(0, |r| r.stride as u64),
        out_stride: out.stride as u64,
        rows: x.rows as u32,
        hidden: hidden as u32,
        eps,
        vectorized: vectorized as u32,
    })
}

fn mat_arg<T: Half, B: cudarc::driver::DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>) -> MatArg {
    MatArg { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr: 0, elem: std::mem::size_of::<T>() }
}

/// Launches `op` (`rmsnorm` or `add_rmsnorm`) for dtype `suffix` with the kernel `Variant::of`
/// picks: the general kernel one CTA per row; the persistent ones as many CTAs as fit at once
/// (`Lowp::grid_stride_grid`), fewer when the rows need fewer.
fn launch(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, suffix: &str, p: &RmsNormParams) -> Result<()> {
    let variant = Variant::of(p);
    let kernel = variant.kernel(op, suffix);
    let f = lowp.function(op, &kernel, "compute capability 8.0")?;
    if p.rows == 0 {
        return Ok(());
    }
    let rows = p.rows as u64;
    let grid = match variant {
        Variant::Warp => lowp.grid_stride_grid(&kernel, RMSNORM_THREADS, 0, rows, RMSNORM_ROWS_PER_WARP_CTA as u64)?,
        Variant::V4 => lowp.grid_stride_grid(&kernel, RMSNORM_THREADS, RMSNORM_SMEM_BYTES, rows, 1)?,
        Variant::General => p.rows.min(i32::MAX as u32),
    };
    let cfg = LaunchConfig {
        grid_dim: (grid, 1, 1),
        block_dim: (RMSNORM_THREADS, 1, 1),
        shared_mem_bytes: if variant == Variant::Warp { 0 } else { RMSNORM_SMEM_BYTES },
    };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `p` was built by `plan` from live buffers whose spans cover rows × hidden with the
    // given strides, on this handle's context; the kernel reads/writes only inside them, with the
    // block size and shared memory given here (the kernel's launch contract), and `Variant::of`
    // only picks a vector-only kernel for a vectorized call within its hidden size.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// `out = rmsnorm(x) * weight` on `stream` (asynchronous; nothing is synchronized).
///
/// `x`, `out`: `[rows, hidden]` with any row strides, hidden in 1..=16384; `weight`: `hidden`
/// elements; `eps` finite and >= 0.
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
    let params = plan(xm, None, om, weight.len(), wa, eps)?;
    launch(lowp, stream, "rmsnorm", T::SUFFIX, &params)
}

/// `residual += x; out = rmsnorm(residual) * weight` on `stream` (asynchronous).
///
/// The residual is updated in place (each sum rounded to `T`) and the norm is taken of that
/// stored value. Shapes as in [`rmsnorm`]; `residual` is `[rows, hidden]` too.
pub fn add_rmsnorm<T, X, R, W, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    residual: &mut Matrix<T, R>,
    weight: &W,
    eps: f32,
    out: &mut Matrix<T, O>,
) -> Result<()>
where
    T: Half,
    X: DevicePtr<T>,
    R: DevicePtrMut<T>,
    W: DevicePtr<T>,
    O: DevicePtrMut<T>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("residual", residual.buffer())?;
    lowp.check_buffer("weight", weight)?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut xm, mut rm, mut om) = (mat_arg("x", x), mat_arg("residual", residual), mat_arg("out", out));
    let (xa, _gx) = x.device_ptr(stream);
    let (wa, _gw) = weight.device_ptr(stream);
    let (ra, _gr) = residual.device_ptr_mut(stream);
    let (oa, _go) = out.device_ptr_mut(stream);
    (xm.addr, rm.addr, om.addr) = (xa, ra, oa);
    let params = plan(xm, Some(rm), om, weight.len(), wa, eps)?;
    launch(lowp, stream, "add_rmsnorm", T::SUFFIX, &params)
}

#[cfg(test)]
#[path = "tests/rmsnorm_plan.rs"]
mod tests;
