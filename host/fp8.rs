//! Blockwise FP8 (E4M3) quantization for the DeepSeek-V3 recipe (device side:
//! `kernels-gpu/src/fp8/`): the quantizers that feed the blockwise FP8 GEMM, and dequantization.
//!
//! ```text
//! activations  x [M, K]  → q [M, K] e4m3 + sa: one f32 per (token, 128 columns)   1×128 groups
//! weights      w [N, K]  → q [N, K] e4m3 + sb: one f32 per 128×128 block          [⌈N/128⌉, K/128]
//! x ≈ q · scale,  scale = max(amax, 1e-4) / 448  (or its power of two rounded up: UE8M0)
//! ```
//! Activation scales are written straight into the layout the GEMM reads: row-major
//! `[M, K/128]`, or M-major (`sa[g][m]` at `g · ld + m`, what cuBLAS and DeepGEMM consume, with
//! `ld` ≥ M, a multiple of 4 for TMA). See `docs/kernels/fp8_gemm.md`.

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice, LaunchConfig, PushKernelArg};

use crate::abi::{
    FP8_BLOCK_SMEM_BYTES, FP8_GROUP, FP8_THREADS, FP8_UE8M0, FP8_VECTORIZED, Fp8QuantParams, GEMM_BLOCK_M, GEMM_BLOCK_N,
    GemmParams,
};
use crate::context::Lowp;
use crate::dtype::{Element, F8E4M3, Float};
use crate::error::{CudaResultExt, Error, Result};
use crate::matrix::Matrix;
pub(crate) use crate::validate::Operand;
use crate::validate::overlap;

crate::abi::device_repr!(Fp8QuantParams);

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

/// 1×128 groups one CTA of `fp8_quantize_group_*` takes per turn: 4 per warp.
const GROUPS_PER_CTA: u64 = 4 * (FP8_THREADS / 32) as u64;

/// Elements along K that share a scale (and rows of a weight block).
pub const GROUP: usize = FP8_GROUP as usize;

/// How a scale is derived from a group's largest magnitude.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleRecipe {
    /// `max(amax, 1e-4) / 448`.
    Float,
    /// That value rounded up to a power of two (the UE8M0 recipe: scales representable in
    /// E8M0, the quantized values lose nothing to the scale's own rounding).
    Ue8m0,
}

/// Layout of the per-token-group scales `[M, K/128]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleLayout {
    /// `scale(m, g)` at `m · (K/128) + g`.
    RowMajor,
    /// `scale(m, g)` at `g · ld + m`, `ld >= M` (M-major, what cuBLAS and DeepGEMM read;
    /// [`m_major_ld`] gives the TMA-friendly choice).
    MMajor { ld: usize },
}

/// The leading dimension DeepGEMM uses for M-major scales: M rounded up to 4 (16 bytes of f32).
pub fn m_major_ld(m: usize) -> usize {
    m.div_ceil(4) * 4
}


/// Scale buffer: address, length (f32 elements), and where (row, group) lives.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaleArg {
    pub addr: u64,
    pub len: usize,
    pub row_stride: usize,
    pub col_stride: usize,
    /// Scale rows and columns the operation touches.
    pub rows: usize,
    pub cols: usize,
}

