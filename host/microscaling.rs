//! NVFP4 / MXFP4 / MXFP8 quantization with linear or 128×4-swizzled scale factors, grouped
//! (MoE) layouts, swizzle/unswizzle, dequantization and the tensor amax of the NVFP4 global
//! scale (device side: `kernels-gpu/src/microscaling/`). See `docs/kernels/microscaling.md`.
//!
//! ```text
//! NVFP4  16-element blocks, E4M3 block scale, global encode scale g (f32):
//!        scale = e4m3_sat((amax / 6) · g)        codes = e2m1_sat((x · g) / scale)
//! MXFP4  32-element blocks, UE8M0 scale 2^(⌊log2 amax⌋ − 2) (OCP) or 2^⌈log2(amax / 6)⌉:
//!        codes = e2m1_sat(x / scale)
//! MXFP8  32-element blocks, UE8M0 scale 2^(⌊log2 amax⌋ − 8) (OCP) or 2^⌈log2(amax / 448)⌉:
//!        codes = e4m3_sat(x / scale)
//! ```
//! Inputs are bf16, f16 or f32 `[M, K]` tensors with any row stride, `K` a multiple of the
//! block. Codes go to caller-allocated tensors (`Matrix<F4E2M1x2>` with `K / 2` columns, element
//! `2i` in the low nibble, or `Matrix<F8E4M3>` with `K` columns); scales to a linear
//! `[M, K / block]` tensor or a flat swizzled buffer of [`swizzled_scale_len`] bytes, whose
//! padding the kernel writes as zeros. Every call only enqueues work on the caller's stream.

use std::sync::Arc;

use cudarc::driver::{CudaStream, CudaView, DevicePtr, DevicePtrMut, DeviceSlice, LaunchConfig, PushKernelArg};
use half::bf16;

pub use crate::abi::{MX_BLOCK, MX_MAX_GROUPS, NVFP4_BLOCK};
use crate::abi::{
    MX_FLAG_ROUND_UP, MX_FLAG_SWIZZLED, MX_FLAG_VECTORIZED, MX_THREADS, MxAmaxParams, MxDequantizeParams,
    MxGlobalScaleParams, MxQuantizeParams, MxSwizzleParams, mx_grouped_smem_bytes,
};
use crate::context::Lowp;
use crate::dtype::{Element, F4E2M1x2, F8E4M3, Float, Ue8m0};
use crate::error::{CudaResultExt, Error, Result};
use crate::matrix::Matrix;

crate::abi::device_repr!(MxQuantizeParams, MxDequantizeParams, MxAmaxParams, MxGlobalScaleParams, MxSwizzleParams);

/// The software conversions `math` uses (`prim::soft` on the device).
use crate::reference::convert as soft;

/// The device's per-block arithmetic, compiled into the host for the unit tests and for
/// [`nvfp4_global_scale_from_amax`].
#[path = "../kernels-gpu/src/microscaling/math.rs"]
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

/// 8-element chunks one thread of a quantize kernel takes per turn.
const CHUNKS_PER_THREAD: u64 = 2;

// ---------------------------------------------------------------------------------------------
// Public types

/// How an MX block scale is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MxScaleRule {
    /// The OCP Microscaling rule: `2^(⌊log2 amax⌋ − emax)`, emax 2 (E2M1) or 8 (E4M3). The largest
    /// value of a block may exceed the element format's maximum and saturate.
    Ocp,
    /// Rounding up: `2^⌈log2(amax / max)⌉`, max 6 (E2M1) or 448 (E4M3), so no value saturates
    /// (the variant some training recipes use).
    RoundUp,
}


/// One-byte scale elements: [`F8E4M3`] (NVFP4) and [`Ue8m0`] (MX).
pub trait ScaleElement: Element {}
impl ScaleElement for F8E4M3 {}
impl ScaleElement for Ue8m0 {}

/// The NVFP4 global encode scale `g`.
#[derive(Debug)]
pub enum GlobalScale<'a> {
    /// A host value: finite and > 0 (`InvalidValue` otherwise).
    Value(f32),
    /// One f32 in device memory, read by the kernel (for example written by
    /// [`nvfp4_global_scale`]). A value that is not finite and > 0 is used as 1.
    Device(CudaView<'a, f32>),
}

