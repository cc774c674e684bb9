//! Grouped (MoE) matmul on Hopper, one launch for all experts, bf16 × bf16 (HGMMA) or blockwise
//! FP8 (QGMMA, the scales of [`crate::fp8`]); and the launcher every Hopper GEMM of lowp shares
//! (device side: `kernels-gpu/src/gemm.rs`).
//!
//! ```text
//! contiguous (prefill):  x [T, K], tokens sorted by expert; ends[g] = cumulative end row (i32,
//!                        torch._grouped_mm's `offs`); y[t] = x[t] · W[g]ᵀ for t in [ends[g-1], ends[g])
//! masked (decode, EP):   x [E · max_m, K]; counts[g] valid rows of slab g; rows past the count are
//!                        neither read into results nor written
//! W [E · N, K] (expert g's [N, K] rows at g · N), y [rows of x, N] bf16
//! ```
//! Group sizes are arbitrary (0, 1, not multiples of 128). Offsets are read on the device: no
//! host sync, capturable in a CUDA graph (after one call outside capture with the same `x` and
//! `w`, which writes their tensor maps to the device; otherwise [`Error::GraphCapture`]; see
//! `docs/kernels/fp8_gemm.md`). Offsets that decrease or pass the row count (counts
//! outside `[0, max_m]`) are clamped and set [`GEMM_ERR_GROUP_BOUNDS`] in the optional
//! [`ErrorFlag`]; nothing is ever read or written out of bounds. See `docs/kernels/grouped_gemm.md`.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaStream, CudaView, DevicePtr, DevicePtrMut, DeviceSlice, LaunchConfig, PushKernelArg};

pub use crate::abi::GEMM_ERR_GROUP_BOUNDS;
use crate::abi::{GEMM_BLOCK_K, GEMM_BLOCK_M, GEMM_BLOCK_N, GEMM_SMEM_BYTES, GEMM_THREADS, GemmParams};
use crate::context::Lowp;
use crate::dtype::{Element, F8E4M3};
use crate::error::{CudaResultExt, Error, Result};
use crate::flag::ErrorFlag;
use crate::fp8::ScaleLayout;
use crate::matrix::Matrix;
use crate::tma::Map2d;

crate::abi::device_repr!(GemmParams);

/// Kernel entry points of the Hopper GEMM family (sm_90a only).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &["fp8_blockwise_gemm", "bf16_gemm"];

const NEEDS: &str = "compute capability 9.0 (sm_90a: wgmma and TMA)";