impl ScaleArg {
    fn required(&self) -> usize {
        if self.rows == 0 || self.cols == 0 { 0 } else { (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride + 1 }
    }
}

/// Validates a quantize or dequantize call and fills the parameters (pure; unit-tested).
/// `hp` is the high-precision matrix, `q` the E4M3 one, `block_rows` 1 or 128.
pub(crate) fn plan(hp: Operand, q: Operand, s: ScaleArg, block_rows: usize, recipe: ScaleRecipe) -> Result<Fp8QuantParams> {
    if hp.cols % GROUP != 0 {
        return Err(Error::Shape {
            arg: hp.name,
            expected: format!("a multiple of {GROUP} columns (K)"),
            actual: format!("{} columns", hp.cols),
        });
    }
    if q.rows != hp.rows || q.cols != hp.cols {
        return Err(Error::Shape {
            arg: q.name,
            expected: format!("[{}, {}] like {}", hp.rows, hp.cols, hp.name),
            actual: format!("[{}, {}]", q.rows, q.cols),
        });
    }
    if s.len < s.required() {
        return Err(Error::BufferTooSmall { arg: "scales", required: s.required(), actual: s.len });
    }
    if hp.rows > 0 {
        let sr = (s.addr, s.addr + 4 * s.required() as u64);
        if overlap(hp.range(), q.range()) {
            return Err(Error::Aliasing { arg: q.name, other: hp.name });
        }
        if overlap(sr, hp.range()) {
            return Err(Error::Aliasing { arg: "scales", other: hp.name });
        }
        if overlap(sr, q.range()) {
            return Err(Error::Aliasing { arg: "scales", other: q.name });
        }
    }
    let vectorized = hp.aligned(16) && q.aligned(8);
    let mut flags = if vectorized { FP8_VECTORIZED } else { 0 };
    if recipe == ScaleRecipe::Ue8m0 {
        flags |= FP8_UE8M0;
    }
    Ok(Fp8QuantParams {
        x: hp.addr,
        q: q.addr,
        scales: s.addr,
        x_stride: hp.stride as u64,
        q_stride: q.stride as u64,
        scale_row_stride: s.row_stride as u64,
        scale_col_stride: s.col_stride as u64,
        rows: hp.rows as u64,
        cols: hp.cols as u64,
        block_rows: block_rows as u32,
        flags,
    })
}

/// Scale placement of per-token groups for an `[m, k]` matrix.
fn group_scales(layout: ScaleLayout, m: usize, k: usize, addr: u64, len: usize) -> Result<ScaleArg> {
    let groups = k / GROUP;
    let (row_stride, col_stride) = match layout {
        ScaleLayout::RowMajor => (groups, 1),
        ScaleLayout::MMajor { ld } => {
            if ld < m {
                return Err(Error::Shape { arg: "scales", expected: format!("an M-major leading dimension >= M = {m}"), actual: ld.to_string() });
            }
            (1, ld)
        }
    };
    Ok(ScaleArg { addr, len, row_stride, col_stride, rows: m, cols: groups })
}

fn operand<T: Element, B: DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>) -> Operand {
    Operand { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr: 0, elem: std::mem::size_of::<T>() }
}

fn launch(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, kernel: &str, p: &Fp8QuantParams, blocks: u64, smem: u32) -> Result<()> {
    let f = lowp.function(op, kernel, "compute capability 8.0")?;
    if blocks == 0 {
        return Ok(());
    }
    let cfg = LaunchConfig { grid_dim: (blocks.min(i32::MAX as u64) as u32, 1, 1), block_dim: (FP8_THREADS, 1, 1), shared_mem_bytes: smem };
    let mut b = stream.launch_builder(&f);
    b.arg(p);
    // SAFETY: `plan` validated shapes, strides, the scale layout's extent and overlaps against the
    // live buffers whose addresses `p` holds (guards alive in the caller until after this); the
    // kernels grid-stride over exactly rows × cols and the scales named.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}

/// Quantizes activations `x [M, K]` per token in groups of 1×128: `q [M, K]` E4M3 and one f32
/// scale per group, written in `layout` into `scales` (asynchronous on `stream`).
pub fn quantize_per_token_group<T, X, Q, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<T, X>,
    q: &mut Matrix<F8E4M3, Q>,
    scales: &mut S,
    layout: ScaleLayout,
    recipe: ScaleRecipe,
) -> Result<()>
where
    T: Float,
    X: DevicePtr<T>,
    Q: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<f32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("q", q.buffer())?;
    lowp.check_buffer("scales", scales)?;
    let (mut xo, mut qo, slen) = (operand("x", x), operand("q", q), scales.len());
    let (xa, _g1) = x.device_ptr(stream);
    let (qa, _g2) = q.device_ptr_mut(stream);
    let (sa, _g3) = scales.device_ptr_mut(stream);
    (xo.addr, qo.addr) = (xa, qa);
    let s = group_scales(layout, xo.rows, xo.cols, sa, slen)?;
    let p = plan(xo, qo, s, 1, recipe)?;
    let groups = p.rows * (p.cols / FP8_GROUP as u64);
    let kernel = format!("fp8_quantize_group_{}", T::SUFFIX);
    let blocks = if groups == 0 { 0 } else { lowp.grid_stride_grid(&kernel, FP8_THREADS, 0, groups, GROUPS_PER_CTA)? as u64 };
    launch(lowp, stream, "quantize_per_token_group", &kernel, &p, blocks, 0)
}