/// Where a quantizer writes its scales.
pub enum ScalesMut<'a, S: Element, B> {
    /// A `[M, K / block]` tensor, any row stride.
    Linear(&'a mut Matrix<S, B>),
    /// A flat buffer of at least [`swizzled_scale_len`]`(M, K / block)` elements, 16-byte aligned,
    /// in the 128×4-swizzled layout; the padding is written as zeros.
    Swizzled(&'a mut B),
}

/// Where a dequantizer reads its scales (layouts as in [`ScalesMut`]).
pub enum Scales<'a, S: Element, B> {
    Linear(&'a Matrix<S, B>),
    Swizzled(&'a B),
}

/// Bytes (scale elements) of the 128×4-swizzled layout of a `[rows, scale_cols]` scale matrix:
/// rows rounded up to a multiple of 128 times columns rounded up to a multiple of 4.
pub fn swizzled_scale_len(rows: usize, scale_cols: usize) -> usize {
    rows.div_ceil(128).saturating_mul(128).saturating_mul(scale_cols.div_ceil(4) * 4)
}

/// Bytes (scale elements) a grouped scale buffer needs in the worst case: `rows + 127 · groups`
/// scale rows rounded up to 128, times the padded columns (each group's region is its row count
/// rounded up to 128).
pub fn grouped_scale_len(rows: usize, scale_cols: usize, groups: usize) -> usize {
    swizzled_scale_len(rows.saturating_add(groups.saturating_mul(127)), scale_cols)
}

/// The NVFP4 global encode scale for a tensor amax known on the host: `448 · 6 / amax` in f32;
/// 1 for amax 0, ±Inf or NaN; `f32::MAX` where the quotient overflows.
pub fn nvfp4_global_scale_from_amax(amax: f32) -> f32 {
    math::nvfp4_global_scale(amax)
}

// ---------------------------------------------------------------------------------------------
// Argument checking (pure: unit-tested without a GPU)

/// The three formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Nvfp4,
    Mxfp4,
    Mxfp8,
}

impl Format {
    pub(crate) fn block(self) -> usize {
        if self == Format::Nvfp4 { NVFP4_BLOCK as usize } else { MX_BLOCK as usize }
    }
    /// Code bytes per row of `k` elements.
    pub(crate) fn code_cols(self, k: usize) -> usize {
        if self == Format::Mxfp8 { k } else { k / 2 }
    }
    /// The alignment the quantizers' vector path needs for code rows: each lane stores the codes
    /// of 8 elements at once (4 bytes of FP4, 8 of FP8).
    fn code_align(self) -> usize {
        match self {
            Format::Nvfp4 | Format::Mxfp4 => 4,
            Format::Mxfp8 => 8,
        }
    }
    /// The alignment the dequantizers' vector path needs for code rows: each thread loads the
    /// codes of one block (8 bytes NVFP4, 16 MXFP4, 32 MXFP8) with 8- or 16-byte loads.
    fn block_code_align(self) -> usize {
        match self {
            Format::Nvfp4 => 8,
            Format::Mxfp4 | Format::Mxfp8 => 16,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Format::Nvfp4 => "nvfp4",
            Format::Mxfp4 => "mxfp4",
            Format::Mxfp8 => "mxfp8",
        }
    }
    fn block_name(self) -> &'static str {
        match self {
            Format::Nvfp4 => "16-element NVFP4 block",
            Format::Mxfp4 => "32-element MXFP4 block",
            Format::Mxfp8 => "32-element MXFP8 block",
        }
    }
}

/// A matrix argument: shape, stride (elements), address and element size (bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub name: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
    pub addr: u64,
    pub elem: usize,
}

impl Mat {
    fn region(&self) -> Region {
        let elems = crate::matrix::span(self.rows, self.cols, self.stride).unwrap_or(usize::MAX);
        Region { name: self.name, addr: self.addr, bytes: (elems as u64).saturating_mul(self.elem as u64) }
    }
    /// Every row starts `align`-byte aligned.
    fn rows_aligned(&self, align: usize) -> bool {
        self.addr % align as u64 == 0 && (self.stride * self.elem) % align == 0
    }
}

/// A flat buffer argument: address, length in elements, element size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buf {
    pub name: &'static str,
    pub addr: u64,
    pub len: usize,
    pub elem: usize,
}

impl Buf {
    fn region(&self) -> Region {
        Region { name: self.name, addr: self.addr, bytes: (self.len as u64).saturating_mul(self.elem as u64) }
    }
}

/// Where scales go (or come from).
#[derive(Clone, Copy, Debug)]
pub(crate) enum ScaleArg {
    Linear(Mat),
    Swizzled(Buf),
}

/// The global scale argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GArg {
    Value(f32),
    Device(Buf),
}

/// The grouped arguments: `group_ends` (i32, one per group) and `scale_offsets` (i32, groups + 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupArgs {
    pub ends: Buf,
    pub offsets: Buf,
}

/// A byte range, for the overlap checks.
#[derive(Clone, Copy, Debug)]
struct Region {
    name: &'static str,
    addr: u64,
    bytes: u64,
}

/// `Aliasing` when a written region overlaps any other region (empty regions overlap nothing).
fn check_overlaps(written: &[Region], read: &[Region]) -> Result<()> {
    for (i, w) in written.iter().enumerate() {
        for o in written[i + 1..].iter().chain(read) {
            if w.bytes > 0
                && o.bytes > 0
                && w.addr < o.addr.saturating_add(o.bytes)
                && o.addr < w.addr.saturating_add(w.bytes)
            {
                return Err(Error::Aliasing { arg: w.name, other: o.name });
            }
        }
    }
    Ok(())
}

