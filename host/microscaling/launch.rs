//! Launching the microscaling kernels: device addresses of the arguments (with cudarc's
//! stream-ordering guards held across the launch), the plan, the grid, the launch.

use std::sync::Arc;

use cudarc::driver::{
    CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, DeviceSlice, LaunchConfig, PushKernelArg, SyncOnDrop,
};
use half::bf16;

use super::math;
use super::plan::{
    Buf, Format, GArg, GroupArgs, Mat, ScaleArg, plan_amax, plan_dequantize, plan_quantize, plan_swizzle,
};
use super::types::{GlobalScale, ScaleElement};
use crate::abi::{MX_FLAG_SWIZZLED, MX_MAX_GROUPS, MX_THREADS, MxGlobalScaleParams, mx_grouped_smem_bytes};
use crate::context::Lowp;
use crate::dtype::{Element, Float};
use crate::error::{CudaResultExt, Result};
use crate::flag::ErrorFlag;
use crate::matrix::Matrix;
use crate::matrix::Scales;
use crate::scale::ScaleRounding;

/// The capability every microscaling kernel needs.
const NEEDS: &str = "compute capability 8.0";

/// 8-element chunks one thread of a quantize kernel takes per turn.
const CHUNKS_PER_THREAD: u64 = 2;

fn mat<T: Element, B: DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>, addr: u64) -> Mat {
    Mat { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr, elem: std::mem::size_of::<T>() }
}

fn buf<T>(name: &'static str, addr: u64, len: usize) -> Buf {
    Buf { name, addr, len, elem: std::mem::size_of::<T>() }
}

fn scale_arg<S: Element, B: DeviceSlice<S>>(name: &'static str, s: &Scales<S, B>, addr: u64) -> ScaleArg {
    ScaleArg { buf: buf::<S>(name, addr, s.buffer().len()), rows: s.rows(), cols: s.cols(), layout: s.layout() }
}

/// Grid of a grid-stride launch of `name` over `items` thread items (one item per thread and
/// turn): see `Lowp::grid_stride_grid`.
fn grid_for(lowp: &Lowp, name: &str, items: u64) -> Result<u32> {
    lowp.grid_stride_grid(name, MX_THREADS, 0, items, MX_THREADS as u64)
}

/// Grid of a quantize launch over a `[rows, blocks · block]` matrix: one item per 8-element chunk,
/// `CHUNKS_PER_THREAD` per thread and turn; `smem`: the dynamic shared memory the occupancy is
/// asked for (the kernel's most, since the figure is kept per kernel).
fn grid_for_chunks(lowp: &Lowp, name: &str, fmt: Format, rows: u64, blocks: u32, smem: u32) -> Result<u32> {
    let chunks = rows * blocks as u64 * (fmt.block() / 8) as u64;
    lowp.grid_stride_grid(name, MX_THREADS, smem, chunks, MX_THREADS as u64 * CHUNKS_PER_THREAD)
}

/// Enqueues `name` with one parameter struct.
fn launch<P: DeviceRepr>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    name: &str,
    grid: u32,
    smem: u32,
    p: &P,
) -> Result<()> {
    let f = lowp.function(op, name, NEEDS)?;
    let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (MX_THREADS, 1, 1), shared_mem_bytes: smem };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `p` was built by a `plan_*` function from live buffers on this handle's context
    // whose lengths cover every shape and stride in it, with overlaps rejected; the kernels read
    // and write only inside them, with the block size and shared memory given here.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// A device global scale seen through `DeviceSlice`, for the context check.
struct DeviceScalar<'a>(&'a dyn DevicePtr<f32>);

impl DeviceSlice<f32> for DeviceScalar<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn stream(&self) -> &Arc<CudaStream> {
        self.0.stream()
    }
}

/// Resolves the global scale argument (the device pointer's guard kept by the caller).
fn g_arg<'a>(
    lowp: &Lowp,
    stream: &'a CudaStream,
    g: Option<&GlobalScale<'a>>,
) -> Result<(Option<GArg>, Option<SyncOnDrop<'a>>)> {
    Ok(match g {
        None => (None, None),
        Some(GlobalScale::Value(v)) => (Some(GArg::Value(*v)), None),
        Some(GlobalScale::Device(b)) => {
            let b: &'a dyn DevicePtr<f32> = *b;
            lowp.check_buffer("global_scale", &DeviceScalar(b))?;
            let (a, guard) = b.device_ptr(stream);
            (Some(GArg::Device(buf::<f32>("global_scale", a, b.len()))), Some(guard))
        }
    })
}