/// Quantizes weights `w [N, K]` per 128×128 block: `q [N, K]` E4M3 and `scales
/// [⌈N/128⌉, K/128]` f32 (any row stride), asynchronous on `stream`.
pub fn quantize_per_block<T, W, Q, S>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    w: &Matrix<T, W>,
    q: &mut Matrix<F8E4M3, Q>,
    scales: &mut Matrix<f32, S>,
    recipe: ScaleRecipe,
) -> Result<()>
where
    T: Float,
    W: DevicePtr<T>,
    Q: DevicePtrMut<F8E4M3>,
    S: DevicePtrMut<f32>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("q", q.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    let (mut wo, mut qo) = (operand("w", w), operand("q", q));
    let (srows, scols, sstride, slen) = (scales.rows(), scales.cols(), scales.row_stride(), scales.span());
    let want = (wo.rows.div_ceil(GROUP), wo.cols / GROUP);
    if wo.cols % GROUP == 0 && (srows, scols) != want {
        return Err(Error::Shape { arg: "scales", expected: format!("[{}, {}] (⌈N/128⌉, K/128)", want.0, want.1), actual: format!("[{srows}, {scols}]") });
    }
    let (wa, _g1) = w.device_ptr(stream);
    let (qa, _g2) = q.device_ptr_mut(stream);
    let (sa, _g3) = scales.device_ptr_mut(stream);
    (wo.addr, qo.addr) = (wa, qa);
    let s = ScaleArg { addr: sa, len: slen, row_stride: sstride, col_stride: 1, rows: srows, cols: scols };
    let p = plan(wo, qo, s, GROUP, recipe)?;
    let tiles = p.rows.div_ceil(FP8_GROUP as u64) * (p.cols / FP8_GROUP as u64);
    launch(lowp, stream, "quantize_per_block", &format!("fp8_quantize_block_{}", T::SUFFIX), &p, tiles, FP8_BLOCK_SMEM_BYTES)
}

/// `out = q · scale` in bf16, with per-token-group scales in `layout` (the inverse of
/// [`quantize_per_token_group`], up to the rounding of the values).
pub fn dequantize_per_token_group<Q, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    q: &Matrix<F8E4M3, Q>,
    scales: &S,
    layout: ScaleLayout,
    out: &mut Matrix<half::bf16, O>,
) -> Result<()>
where
    Q: DevicePtr<F8E4M3>,
    S: DevicePtr<f32>,
    O: DevicePtrMut<half::bf16>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("q", q.buffer())?;
    lowp.check_buffer("scales", scales)?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut qo, mut oo, slen) = (operand("q", q), operand("out", out), scales.len());
    let (qa, _g1) = q.device_ptr(stream);
    let (sa, _g2) = scales.device_ptr(stream);
    let (oa, _g3) = out.device_ptr_mut(stream);
    (qo.addr, oo.addr) = (qa, oa);
    let s = group_scales(layout, oo.rows, oo.cols, sa, slen)?;
    let p = plan(oo, qo, s, 1, ScaleRecipe::Float)?;
    dequantize_launch(lowp, stream, "dequantize_per_token_group", &p)
}

/// `out = q · scale` in bf16 with per-128×128-block scales `[⌈N/128⌉, K/128]`.
pub fn dequantize_per_block<Q, S, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    q: &Matrix<F8E4M3, Q>,
    scales: &Matrix<f32, S>,
    out: &mut Matrix<half::bf16, O>,
) -> Result<()>
where
    Q: DevicePtr<F8E4M3>,
    S: DevicePtr<f32>,
    O: DevicePtrMut<half::bf16>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("q", q.buffer())?;
    lowp.check_buffer("scales", scales.buffer())?;
    lowp.check_buffer("out", out.buffer())?;
    let (mut qo, mut oo) = (operand("q", q), operand("out", out));
    let want = (oo.rows.div_ceil(GROUP), oo.cols / GROUP);
    if oo.cols % GROUP == 0 && (scales.rows(), scales.cols()) != want {
        return Err(Error::Shape {
            arg: "scales",
            expected: format!("[{}, {}] (⌈N/128⌉, K/128)", want.0, want.1),
            actual: format!("[{}, {}]", scales.rows(), scales.cols()),
        });
    }
    let (srows, scols, sstride, slen) = (scales.rows(), scales.cols(), scales.row_stride(), scales.span());
    let (qa, _g1) = q.device_ptr(stream);
    let (sa, _g2) = scales.device_ptr(stream);
    let (oa, _g3) = out.device_ptr_mut(stream);
    (qo.addr, oo.addr) = (qa, oa);
    let s = ScaleArg { addr: sa, len: slen, row_stride: sstride, col_stride: 1, rows: srows, cols: scols };
    let p = plan(oo, qo, s, GROUP, ScaleRecipe::Float)?;
    dequantize_launch(lowp, stream, "dequantize_per_block", &p)
}