fn shape_err(arg: &'static str, expected: String, actual: String) -> Error {
    Error::Shape { arg, expected, actual }
}

/// K of a quantizer input or dequantizer output: a multiple of the block.
fn check_k(fmt: Format, m: &Mat) -> Result<usize> {
    let k = m.cols;
    if k % fmt.block() != 0 {
        return Err(shape_err(
            m.name,
            format!("a column count (K) that is a multiple of the {}", fmt.block_name()),
            k.to_string(),
        ));
    }
    let nb = k / fmt.block();
    // the kernels walk rows in chunks of 8 elements, counted in 32 bits
    if k / 8 > u32::MAX as usize {
        return Err(shape_err(m.name, format!("fewer than 2^35 columns (K / 8 <= {})", u32::MAX), k.to_string()));
    }
    Ok(nb)
}

/// The kernels index rows, block columns and swizzled tiles with 32-bit integers.
fn check_extent(m: &Mat, rows: usize, scale_cols: usize) -> Result<()> {
    let tiles = (rows.div_ceil(128) as u64).saturating_mul(scale_cols.div_ceil(4) as u64);
    if rows > u32::MAX as usize || tiles > u32::MAX as u64 {
        return Err(shape_err(
            m.name,
            "fewer than 2^32 rows and 2^32 swizzled scale tiles (128 × 4 scales each)".into(),
            format!("{rows} rows, {tiles} tiles"),
        ));
    }
    Ok(())
}

fn check_dims(m: &Mat, rows: usize, cols: usize, what: &str) -> Result<()> {
    if m.rows != rows || m.cols != cols {
        return Err(shape_err(m.name, format!("[{rows}, {cols}] ({what})"), format!("[{}, {}]", m.rows, m.cols)));
    }
    Ok(())
}

/// Checks the scales against a `[rows, nb]` scale matrix (`required`: the swizzled length).
fn check_scales(s: &ScaleArg, rows: usize, nb: usize, required: usize) -> Result<()> {
    match s {
        ScaleArg::Linear(m) => check_dims(m, rows, nb, "one scale per block"),
        ScaleArg::Swizzled(b) => {
            if b.len < required {
                return Err(Error::BufferTooSmall { arg: b.name, required, actual: b.len });
            }
            if required > 0 && b.addr % 16 != 0 {
                return Err(Error::Alignment { arg: b.name, required: 16, actual: b.addr });
            }
            Ok(())
        }
    }
}

fn check_global_scale(g: &GArg) -> Result<()> {
    match g {
        GArg::Value(v) if !(v.is_finite() && *v > 0.0) => {
            Err(Error::InvalidValue { arg: "global_scale", expected: "a finite value > 0", actual: v.to_string() })
        }
        GArg::Device(b) if b.len != 1 => {
            Err(shape_err("global_scale", "1 element".into(), format!("{} elements", b.len)))
        }
        _ => Ok(()),
    }
}

fn scale_region(s: &ScaleArg) -> Region {
    match s {
        ScaleArg::Linear(m) => m.region(),
        ScaleArg::Swizzled(b) => b.region(),
    }
}

fn g_fields(g: Option<&GArg>) -> (u64, f32, Option<Region>) {
    match g {
        None => (0, 1.0, None),
        Some(GArg::Value(v)) => (0, *v, None),
        Some(GArg::Device(b)) => (b.addr, 1.0, Some(b.region())),
    }
}