/// Quantizes `x` into `codes` and row-major or swizzled `scales`.
#[allow(clippy::too_many_arguments)]
pub(super) fn quantize<T, X, C, CB, S, SB>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    x: &Matrix<T, X>,
    g: Option<&GlobalScale<'_>>,
    rounding: ScaleRounding,
    codes: &mut Matrix<C, CB>,
    scales: &mut Scales<S, SB>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: Element,
    CB: DevicePtrMut<C>,
    S: ScaleElement,
    SB: DevicePtrMut<S>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("codes", codes.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    let (ga, _gg) = g_arg(lowp, stream, g)?;
    let (xa, _gx) = x.device_ptr(stream);
    let mut cm = mat("codes", codes, 0);
    let (ca, _gc) = codes.device_ptr_mut(stream);
    cm.addr = ca;
    let mut sarg = scale_arg("scales", scales, 0);
    let (sa, _gs) = scales.device_ptr_mut(stream);
    sarg.buf.addr = sa;
    let p = plan_quantize(fmt, mat("x", x, xa), cm, sarg, ga, rounding, None)?;
    let name = format!("{}_quantize_{}", fmt.name(), T::SUFFIX);
    lowp.function(op, &name, NEEDS)?;
    let padding = if p.flags & MX_FLAG_SWIZZLED != 0 { math::swizzled_rows(p.rows) - p.rows } else { 0 };
    let padding_words = padding * (p.blocks_per_row as u64).div_ceil(4);
    if p.rows * p.blocks_per_row as u64 == 0 && padding_words == 0 {
        return Ok(());
    }
    let grid =
        grid_for_chunks(lowp, &name, fmt, p.rows, p.blocks_per_row, 0)?.max(grid_for(lowp, &name, padding_words)?);
    launch(lowp, stream, op, &name, grid, 0, &p)
}

/// Quantizes the row groups of `x` into `codes`, grouped swizzled `scales` and `scale_offsets`.
#[allow(clippy::too_many_arguments)]
pub(super) fn quantize_grouped<T, X, E, C, CB, S, SB, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    x: &Matrix<T, X>,
    group_ends: &E,
    g: Option<&GlobalScale<'_>>,
    rounding: ScaleRounding,
    codes: &mut Matrix<C, CB>,
    scales: &mut Scales<S, SB>,
    scale_offsets: &mut O,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: Element,
    CB: DevicePtrMut<C>,
    S: ScaleElement,
    SB: DevicePtrMut<S>,
    O: DevicePtrMut<i32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("group_ends", group_ends)?;
    lowp.check_buffer("codes", codes.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    lowp.check_buffer("scale_offsets", scale_offsets)?;
    let (ga, _gg) = g_arg(lowp, stream, g)?;
    let (xa, _gx) = x.device_ptr(stream);
    let (ea, _ge) = group_ends.device_ptr(stream);
    let mut cm = mat("codes", codes, 0);
    let (ca, _gc) = codes.device_ptr_mut(stream);
    cm.addr = ca;
    let mut sarg = scale_arg("scales", scales, 0);
    let (sa, _gs) = scales.device_ptr_mut(stream);
    sarg.buf.addr = sa;
    let olen = scale_offsets.len();
    let (oa, _go) = scale_offsets.device_ptr_mut(stream);
    let groups = GroupArgs {
        ends: buf::<i32>("group_ends", ea, group_ends.len()),
        offsets: buf::<i32>("scale_offsets", oa, olen),
    };
    let mut p = plan_quantize(fmt, mat("x", x, xa), cm, sarg, ga, rounding, Some(groups))?;
    let (flag, _gf) = ErrorFlag::device_addr(error_flag, lowp, stream)?;
    p.error_flag = flag;
    let name = format!("{}_quantize_grouped_{}", fmt.name(), T::SUFFIX);
    // Always launched (even with no rows): the kernel writes the scale offsets.
    let grid = grid_for_chunks(lowp, &name, fmt, p.rows, p.blocks_per_row, mx_grouped_smem_bytes(MX_MAX_GROUPS))?;
    launch(lowp, stream, op, &name, grid, mx_grouped_smem_bytes(p.groups), &p)
}