fn dequantize_launch(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, p: &Fp8QuantParams) -> Result<()> {
    let chunks = p.rows * (p.cols / 8);
    launch(lowp, stream, op, "fp8_dequantize_bf16", p, chunks.div_ceil(FP8_THREADS as u64), 0)
}

/// Everything `gemm_plan` checks, with device addresses resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GemmInput {
    pub a: Operand,
    pub b: Operand,
    pub d: Operand,
    pub sa: ScaleArg,
    pub sb: ScaleArg,
}

/// Validates a blockwise GEMM and fills the parameters but the tensor-map address (pure).
pub(crate) fn gemm_plan(g: &GemmInput) -> Result<GemmParams> {
    let (a, b, d) = (g.a, g.b, g.d);
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if k == 0 || k % GROUP != 0 {
        return Err(Error::Shape { arg: "a", expected: format!("K a positive multiple of {GROUP}"), actual: format!("K = {k}") });
    }
    if b.cols != k {
        return Err(Error::Shape { arg: "b", expected: format!("[N, K = {k}] (K-major like a)"), actual: format!("[{}, {}]", b.rows, b.cols) });
    }
    if d.rows != m || d.cols != n {
        return Err(Error::Shape { arg: "d", expected: format!("[M, N] = [{m}, {n}]"), actual: format!("[{}, {}]", d.rows, d.cols) });
    }
    let limit = i32::MAX as usize;
    for (arg, v) in [("a", m), ("b", n), ("a", k)] {
        if v > limit {
            return Err(Error::Shape { arg, expected: "dimensions below 2^31".to_string(), actual: v.to_string() });
        }
    }
    // TMA: 16-byte aligned bases and row strides.
    for o in [&a, &b] {
        if !o.aligned(16) {
            let actual = if o.addr % 16 != 0 { o.addr } else { (o.stride * o.elem) as u64 };
            return Err(Error::Alignment { arg: o.name, required: 16, actual });
        }
    }
    // The epilogue stores bf16 pairs: 4-byte aligned base, even row stride.
    if !d.aligned(4) {
        let actual = if d.addr % 4 != 0 { d.addr } else { (d.stride * d.elem) as u64 };
        return Err(Error::Alignment { arg: d.name, required: 4, actual });
    }
    for (arg, s) in [("sa", &g.sa), ("sb", &g.sb)] {
        if s.len < s.required() {
            return Err(Error::BufferTooSmall { arg, required: s.required(), actual: s.len });
        }
    }
    if g.sb.rows != n.div_ceil(GROUP) || g.sb.cols != k / GROUP {
        return Err(Error::Shape {
            arg: "sb",
            expected: format!("[⌈N/128⌉, K/128] = [{}, {}]", n.div_ceil(GROUP), k / GROUP),
            actual: format!("[{}, {}]", g.sb.rows, g.sb.cols),
        });
    }
    if m > 0 && n > 0 {
        let dr = d.range();
        for (other, r) in [
            ("a", a.range()),
            ("b", b.range()),
            ("sa", (g.sa.addr, g.sa.addr + 4 * g.sa.required() as u64)),
            ("sb", (g.sb.addr, g.sb.addr + 4 * g.sb.required() as u64)),
        ] {
            if overlap(dr, r) {
                return Err(Error::Aliasing { arg: "d", other });
            }
        }
    }
    Ok(GemmParams {
        tensor_maps: 0,
        sa: g.sa.addr,
        sa_row_stride: g.sa.row_stride as u64,
        sa_col_stride: g.sa.col_stride as u64,
        sb: g.sb.addr,
        sb_stride: g.sb.row_stride as u64,
        sb_group_stride: 0,
        d: d.addr,
        d_stride: d.stride as u64,
        group_ends: 0,
        error_flag: 0,
        rows: m as u32,
        n: n as u32,
        k: k as u32,
        groups: 1,
        max_m: 0,
        group_m: 8,
    })
}