/// Checks a quantize call and fills its parameters. `g`: NVFP4 only. `groups`: the grouped form,
/// whose scales must be `Swizzled`.
pub(crate) fn plan_quantize(
    fmt: Format,
    x: Mat,
    codes: Mat,
    scales: ScaleArg,
    g: Option<GArg>,
    rule: MxScaleRule,
    groups: Option<GroupArgs>,
) -> Result<MxQuantizeParams> {
    let nb = check_k(fmt, &x)?;
    let rows = x.rows;
    check_dims(
        &codes,
        rows,
        fmt.code_cols(x.cols),
        if fmt == Format::Mxfp8 { "one E4M3 byte per element" } else { "two E2M1 values per byte" },
    )?;
    let n_groups = groups.map_or(0, |gr| gr.ends.len);
    if let Some(gr) = &groups {
        if n_groups == 0 || n_groups > MX_MAX_GROUPS as usize {
            return Err(shape_err(
                "group_ends",
                format!("1..={MX_MAX_GROUPS} groups (one cumulative row end each)"),
                format!("{n_groups} elements"),
            ));
        }
        if gr.offsets.len != n_groups + 1 {
            return Err(shape_err(
                "scale_offsets",
                format!("{} elements (groups + 1)", n_groups + 1),
                format!("{} elements", gr.offsets.len),
            ));
        }
        if rows.saturating_add(127 * n_groups) > i32::MAX as usize {
            return Err(shape_err(
                x.name,
                format!("rows + 127 · groups <= {} (i32 scale offsets)", i32::MAX),
                format!("{rows} rows, {n_groups} groups"),
            ));
        }
    }
    check_extent(&x, rows + 127 * n_groups, nb)?;
    let required = if groups.is_some() { grouped_scale_len(rows, nb, n_groups) } else { swizzled_scale_len(rows, nb) };
    check_scales(&scales, rows, nb, required)?;
    if let Some(g) = &g {
        check_global_scale(g)?;
    }
    let (g_addr, g_value, g_region) = g_fields(g.as_ref());
    let mut written = vec![codes.region(), scale_region(&scales)];
    let mut read = vec![x.region()];
    read.extend(g_region);
    if let Some(gr) = &groups {
        written.push(gr.offsets.region());
        read.push(gr.ends.region());
    }
    check_overlaps(&written, &read)?;

    let vectorized = x.rows_aligned(16) && codes.rows_aligned(fmt.code_align());
    let (scale_addr, scale_stride, swizzled) = match scales {
        ScaleArg::Linear(m) => (m.addr, m.stride as u64, false),
        ScaleArg::Swizzled(b) => (b.addr, 0, true),
    };
    let mut flags = 0;
    if vectorized {
        flags |= MX_FLAG_VECTORIZED;
    }
    if swizzled {
        flags |= MX_FLAG_SWIZZLED;
    }
    if rule == MxScaleRule::RoundUp && fmt != Format::Nvfp4 {
        flags |= MX_FLAG_ROUND_UP;
    }
    Ok(MxQuantizeParams {
        x: x.addr,
        codes: codes.addr,
        scales: scale_addr,
        global_scale: g_addr,
        group_ends: groups.map_or(0, |gr| gr.ends.addr),
        scale_offsets: groups.map_or(0, |gr| gr.offsets.addr),
        rows: rows as u64,
        x_stride: x.stride as u64,
        codes_stride: codes.stride as u64,
        scale_stride,
        blocks_per_row: nb as u32,
        groups: n_groups as u32,
        g: g_value,
        flags,
    })
}

/// Checks a dequantize call and fills its parameters (`K` comes from the codes).
pub(crate) fn plan_dequantize(
    fmt: Format,
    codes: Mat,
    scales: ScaleArg,
    g: Option<GArg>,
    out: Mat,
) -> Result<MxDequantizeParams> {
    let k = if fmt == Format::Mxfp8 { codes.cols } else { codes.cols.saturating_mul(2) };
    let nb = check_k(fmt, &Mat { cols: k, ..codes })?;
    let rows = codes.rows;
    check_extent(&codes, rows, nb)?;
    check_dims(&out, rows, k, "one bf16 per element")?;
    check_scales(&scales, rows, nb, swizzled_scale_len(rows, nb))?;
    if let Some(g) = &g {
        check_global_scale(g)?;
    }
    let (g_addr, g_value, g_region) = g_fields(g.as_ref());
    let mut read = vec![codes.region(), scale_region(&scales)];
    read.extend(g_region);
    check_overlaps(&[out.region()], &read)?;
    let vectorized = codes.rows_aligned(fmt.block_code_align()) && out.rows_aligned(16);
    let (scale_addr, scale_stride, swizzled) = match scales {
        ScaleArg::Linear(m) => (m.addr, m.stride as u64, false),
        ScaleArg::Swizzled(b) => (b.addr, 0, true),
    };
    let mut flags = 0;
    if vectorized {
        flags |= MX_FLAG_VECTORIZED;
    }
    if swizzled {
        flags |= MX_FLAG_SWIZZLED;
    }
    Ok(MxDequantizeParams {
        codes: codes.addr,
        scales: scale_addr,
        out: out.addr,
        global_scale: g_addr,
        rows: rows as u64,
        codes_stride: codes.stride as u64,
        scale_stride,
        out_stride: out.stride as u64,
        blocks_per_row: nb as u32,
        flags,
        g: g_value,
        _pad: 0,
    })
}

/// Checks a swizzle or unswizzle call (`linear` is the source of `swizzle_scales`, the
/// destination of `unswizzle_scales`).
pub(crate) fn plan_swizzle(linear: Mat, swizzled: Buf, linear_written: bool) -> Result<MxSwizzleParams> {
    if linear.cols > u32::MAX as usize {
        return Err(shape_err(linear.name, format!("at most {} columns", u32::MAX), linear.cols.to_string()));
    }
    check_extent(&linear, linear.rows, linear.cols)?;
    check_scales(
        &ScaleArg::Swizzled(swizzled),
        linear.rows,
        linear.cols,
        swizzled_scale_len(linear.rows, linear.cols),
    )?;
    if linear_written {
        check_overlaps(&[linear.region()], &[swizzled.region()])?;
    } else {
        check_overlaps(&[swizzled.region()], &[linear.region()])?;
    }
    Ok(MxSwizzleParams {
        linear: linear.addr,
        swizzled: swizzled.addr,
        rows: linear.rows as u64,
        linear_stride: linear.stride as u64,
        cols: linear.cols as u32,
        _pad: 0,
    })
}