/// Dequantizes `codes` with row-major or swizzled `scales` into bf16 `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn dequantize<C, CB, S, SB, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    codes: &Matrix<C, CB>,
    scales: &Scales<S, SB>,
    g: Option<&GlobalScale<'_>>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: Element,
    CB: DevicePtr<C>,
    S: ScaleElement,
    SB: DevicePtr<S>,
    O: DevicePtrMut<bf16>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("codes", codes.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    lowp.check_buffer("out", out.buffer())?;
    let (ga, _gg) = g_arg(lowp, stream, g)?;
    let (ca, _gc) = codes.device_ptr(stream);
    let (sa, _gs) = scales.device_ptr(stream);
    let sarg = scale_arg("scales", scales, sa);
    let mut om = mat("out", out, 0);
    let (oa, _go) = out.device_ptr_mut(stream);
    om.addr = oa;
    let p = plan_dequantize(fmt, mat("codes", codes, ca), sarg, ga, om)?;
    let name = format!("{}_dequantize_bf16", fmt.name());
    lowp.function(op, &name, NEEDS)?;
    let items = p.rows * p.blocks_per_row as u64; // one block per thread and turn
    if items == 0 {
        return Ok(());
    }
    launch(lowp, stream, op, &name, grid_for(lowp, &name, items)?, 0, &p)
}

/// Row-major `src` → swizzled `dst`, or (`unswizzle`) the reverse.
pub(super) fn swizzle<S, B, D>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    src: &Scales<S, B>,
    dst: &mut Scales<S, D>,
    unswizzle: bool,
) -> Result<()>
where
    S: ScaleElement,
    B: DevicePtr<S>,
    D: DevicePtrMut<S>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("src", src.buffer())?;
    lowp.check_buffer("dst", dst.buffer())?;
    let (sa, _gs) = src.device_ptr(stream);
    let mut darg = scale_arg("dst", dst, 0);
    let (da, _gd) = dst.device_ptr_mut(stream);
    darg.buf.addr = da;
    let sarg = scale_arg("src", src, sa);
    // `plan_swizzle` takes the row-major side first.
    let (p, op) = if unswizzle {
        (plan_swizzle(darg, sarg, true)?, "unswizzle_scales")
    } else {
        (plan_swizzle(sarg, darg, false)?, "swizzle_scales")
    };
    lowp.function(op, op, NEEDS)?;
    // the swizzle kernel covers the padded rows, the unswizzle kernel only the real ones
    let rows = if unswizzle { p.rows } else { math::swizzled_rows(p.rows) };
    let words = rows * (p.cols as u64).div_ceil(4);
    if words == 0 {
        return Ok(());
    }
    launch(lowp, stream, op, op, grid_for(lowp, op, words)?, 0, &p)
}

/// `max |x|` into `amax` (zeroed first on the stream); errors name the op `op` (`tensor_amax`, or
/// the op that calls it).
pub(super) fn tensor_amax<T, X, A>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    x: &Matrix<T, X>,
    amax: &mut A,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    A: DevicePtrMut<f32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("amax", amax)?;
    let name = format!("tensor_amax_{}", T::SUFFIX);
    lowp.function(op, &name, NEEDS)?;
    let p = {
        let (xa, _gx) = x.device_ptr(stream);
        let len = amax.len();
        let (aa, _ga) = amax.device_ptr_mut(stream);
        plan_amax(mat("x", x, xa), buf::<f32>("amax", aa, len))?
    };
    // The kernel folds into the current value with atomic maxima: start from 0.
    stream.memset_zeros(amax).op("cuMemsetD8Async")?;
    let items = if p.cols % 8 == 0 { p.rows * (p.cols / 8) as u64 } else { p.rows * p.cols as u64 };
    if items == 0 {
        return Ok(());
    }
    // Guards again for the launch (same addresses as planned).
    let (_, _gx) = x.device_ptr(stream);
    let (_, _ga) = amax.device_ptr_mut(stream);
    launch(lowp, stream, op, &name, grid_for(lowp, &name, items)?, 0, &p)
}

/// The tensor amax into `global_scale`, then `g = 448 · 6 / amax` in place.
pub(super) fn nvfp4_global_scale<T, X, G>(
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
    let op = "nvfp4_global_scale";
    lowp.function(op, op, NEEDS)?;
    // errors name the output as the op spells it
    tensor_amax(lowp, stream, op, x, global_scale).map_err(|e| match e {
        crate::Error::Shape { arg: "amax", expected, actual } => {
            crate::Error::Shape { arg: "global_scale", expected, actual }
        }
        crate::Error::Aliasing { arg: "amax", other } => crate::Error::Aliasing { arg: "global_scale", other },
        crate::Error::DeviceMismatch { arg: "amax", expected, actual } => {
            crate::Error::DeviceMismatch { arg: "global_scale", expected, actual }
        }
        e => e,
    })?;
    let (a, _ga) = global_scale.device_ptr_mut(stream);
    launch(lowp, stream, op, op, 1, 0, &MxGlobalScaleParams { amax: a, g: a })
}