/// How rows of `x` are assigned to experts.
pub enum GroupLayout<'a> {
    /// `ends[g]`: cumulative end row of expert g (i32, one per expert).
    Contiguous { ends: CudaView<'a, i32> },
    /// `x` holds `E` slabs of `max_m` rows; `counts[g]` (i32) valid rows of slab g.
    Masked { counts: CudaView<'a, i32>, max_m: usize },
}

/// A row-major operand: (address, bytes per row used, rows, row stride in bytes).
pub(crate) type ByteMatrix = (u64, usize, usize, usize);

/// Finds (or writes, outside capture) the tensor maps of A and B in the handle's map cache and
/// launches `f` persistently (one CTA per SM at most, `tiles` an upper bound of the output tiles).
#[allow(clippy::too_many_arguments)]
pub(crate) fn launch_gemm(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    f: &CudaFunction,
    mut p: GemmParams,
    a: ByteMatrix,
    b: ByteMatrix,
    tiles: u64,
) -> Result<()> {
    let (bk, bm, bn) = (GEMM_BLOCK_K, GEMM_BLOCK_M, GEMM_BLOCK_N);
    let map = |arg, m: ByteMatrix, box_rows| Map2d {
        arg,
        addr: m.0,
        inner: m.1 as u64,
        rows: m.2 as u64,
        stride: m.3 as u64,
        box_inner: bk,
        box_rows,
    };
    // Device memory that stays as it is for the context's life: a captured launch reads the same
    // maps at every replay (see `crate::tma`).
    p.tensor_maps = crate::tma::device_maps(lowp, stream, op, map("a", a, bm), map("b", b, bn))?;
    let cfg = LaunchConfig {
        grid_dim: (tiles.clamp(1, lowp.sm_count() as u64) as u32, 1, 1),
        block_dim: (GEMM_THREADS, 1, 1),
        shared_mem_bytes: GEMM_SMEM_BYTES,
    };
    let mut builder = stream.launch_builder(f);
    builder.arg(&p);
    // SAFETY: the caller's plan validated the shapes, alignments, scale extents, group tables and
    // overlaps of the live buffers whose addresses `p` holds, and the tensor maps describe exactly
    // A and B; the kernel runs with its launch bounds' thread count and the shared memory set on
    // the function when the module loaded.
    unsafe { builder.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// The shapes of a grouped call, for validation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupedShape {
    /// rows, k (elements), row stride (elements), address
    pub x: (usize, usize, usize, u64),
    pub w: (usize, usize, usize, u64),
    pub y: (usize, usize, usize, u64),
    pub n: usize,
    /// Bytes per element of x and w.
    pub elem: usize,
    pub groups_len: usize,
    pub max_m: Option<usize>,
}

/// Validates a grouped GEMM (pure); returns the number of experts.
pub(crate) fn grouped_plan(s: &GroupedShape) -> Result<usize> {
    let (xr, k, xs, xa) = s.x;
    let (wr, wk, ws, wa) = s.w;
    let (yr, yc, ys, ya) = s.y;
    let n = s.n;
    if n == 0 || wr % n != 0 || wr == 0 {
        return Err(Error::Shape { arg: "w", expected: format!("[E · N, K] rows with N = {n}, E >= 1"), actual: format!("{wr} rows") });
    }
    let experts = wr / n;
    let k_align = GEMM_BLOCK_K as usize / s.elem;
    if k == 0 || k % k_align != 0 {
        return Err(Error::Shape { arg: "x", expected: format!("K a positive multiple of {k_align}"), actual: format!("K = {k}") });
    }
    if wk != k {
        return Err(Error::Shape { arg: "w", expected: format!("K = {k} columns like x"), actual: format!("{wk} columns") });
    }
    if yr != xr || yc != n {
        return Err(Error::Shape { arg: "y", expected: format!("[{xr}, {n}]"), actual: format!("[{yr}, {yc}]") });
    }
    if s.groups_len != experts {
        return Err(Error::Shape { arg: "group offsets", expected: format!("{experts} entries (one per expert)"), actual: s.groups_len.to_string() });
    }
    if let Some(max_m) = s.max_m {
        if experts.checked_mul(max_m) != Some(xr) {
            return Err(Error::Shape { arg: "x", expected: format!("E · max_m = {experts} · {max_m} rows (masked layout)"), actual: format!("{xr} rows") });
        }
    }
    for (arg, v) in [("x", xr), ("w", wr), ("w", k)] {
        if v > i32::MAX as usize {
            return Err(Error::Shape { arg, expected: "dimensions below 2^31".into(), actual: v.to_string() });
        }
    }
    for (arg, addr, stride) in [("x", xa, xs), ("w", wa, ws)] {
        if addr % 16 != 0 {
            return Err(Error::Alignment { arg, required: 16, actual: addr });
        }
        if (stride * s.elem) % 16 != 0 {
            return Err(Error::Alignment { arg, required: 16, actual: (stride * s.elem) as u64 });
        }
    }
    if ya % 4 != 0 || ys % 2 != 0 {
        return Err(Error::Alignment { arg: "y", required: 4, actual: if ya % 4 != 0 { ya } else { (ys * 2) as u64 } });
    }
    if xr > 0 {
        let span = |rows: usize, cols: usize, stride: usize, addr: u64, e: usize| (addr, addr + (((rows - 1) * stride + cols) * e) as u64);
        let yb = span(yr, yc, ys, ya, 2);
        for (other, r) in [("x", span(xr, k, xs, xa, s.elem)), ("w", span(wr, k, ws, wa, s.elem))] {
            if yb.0 < r.1 && r.0 < yb.1 {
                return Err(Error::Aliasing { arg: "y", other });
            }
        }
    }
    Ok(experts)
}

/// The parameters every grouped call shares (no FP8 scales).
fn grouped_params(s: &GroupedShape, experts: usize, group_ends: u64, error_flag: u64) -> GemmParams {
    GemmParams {
        tensor_maps: 0,
        sa: 0,
        sa_row_stride: 0,
        sa_col_stride: 0,
        sb: 0,
        sb_stride: 0,
        sb_group_stride: 0,
        d: s.y.3,
        d_stride: s.y.2 as u64,
        group_ends,
        error_flag,
        rows: s.x.0 as u32,
        n: s.n as u32,
        k: s.x.1 as u32,
        groups: experts as u32,
        max_m: s.max_m.unwrap_or(0) as u32,
        group_m: 8,
    }
}

fn layout_parts<'a>(layout: &'a GroupLayout<'_>) -> (&'a CudaView<'a, i32>, Option<usize>) {
    match layout {
        GroupLayout::Contiguous { ends } => (ends, None),
        GroupLayout::Masked { counts, max_m } => (counts, Some(*max_m)),
    }
}

fn shape<T: Element, B: DeviceSlice<T>>(t: &Matrix<T, B>, addr: u64) -> (usize, usize, usize, u64) {
    (t.rows(), t.cols(), t.row_stride(), addr)
}

/// Upper bound of the output tiles of all groups.
fn tile_bound(rows: usize, experts: usize, n: usize, max_m: Option<usize>) -> u64 {
    let tiles_n = n.div_ceil(GEMM_BLOCK_N as usize) as u64;
    let tiles_m = match max_m {
        Some(m) => experts as u64 * m.div_ceil(GEMM_BLOCK_M as usize) as u64,
        None => rows.div_ceil(GEMM_BLOCK_M as usize) as u64 + experts as u64,
    };
    tiles_m * tiles_n
}

/// `y = x · W[g]ᵀ` per expert group, bf16 in and out, f32 accumulation (asynchronous on `stream`).
///
/// `x [rows, K]` and `w [E · N, K]` K-major with 16-byte aligned rows, K a multiple of 64;
/// `y [rows, N]` with an even row stride. Rows of `x` outside every group are not written.
#[allow(clippy::too_many_arguments)]
pub fn bf16_grouped_gemm<X, W, Y>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<half::bf16, X>,
    w: &Matrix<half::bf16, W>,
    n: usize,
    layout: &GroupLayout<'_>,
    y: &mut Matrix<half::bf16, Y>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<half::bf16>,
    W: DevicePtr<half::bf16>,
    Y: DevicePtrMut<half::bf16>,
{
    let f = lowp.function_with_smem("bf16_grouped_gemm", "bf16_gemm", NEEDS, crate::abi::GEMM_SMEM_BYTES)?;
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("y", y.buffer())?;
    let (offs, max_m) = layout_parts(layout);
    lowp.check_buffer("group offsets", offs)?;
    let (xa, _g1) = x.device_ptr(stream);
    let (wa, _g2) = w.device_ptr(stream);
    let (oa, _g3) = offs.device_ptr(stream);
    let ys = (y.rows(), y.cols(), y.row_stride());
    let (ya, _g4) = y.device_ptr_mut(stream);
    let s = GroupedShape { x: shape(x, xa), w: shape(w, wa), y: (ys.0, ys.1, ys.2, ya), n, elem: 2, groups_len: offs.len(), max_m };
    let experts = grouped_plan(&s)?;
    let (flag, _guard) = ErrorFlag::device_addr(error_flag, lowp, stream)?;
    let p = grouped_params(&s, experts, oa, flag);
    if x.rows() == 0 {
        return Ok(());
    }
    let e = 2;
    let a = (xa, x.cols() * e, x.rows(), x.row_stride() * e);
    let b = (wa, w.cols() * e, w.rows(), w.row_stride() * e);
    launch_gemm(lowp, stream, "bf16_grouped_gemm", &f, p, a, b, tile_bound(x.rows(), experts, n, max_m))
}

/// The grouped blockwise FP8 GEMM: per expert g,
/// `y[t] = Σ_k (x[t,k] · sx(t, k/128)) · (W[g][n,k] · sw[g][n/128, k/128])`, bf16 out.
///
/// `x [rows, K]` E4M3 with per-token-group scales `sx` in `sx_layout` (over all rows of x);
/// `w [E · N, K]` E4M3 with `sw [E · ⌈N/128⌉, K/128]` (expert g's blocks at rows g·⌈N/128⌉);
/// K a multiple of 128; other requirements as [`bf16_grouped_gemm`].
#[allow(clippy::too_many_arguments)]
pub fn fp8_grouped_gemm<X, SX, W, SW, Y>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    sx: &SX,
    sx_layout: ScaleLayout,
    w: &Matrix<F8E4M3, W>,
    sw: &Matrix<f32, SW>,
    n: usize,
    layout: &GroupLayout<'_>,
    y: &mut Matrix<half::bf16, Y>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    Y: DevicePtrMut<half::bf16>,
{
    let f = lowp.function_with_smem("fp8_grouped_gemm", "fp8_blockwise_gemm", NEEDS, crate::abi::GEMM_SMEM_BYTES)?;
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("sx", sx)?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("sw", sw.buffer())?;
    lowp.check_buffer("y", y.buffer())?;
    let (offs, max_m) = layout_parts(layout);
    lowp.check_buffer("group offsets", offs)?;
    let (xa, _g1) = x.device_ptr(stream);
    let (sxa, _g2) = sx.device_ptr(stream);
    let (wa, _g3) = w.device_ptr(stream);
    let (swa, _g4) = sw.device_ptr(stream);
    let (oa, _g5) = offs.device_ptr(stream);
    let ys = (y.rows(), y.cols(), y.row_stride());
    let (ya, _g6) = y.device_ptr_mut(stream);
    let s = GroupedShape { x: shape(x, xa), w: shape(w, wa), y: (ys.0, ys.1, ys.2, ya), n, elem: 1, groups_len: offs.len(), max_m };
    let experts = grouped_plan(&s)?;
    let (k, rows) = (x.cols(), x.rows());
    let kb = k / GEMM_BLOCK_K as usize;
    let nb = n.div_ceil(GEMM_BLOCK_N as usize);
    // Activation scales: the same layouts as the dense GEMM, over every row of x.
    let (sa_rs, sa_cs, sa_need) = match sx_layout {
        ScaleLayout::RowMajor => (kb, 1, rows * kb),
        ScaleLayout::MMajor { ld } => {
            if ld < rows {
                return Err(Error::Shape { arg: "sx", expected: format!("an M-major leading dimension >= rows = {rows}"), actual: ld.to_string() });
            }
            (1, ld, if rows == 0 { 0 } else { (kb - 1) * ld + rows })
        }
    };
    if sx.len() < sa_need {
        return Err(Error::BufferTooSmall { arg: "sx", required: sa_need, actual: sx.len() });
    }
    if sw.rows() != experts * nb || sw.cols() != kb {
        return Err(Error::Shape { arg: "sw", expected: format!("[E · ⌈N/128⌉, K/128] = [{}, {kb}]", experts * nb), actual: format!("[{}, {}]", sw.rows(), sw.cols()) });
    }
    let (flag, _guard) = ErrorFlag::device_addr(error_flag, lowp, stream)?;
    let p = GemmParams {
        sa: sxa,
        sa_row_stride: sa_rs as u64,
        sa_col_stride: sa_cs as u64,
        sb: swa,
        sb_stride: sw.row_stride() as u64,
        sb_group_stride: (nb * sw.row_stride()) as u64,
        ..grouped_params(&s, experts, oa, flag)
    };
    if rows == 0 {
        return Ok(());
    }
    let a = (xa, k, rows, x.row_stride());
    let b = (wa, k, w.rows(), w.row_stride());
    launch_gemm(lowp, stream, "fp8_grouped_gemm", &f, p, a, b, tile_bound(rows, experts, n, max_m))
}

#[cfg(test)]
#[path = "tests/grouped_gemm_plan.rs"]
mod tests;