/// Checks a tensor amax call.
pub(crate) fn plan_amax(x: Mat, out: Buf) -> Result<MxAmaxParams> {
    if out.len != 1 {
        return Err(shape_err(out.name, "1 element".into(), format!("{} elements", out.len)));
    }
    if x.cols > u32::MAX as usize || x.rows > u32::MAX as usize {
        return Err(shape_err(x.name, "fewer than 2^32 rows and columns".into(), format!("[{}, {}]", x.rows, x.cols)));
    }
    check_overlaps(&[out.region()], &[x.region()])?;
    let vectorized = x.cols % 8 == 0 && x.rows_aligned(16);
    Ok(MxAmaxParams {
        x: x.addr,
        out: out.addr,
        rows: x.rows as u64,
        x_stride: x.stride as u64,
        cols: x.cols as u32,
        flags: if vectorized { MX_FLAG_VECTORIZED } else { 0 },
    })
}

// ---------------------------------------------------------------------------------------------
// Launching

fn mat<T: Element, B>(name: &'static str, t: &Matrix<T, B>, addr: u64) -> Mat
where
    B: DeviceSlice<T>,
{
    Mat { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr, elem: std::mem::size_of::<T>() }
}

fn buf<T>(name: &'static str, addr: u64, len: usize) -> Buf {
    Buf { name, addr, len, elem: std::mem::size_of::<T>() }
}

/// Grid of a grid-stride launch of `name` over `items` thread items (one item per thread and
/// turn): see `Lowp::grid_stride_grid`.
fn grid_for(lowp: &Lowp, name: &str, items: u64) -> Result<u32> {
    lowp.grid_stride_grid(name, MX_THREADS, 0, items, MX_THREADS as u64)
}

/// Grid of a quantize launch over a `[rows, blocks · block]` matrix: one item per 8-element chunk,
/// `CHUNKS_PER_THREAD` per thread and turn.
fn grid_for_chunks(lowp: &Lowp, name: &str, fmt: Format, rows: u64, blocks: u32) -> Result<u32> {
    let chunks = rows * blocks as u64 * (fmt.block() / 8) as u64;
    lowp.grid_stride_grid(name, MX_THREADS, 0, chunks, MX_THREADS as u64 * CHUNKS_PER_THREAD)
}

/// Enqueues `name` with one parameter struct.
fn launch<P: cudarc::driver::DeviceRepr>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    name: &str,
    grid: u32,
    smem: u32,
    p: &P,
) -> Result<()> {
    let f = lowp.function(op, name, "compute capability 8.0")?;
    let cfg = LaunchConfig { grid_dim: (grid, 1, 1), block_dim: (MX_THREADS, 1, 1), shared_mem_bytes: smem };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `p` was built by a `plan_*` function from live buffers on this handle's context
    // whose lengths cover every shape and stride in it, with overlaps rejected; the kernels read
    // and write only inside them, with the block size and shared memory given here.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// Resolves the global scale argument (device pointer guard kept by the caller).
fn g_arg<'a>(
    lowp: &Lowp,
    stream: &'a CudaStream,
    g: &'a GlobalScale<'_>,
) -> Result<(GArg, Option<cudarc::driver::SyncOnDrop<'a>>)> {
    Ok(match g {
        GlobalScale::Value(v) => (GArg::Value(*v), None),
        GlobalScale::Device(view) => {
            lowp.check_buffer("global_scale", view)?;
            let (a, guard) = view.device_ptr(stream);
            (GArg::Device(buf::<f32>("global_scale", a, view.len())), Some(guard))
        }
    })
}

#[allow(clippy::too_many_arguments)]
fn quantize_impl<T, X, C, CB, S, SB>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    x: &Matrix<T, X>,
    g: Option<&GlobalScale<'_>>,
    rule: MxScaleRule,
    codes: &mut Matrix<C, CB>,
    scales: ScalesMut<'_, S, SB>,
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
    match &scales {
        ScalesMut::Linear(t) => lowp.check_buffer("scales", t.buffer())?,
        ScalesMut::Swizzled(b) => lowp.check_buffer("scales", &**b)?,
    }
    let (ga, _gg) = match g {
        Some(g) => {
            let (a, guard) = g_arg(lowp, stream, g)?;
            (Some(a), guard)
        }
        None => (None, None),
    };
    let (xa, _gx) = x.device_ptr(stream);
    let xm = mat("x", x, xa);
    let mut cm = mat("codes", codes, 0);
    let (ca, _gc) = codes.device_ptr_mut(stream);
    cm.addr = ca;
    let (sarg, _gs) = match scales {
        ScalesMut::Linear(t) => {
            let m = mat("scales", t, 0);
            let (a, guard) = t.device_ptr_mut(stream);
            (ScaleArg::Linear(Mat { addr: a, ..m }), guard)
        }
        ScalesMut::Swizzled(b) => {
            let len = b.len();
            let (a, guard) = b.device_ptr_mut(stream);
            (ScaleArg::Swizzled(buf::<S>("scales", a, len)), guard)
        }
    };
    let p = plan_quantize(fmt, xm, cm, sarg, ga, rule, None)?;
    let name = format!("{}_quantize_{}", fmt.name(), T::SUFFIX);
    lowp.function(op, &name, "compute capability 8.0")?;
    let padding = if p.flags & MX_FLAG_SWIZZLED != 0 { math::swizzled_rows(p.rows) - p.rows } else { 0 };
    let padding_words = padding * (p.blocks_per_row as u64).div_ceil(4);
    if p.rows * p.blocks_per_row as u64 == 0 && padding_words == 0 {
        return Ok(());
    }
    let grid = grid_for_chunks(lowp, &name, fmt, p.rows, p.blocks_per_row)?.max(grid_for(lowp, &name, padding_words)?);
    launch(lowp, stream, op, &name, grid, 0, &p)
}