/// The blockwise-scaled FP8 GEMM of DeepSeek-V3 (sm_90a: wgmma with E4M3 operands, TMA):
///
/// ```text
/// d[m, n] (bf16) = Σ_k (a[m, k] · sa(m, k/128)) · (b[n, k] · sb[n/128, k/128])
/// ```
/// `a [M, K]` and `b [N, K]` E4M3, both K-major (row-major, K contiguous), 16-byte aligned rows;
/// `sa` per-token-group scales in `sa_layout` (as [`quantize_per_token_group`] writes them; M-major
/// is the layout the kernel reads fastest); `sb [⌈N/128⌉, K/128]` (as [`quantize_per_block`]
/// writes it); `d [M, N]` bf16 with an even row stride. Any M, N ≥ 1; K a multiple of 128.
/// Asynchronous on `stream`. `Error::Unsupported` on GPUs other than compute capability 9.0.
///
/// Capturable in a CUDA graph once it ran outside capture with the same `a` and `b` (addresses,
/// shapes, strides): that call writes their tensor maps to the device, where the captured launch
/// finds them at every replay; under capture without it, `Error::GraphCapture`.
#[allow(clippy::too_many_arguments)]
pub fn blockwise_gemm<A, SA, B, SB, D>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    a: &Matrix<F8E4M3, A>,
    sa: &SA,
    sa_layout: ScaleLayout,
    b: &Matrix<F8E4M3, B>,
    sb: &Matrix<f32, SB>,
    d: &mut Matrix<half::bf16, D>,
) -> Result<()>
where
    A: DevicePtr<F8E4M3>,
    SA: DevicePtr<f32>,
    B: DevicePtr<F8E4M3>,
    SB: DevicePtr<f32>,
    D: DevicePtrMut<half::bf16>,
{
    let f = lowp.function_with_smem("blockwise_gemm", "fp8_blockwise_gemm", "compute capability 9.0 (sm_90a: wgmma and TMA)", crate::abi::GEMM_SMEM_BYTES)?;
    lowp.check_stream(stream)?;
    lowp.check_buffer("a", a.buffer())?;
    lowp.check_buffer("sa", sa)?;
    lowp.check_buffer("b", b.buffer())?;
    lowp.check_buffer("sb", sb.buffer())?;
    lowp.check_buffer("d", d.buffer())?;
    let (mut ao, mut bo, mut dop) = (operand("a", a), operand("b", b), operand("d", d));
    let (sa_len, sbm) = (sa.len(), (sb.rows(), sb.cols(), sb.row_stride(), sb.span()));
    let (aa, _g1) = a.device_ptr(stream);
    let (saa, _g2) = sa.device_ptr(stream);
    let (ba, _g3) = b.device_ptr(stream);
    let (sba, _g4) = sb.device_ptr(stream);
    let (da, _g5) = d.device_ptr_mut(stream);
    (ao.addr, bo.addr, dop.addr) = (aa, ba, da);
    let sa_arg = group_scales(sa_layout, ao.rows, ao.cols, saa, sa_len)?;
    let sb_arg = ScaleArg { addr: sba, len: sbm.3, row_stride: sbm.2, col_stride: 1, rows: sbm.0, cols: sbm.1 };
    let p = gemm_plan(&GemmInput { a: ao, b: bo, d: dop, sa: sa_arg, sb: sb_arg })?;
    if p.rows == 0 || p.n == 0 {
        return Ok(());
    }
    let tiles = (p.rows.div_ceil(GEMM_BLOCK_M) as u64) * (p.n.div_ceil(GEMM_BLOCK_N) as u64);
    crate::grouped_gemm::launch_gemm(lowp, stream, "blockwise_gemm", &f, p, (aa, ao.cols, ao.rows, ao.stride), (ba, bo.cols, bo.rows, bo.stride), tiles)
}

#[cfg(test)]
#[path = "tests/fp8_plan.rs"]
mod tests;