#[allow(clippy::too_many_arguments)]
fn quantize_grouped_impl<T, X, E, C, CB, S, SB, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    x: &Matrix<T, X>,
    group_ends: &E,
    g: Option<&GlobalScale<'_>>,
    rule: MxScaleRule,
    codes: &mut Matrix<C, CB>,
    scales: &mut SB,
    scale_offsets: &mut O,
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
    lowp.check_buffer("scales", scales)?;
    lowp.check_buffer("scale_offsets", scale_offsets)?;
    let (ga, _gg) = match g {
        Some(g) => {
            let (a, guard) = g_arg(lowp, stream, g)?;
            (Some(a), guard)
        }
        None => (None, None),
    };
    let (xa, _gx) = x.device_ptr(stream);
    let (ea, _ge) = group_ends.device_ptr(stream);
    let mut cm = mat("codes", codes, 0);
    let (ca, _gc) = codes.device_ptr_mut(stream);
    cm.addr = ca;
    let slen = scales.len();
    let (sa, _gs) = scales.device_ptr_mut(stream);
    let olen = scale_offsets.len();
    let (oa, _go) = scale_offsets.device_ptr_mut(stream);
    let groups = GroupArgs {
        ends: buf::<i32>("group_ends", ea, group_ends.len()),
        offsets: buf::<i32>("scale_offsets", oa, olen),
    };
    let p = plan_quantize(
        fmt,
        mat("x", x, xa),
        cm,
        ScaleArg::Swizzled(buf::<S>("scales", sa, slen)),
        ga,
        rule,
        Some(groups),
    )?;
    let name = format!("{}_quantize_grouped_{}", fmt.name(), T::SUFFIX);
    // Always launched (even with no rows): the kernel writes the scale offsets.
    let grid = grid_for_chunks(lowp, &name, fmt, p.rows, p.blocks_per_row)?;
    launch(lowp, stream, op, &name, grid, mx_grouped_smem_bytes(p.groups), &p)
}

/// NVFP4 quantization of `x` `[M, K]` (K a multiple of 16) on `stream`: packed E2M1 `codes`
/// `[M, K / 2]`, E4M3 `scales` (linear `[M, K / 16]` or swizzled), with global encode scale
/// `global_scale`. Asynchronous; nothing is synchronized.
pub fn nvfp4_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    global_scale: &GlobalScale<'_>,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: ScalesMut<'_, F8E4M3, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<F8E4M3>,
{
    quantize_impl(lowp, stream, Format::Nvfp4, "nvfp4_quantize", x, Some(global_scale), MxScaleRule::Ocp, codes, scales)
}

/// MXFP4 quantization of `x` `[M, K]` (K a multiple of 32): packed E2M1 `codes` `[M, K / 2]`,
/// UE8M0 `scales` (linear `[M, K / 32]` or swizzled). Asynchronous.
pub fn mxfp4_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    rule: MxScaleRule,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: ScalesMut<'_, Ue8m0, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<Ue8m0>,
{
    quantize_impl(lowp, stream, Format::Mxfp4, "mxfp4_quantize", x, None, rule, codes, scales)
}

/// MXFP8 quantization of `x` `[M, K]` (K a multiple of 32): E4M3 `codes` `[M, K]`, UE8M0
/// `scales` (linear `[M, K / 32]` or swizzled). Asynchronous.
pub fn mxfp8_quantize<T, X, C, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    rule: MxScaleRule,
    codes: &mut Matrix<F8E4M3, C>,
    scales: ScalesMut<'_, Ue8m0, S>,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<Ue8m0>,
{
    quantize_impl(lowp, stream, Format::Mxfp8, "mxfp8_quantize", x, None, rule, codes, scales)
}

/// NVFP4 quantization of the row groups of `x` (tokens sorted by expert), in one launch.
///
/// `group_ends` holds `E` cumulative row ends (group `g` is rows `[ends[g-1], ends[g])`,
/// `ends[-1] = 0`, like `torch._grouped_mm`'s `offs`), read on the device. Each group's scales go
/// to its own swizzled region of `pad128(size)` rows in `scales` (at least
/// [`grouped_scale_len`]`(M, K / 16, E)` elements, 16-byte aligned), regions back to back; the
/// kernel writes each region's first scale row, then the total, into `scale_offsets` (`E + 1`
/// i32). Ends are clamped on the device to `[previous end, M]`, so bad offsets never cause an
/// out-of-bounds access; rows past the last end are not quantized and the buffer past the last
/// region is not written. Asynchronous.
#[allow(clippy::too_many_arguments)]
pub fn nvfp4_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    global_scale: &GlobalScale<'_>,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut S,
    scale_offsets: &mut O,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<F8E4M3>,
    O: DevicePtrMut<i32>,
{
    quantize_grouped_impl(
        lowp,
        stream,
        Format::Nvfp4,
        "nvfp4_quantize_grouped",
        x,
        group_ends,
        Some(global_scale),
        MxScaleRule::Ocp,
        codes,
        scales,
        scale_offsets,
    )
}

/// MXFP4 quantization of row groups (see [`nvfp4_quantize_grouped`] for the layout). Asynchronous.
#[allow(clippy::too_many_arguments)]
pub fn mxfp4_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    rule: MxScaleRule,
    codes: &mut Matrix<F4E2M1x2, C>,
    scales: &mut S,
    scale_offsets: &mut O,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F4E2M1x2>,
    S: DevicePtrMut<Ue8m0>,
    O: DevicePtrMut<i32>,
{
    quantize_grouped_impl(
        lowp,
        stream,
        Format::Mxfp4,
        "mxfp4_quantize_grouped",
        x,
        group_ends,
        None,
        rule,
        codes,
        scales,
        scale_offsets,
    )
}

/// MXFP8 quantization of row groups (see [`nvfp4_quantize_grouped`] for the layout). Asynchronous.
#[allow(clippy::too_many_arguments)]
pub fn mxfp8_quantize_grouped<T, X, E, C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    group_ends: &E,
    rule: MxScaleRule,
    codes: &mut Matrix<F8E4M3, C>,
    scales: &mut S,
    scale_offsets: &mut O,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    E: DevicePtr<i32>,
    C: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<Ue8m0>,
    O: DevicePtrMut<i32>,
{
    quantize_grouped_impl(
        lowp,
        stream,
        Format::Mxfp8,
        "mxfp8_quantize_grouped",
        x,
        group_ends,
        None,
        rule,
        codes,
        scales,
        scale_offsets,
    )
}

/// Linear `[rows, cols]` scales → the 128×4-swizzled layout in `dst` (at least
/// [`swizzled_scale_len`]`(rows, cols)` elements, 16-byte aligned; every byte of that length is
/// written, padding as zeros). Asynchronous.
pub fn swizzle_scales<S, B, D>(lowp: &Lowp, stream: &Arc<CudaStream>, src: &Matrix<S, B>, dst: &mut D) -> Result<()>
where
    S: ScaleElement,
    B: DevicePtr<S>,
    D: DevicePtrMut<S>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("src", src.buffer())?;
    lowp.check_buffer("dst", dst)?;
    let (sa, _gs) = src.device_ptr(stream);
    let len = dst.len();
    let (da, _gd) = dst.device_ptr_mut(stream);
    let p = plan_swizzle(mat("src", src, sa), buf::<S>("dst", da, len), false)?;
    lowp.function("swizzle_scales", "swizzle_scales", "compute capability 8.0")?;
    let words = math::swizzled_rows(p.rows) * (p.cols as u64).div_ceil(4);
    if words == 0 {
        return Ok(());
    }
    launch(lowp, stream, "swizzle_scales", "swizzle_scales", grid_for(lowp, "swizzle_scales", words)?, 0, &p)
}

/// The 128×4-swizzled layout in `src` → linear `[rows, cols]` scales in `dst` (the padding of
/// `src` is not read). Asynchronous.
pub fn unswizzle_scales<S, B, D>(lowp: &Lowp, stream: &Arc<CudaStream>, src: &B, dst: &mut Matrix<S, D>) -> Result<()>
where
    S: ScaleElement,
    B: DevicePtr<S>,
    D: DevicePtrMut<S>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("src", src)?;
    lowp.check_buffer("dst", dst.buffer())?;
    let len = src.len();
    let (sa, _gs) = src.device_ptr(stream);
    let mut dm = mat("dst", dst, 0);
    let (da, _gd) = dst.device_ptr_mut(stream);
    dm.addr = da;
    let p = plan_swizzle(dm, buf::<S>("src", sa, len), true)?;
    lowp.function("unswizzle_scales", "unswizzle_scales", "compute capability 8.0")?;
    let items = p.rows * (p.cols as u64).div_ceil(4);
    if items == 0 {
        return Ok(());
    }
    launch(lowp, stream, "unswizzle_scales", "unswizzle_scales", grid_for(lowp, "unswizzle_scales", items)?, 0, &p)
}

#[allow(clippy::too_many_arguments)]
fn dequantize_impl<C, CB, S, SB, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    fmt: Format,
    op: &'static str,
    codes: &Matrix<C, CB>,
    scales: Scales<'_, S, SB>,
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
    match &scales {
        Scales::Linear(t) => lowp.check_buffer("scales", t.buffer())?,
        Scales::Swizzled(b) => lowp.check_buffer("scales", *b)?,
    }
    lowp.check_buffer("out", out.buffer())?;
    let (ga, _gg) = match g {
        Some(g) => {
            let (a, guard) = g_arg(lowp, stream, g)?;
            (Some(a), guard)
        }
        None => (None, None),
    };
    let (ca, _gc) = codes.device_ptr(stream);
    let (sarg, _gs) = match scales {
        Scales::Linear(t) => {
            let (a, guard) = t.device_ptr(stream);
            (ScaleArg::Linear(mat("scales", t, a)), guard)
        }
        Scales::Swizzled(b) => {
            let (a, guard) = b.device_ptr(stream);
            (ScaleArg::Swizzled(buf::<S>("scales", a, b.len())), guard)
        }
    };
    let mut om = mat("out", out, 0);
    let (oa, _go) = out.device_ptr_mut(stream);
    om.addr = oa;
    let p = plan_dequantize(fmt, mat("codes", codes, ca), sarg, ga, om)?;
    let name = format!("{}_dequantize_bf16", fmt.name());
    lowp.function(op, &name, "compute capability 8.0")?;
    let items = p.rows * p.blocks_per_row as u64; // one block per thread and turn
    if items == 0 {
        return Ok(());
    }
    launch(lowp, stream, op, &name, grid_for(lowp, &name, items)?, 0, &p)
}

/// NVFP4 → bf16: `out[r, c] = bf16((value · scale) / g)` (f32 arithmetic, one rounding to bf16),
/// `codes` `[M, K / 2]`, E4M3 `scales` linear `[M, K / 16]` or swizzled, `out` `[M, K]`.
/// Asynchronous.
pub fn nvfp4_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F4E2M1x2, C>,
    scales: Scales<'_, F8E4M3, S>,
    global_scale: &GlobalScale<'_>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F4E2M1x2>,
    S: DevicePtr<F8E4M3>,
    O: DevicePtrMut<bf16>,
{
    dequantize_impl(lowp, stream, Format::Nvfp4, "nvfp4_dequantize", codes, scales, Some(global_scale), out)
}

/// MXFP4 → bf16: `out = bf16(value · 2^(scale − 127))`; scale 0xff gives NaN. Asynchronous.
pub fn mxfp4_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F4E2M1x2, C>,
    scales: Scales<'_, Ue8m0, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F4E2M1x2>,
    S: DevicePtr<Ue8m0>,
    O: DevicePtrMut<bf16>,
{
    dequantize_impl(lowp, stream, Format::Mxfp4, "mxfp4_dequantize", codes, scales, None, out)
}

/// MXFP8 → bf16: `out = bf16(value · 2^(scale − 127))`; scale 0xff or a NaN code give NaN.
/// Asynchronous.
pub fn mxfp8_dequantize<C, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    codes: &Matrix<F8E4M3, C>,
    scales: Scales<'_, Ue8m0, S>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    C: DevicePtr<F8E4M3>,
    S: DevicePtr<Ue8m0>,
    O: DevicePtrMut<bf16>,
{
    dequantize_impl(lowp, stream, Format::Mxfp8, "mxfp8_dequantize", codes, scales, None, out)
}

/// `max |x|` of the tensor into `amax` (one f32; NaN if any element is NaN): zeroes `amax` on
/// `stream`, then folds every warp's maximum in with an atomic max. Asynchronous.
pub fn tensor_amax<T, X, A>(lowp: &Lowp, stream: &Arc<CudaStream>, x: &Matrix<T, X>, amax: &mut A) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    A: DevicePtrMut<f32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("amax", amax)?;
    let name = format!("tensor_amax_{}", T::SUFFIX);
    lowp.function("tensor_amax", &name, "compute capability 8.0")?;
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
    launch(lowp, stream, "tensor_amax", &name, grid_for(lowp, &name, items)?, 0, &p)
}

/// The NVFP4 global encode scale of `x` into `global_scale` (one f32), on the device:
/// [`tensor_amax`] into it, then `g = 448 · 6 / amax` in place (1 for amax 0, Inf or NaN;
/// `f32::MAX` where the quotient overflows). Pass it on as [`GlobalScale::Device`]. Asynchronous:
/// no value comes back to the host.
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
    lowp.function("nvfp4_global_scale", "nvfp4_global_scale", "compute capability 8.0")?;
    tensor_amax(lowp, stream, x, global_scale)?;
    let (a, _ga) = global_scale.device_ptr_mut(stream);
    launch(lowp, stream, "nvfp4_global_scale", "nvfp4_global_scale", 1, 0, &MxGlobalScaleParams { amax: a, g: a })
}

#[cfg(test)]
#[path = "tests/microscaling_plan.rs"]
mod plan_tests;

#[cfg(test)]
#[path = "tests/microscaling_math.rs"]
mod math_tests;
