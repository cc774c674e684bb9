//! The Hopper GEMMs (sm_90a; device side: `kernels-gpu/src/gemm.rs`): the blockwise-scaled FP8
//! GEMM of DeepSeek-V3 ([`blockwise_fp8`]) and the grouped (MoE) GEMMs, one launch for all
//! experts, blockwise FP8 ([`grouped_fp8`]) or bf16 ([`grouped_bf16`]).
//!
//! ```text
//! dense:       out[m, n] (bf16) = Σ_k (x[m, k] · scales_x(m, k/128)) · (w[n, k] · scales_w(n/128, k/128))
//! grouped:     out[t] = x[t] · w[g]ᵀ for the rows t of expert g, w [E, N, K]
//!   contiguous (prefill):  x [T, K], tokens sorted by expert; ends[g] = cumulative end row (i32,
//!                          torch._grouped_mm's `offs`)
//!   masked (decode, EP):   x [E · max_m, K]; counts[g] valid rows of slab g; rows past the count
//!                          are neither read into results nor written
//! ```
//! The FP8 scales are those of [`crate::fp8`]'s quantizers: per-token-group activation scales
//! ([`ScaleLayout::RowMajor`] or [`ScaleLayout::MMajor`]) and per-128×128-block weight scales
//! (row-major). M-major activation scales with an `ld` that is a multiple of 4 (what
//! [`m_major_ld`](crate::m_major_ld) gives) and a 16-byte aligned base are loaded into shared
//! memory by the tensor memory accelerator with the operands, one k-block per pipeline stage;
//! other layouts are read from global memory by the math threads. Every operand is K-major (row-major, K
//! contiguous) with 16-byte aligned rows (the tensor memory accelerator's requirement); the
//! output is bf16 with an even row stride. Off compute capability 9.0 every op is
//! [`Error::Unsupported`].
//!
//! **CUDA graphs.** Each call encodes the tensor maps of its operands (and of TMA-loaded
//! activation scales and of the output) on the host and passes them by value as a kernel
//! parameter, which the TMA reads in place: no device memory is written for them and nothing is
//! kept between calls. A call can be captured in a CUDA graph as it is, with no warm-up: each
//! replay computes whatever the operands hold then, at the addresses the capture saw. (The first
//! call of a tile configuration loads its kernel, which under capture needs a driver of CUDA 12.3
//! or newer; with an older one, [`Lowp::load_kernels`] before capturing.) Group tables are read
//! on the device (no host sync). See `docs/kernels/gemm.md`.
//!
//! **Tile configurations.** Each call runs one of eight tile configurations, chosen from the
//! shapes, the SM count and the driver's occupancy (never from device data, so a call and its
//! captured replay agree): 64-row tiles with one math warpgroup when the groups are small (dense M ≤ 64;
//! masked `max_m` ≤ 64; contiguous at most 64 rows of `x` per expert on average), else 128-row
//! tiles with two; then 64, 112, 128 or 192 columns, whichever a model of the persistent grid
//! (its waves over the SMs times each tile's tensor-core and shared-memory time) rates fastest,
//! a narrower tile only when at least 1/32 faster. 112 columns fill the SMs where 128 leave
//! some idle (N = 7168: 64 tiles, not 56), 64 columns serve decode shapes, 192 columns cut the
//! tile count of wide outputs. 128-row tiles of 112 or 128 columns (and bf16's of 192) run in
//! clusters of 2 CTAs along N sharing their A tiles (TMA multicast) where the tiles fill the SMs
//! in pairs. FP8 calls with 64 × 64 tiles that leave SMs idle over a long K (decode shapes:
//! M ≤ 64, N = 2112, K = 7168) run in split-K clusters of 2, 4 or 8 CTAs, each computing a slice
//! of K of the same tile, then adding and storing its share of the tile's columns from every
//! CTA's sums, read from their shared memory (deterministic: in rank order); the split comes
//! from the same model with the driver's count of co-resident clusters, and groups of up to 128
//! rows take 64-row tiles where the model rates them faster. The environment variables
//! `LOWP_GEMM_BLOCK_M` (`64` or `128`), `LOWP_GEMM_BLOCK_N` (`64`, `112`, `128` or `192`),
//! `LOWP_GEMM_CLUSTER` (`1` or `2`) and `LOWP_GEMM_SPLIT_K` (`1`, `2`, `4` or `8`), read once
//! per process, force the tile rows, columns, cluster size or split of every call; another
//! value makes every GEMM fail with
//! [`Error::InvalidValue`].

mod launch;
mod plan;
mod tma;

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, DeviceSlice};
use half::bf16;

use crate::abi::GEMM_BLOCK_K;
use crate::context::Lowp;
use crate::dtype::{Element, F8E4M3};
use crate::error::{Error, Result};
use crate::flag::ErrorFlag;
use crate::fp8::plan::ScaleInput;
use crate::matrix::Scales;
use crate::matrix::{Matrix, MatrixBatch};
#[cfg(doc)]
use crate::scale::ScaleLayout;
use crate::validate::Operand;
use launch::{configure, gemm_function, launch_gemm};
use plan::{DenseInput, GroupedInput, Rows, Tiles, dense_plan, grouped_plan, tile_bound};

/// Error bit of [`ErrorFlag`]: a group bound read on the device was out of range (contiguous ends
/// decreasing or past the rows of `x`, masked counts outside `[0, max_m]`) and was clamped.
pub use crate::abi::GEMM_ERR_GROUP_BOUNDS as ERR_GROUP_BOUNDS;

/// Kernel entry points of this family (sm_90a only).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "fp8_blockwise_gemm",
    "fp8_blockwise_gemm_n64",
    "fp8_blockwise_gemm_n112",
    "fp8_blockwise_gemm_m64",
    "fp8_blockwise_gemm_m64_n64",
    "fp8_blockwise_gemm_m64_n112",
    "fp8_blockwise_gemm_m64_n192",
    "bf16_gemm",
    "bf16_gemm_n64",
    "bf16_gemm_n112",
    "bf16_gemm_n192",
    "bf16_gemm_m64",
    "bf16_gemm_m64_n64",
    "bf16_gemm_m64_n112",
    "bf16_gemm_m64_n192",
    "fp8_blockwise_gemm_c2",
    "fp8_blockwise_gemm_n112_c2",
    "bf16_gemm_c2",
    "bf16_gemm_n112_c2",
    "bf16_gemm_n192_c2",
    "fp8_blockwise_gemm_m64_n64_k2",
    "fp8_blockwise_gemm_m64_n64_k4",
    "fp8_blockwise_gemm_m64_n64_k8",
];

/// What every kernel of the family needs.
const NEEDS: &str = "compute capability 9.0 (sm_90a: wgmma and TMA)";

/// The kernel configuration of a GEMM call: its tiles, and the clusters its CTAs run in. Each
/// op picks one per call from the shapes (`*_config` says which); the `*_with` ops run a given
/// one, for instance the fastest of [`GemmConfig::all`] timed on the device (autotuning), and
/// ignore the `LOWP_GEMM_*` environment variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct GemmConfig {
    /// Rows of a tile: 64 (one math warpgroup) or 128 (two).
    pub block_m: usize,
    /// Columns of a tile: 64, 112, 128 or 192 (FP8: not with 128 rows).
    pub block_n: usize,
    /// CTAs per cluster along N sharing their A tiles by TMA multicast: 1, or 2 for 128-row
    /// tiles of 112 or 128 columns (and bf16's of 192).
    pub cluster: usize,
    /// CTAs per split-K cluster, each computing a slice of K of the same tile: 1, or 2, 4 or 8
    /// for FP8 64 × 64 tiles (with `cluster` 1).
    pub split_k: usize,
}

impl GemmConfig {
    /// Every configuration the FP8 (`fp8`) or bf16 GEMMs have a kernel for.
    pub fn all(fp8: bool) -> Vec<GemmConfig> {
        Tiles::all(fp8).into_iter().map(GemmConfig::from).collect()
    }

    /// The configuration's tiles, if its FP8 (`fp8`) or bf16 kernel exists: the one of
    /// [`Tiles::all`] it names.
    fn tiles(self, fp8: bool) -> Result<Tiles> {
        Tiles::all(fp8).into_iter().find(|&t| GemmConfig::from(t) == self).ok_or_else(|| Error::InvalidValue {
            arg: "config",
            expected: if fp8 { "one of GemmConfig::all(true)" } else { "one of GemmConfig::all(false)" },
            actual: self.to_string(),
        })
    }
}

impl From<Tiles> for GemmConfig {
    fn from(t: Tiles) -> Self {
        GemmConfig {
            block_m: t.block_m() as usize,
            block_n: t.block_n() as usize,
            cluster: t.cluster as usize,
            split_k: t.split as usize,
        }
    }
}

/// `128x112`; `128x128c2` (clusters of 2 along N); `64x64k4` (split-K clusters of 4).
impl std::fmt::Display for GemmConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.block_m, self.block_n)?;
        if self.cluster != 1 {
            write!(f, "c{}", self.cluster)?;
        }
        if self.split_k != 1 {
            write!(f, "k{}", self.split_k)?;
        }
        Ok(())
    }
}

/// The tiles of a call: `config`'s, or the heuristic's for its shapes (with the environment's
/// overrides).
#[allow(clippy::too_many_arguments)]
fn tiles_of(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    config: Option<GemmConfig>,
    rows: Rows,
    n: usize,
    k_blocks: u64,
    fp8: bool,
) -> Result<Tiles> {
    match config {
        Some(c) => c.tiles(fp8),
        None => configure(lowp, stream, op, rows, n, k_blocks, fp8),
    }
}

/// How the rows of a grouped GEMM's `x` are assigned to experts: a table of one `i32` per expert
/// in device memory (`B`: a `CudaSlice<i32>`, `CudaView` or `CudaViewMut`), read by the kernel.
///
/// Bounds out of range are clamped (nothing is read or written out of bounds) and set
/// [`ERR_GROUP_BOUNDS`] in the op's [`ErrorFlag`].
pub enum GroupLayout<'a, B> {
    /// Tokens sorted by expert: `ends[g]` is the cumulative end row of expert g (expert g has
    /// rows `ends[g-1]..ends[g]`, expert 0 starts at row 0); rows past the last end are not
    /// written.
    Contiguous {
        /// Cumulative end rows, one per expert, non-decreasing, at most the rows of `x`.
        ends: &'a B,
    },
    /// `x` holds one slab of `max_m` rows per expert: expert g has rows
    /// `g · max_m .. g · max_m + counts[g]`; the other rows of each slab are not written.
    Masked {
        /// Valid rows of each slab, in `[0, max_m]`.
        counts: &'a B,
        /// Rows per slab (`x` has `E · max_m` rows).
        max_m: usize,
    },
}

impl<B> std::fmt::Debug for GroupLayout<'_, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GroupLayout::Contiguous { .. } => write!(f, "GroupLayout::Contiguous"),
            GroupLayout::Masked { max_m, .. } => write!(f, "GroupLayout::Masked {{ max_m: {max_m} }}"),
        }
    }
}

impl<'a, B> GroupLayout<'a, B> {
    /// The table and the masked layout's `max_m`.
    fn parts(&self) -> (&'a B, Option<usize>) {
        match *self {
            GroupLayout::Contiguous { ends } => (ends, None),
            GroupLayout::Masked { counts, max_m } => (counts, Some(max_m)),
        }
    }
}

fn operand<T: Element, B: DeviceSlice<T>>(name: &'static str, t: &Matrix<T, B>, addr: u64) -> Operand {
    Operand { name, rows: t.rows(), cols: t.cols(), stride: t.row_stride(), addr, elem: std::mem::size_of::<T>() }
}

fn scale_input<B: DeviceSlice<f32>>(s: &Scales<f32, B>, addr: u64) -> ScaleInput {
    ScaleInput { layout: s.layout(), shape: s.shape(), addr, len: s.buffer().len() }
}

/// The blockwise-scaled FP8 GEMM of DeepSeek-V3 (sm_90a: wgmma with E4M3 operands, TMA),
/// asynchronous on `stream`:
///
/// ```text
/// out[m, n] (bf16) = Σ_k (x[m, k] · scales_x(m, k/128)) · (w[n, k] · scales_w(n/128, k/128))
/// ```
/// - `x [M, K]`, `w [N, K]`: E4M3, both K-major, 16-byte aligned bases and row strides;
/// - `scales_x [M, K/128]`: per-token-group scales in [`ScaleLayout::MMajor`] or
///   [`ScaleLayout::RowMajor`], as [`crate::fp8::quantize_per_token_group`] writes them (M-major
///   with `ld` a multiple of 4 and a 16-byte aligned base: loaded into shared memory by the TMA;
///   otherwise read from global memory);
/// - `scales_w [⌈N/128⌉, K/128]`: per-block scales, [`ScaleLayout::RowMajor`], as
///   [`crate::fp8::quantize_per_block`] writes them;
/// - `out [M, N]`: bf16, even row stride, overlapping no input.
///
/// Any M, N ≥ 1; K a positive multiple of 128. Another scale layout is `Error::Layout`;
/// `Error::Unsupported` on GPUs other than compute capability 9.0. Capturable in a CUDA graph,
/// with no call before the capture (see the module's documentation).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{F8E4M3, Lowp, Matrix, ScaleLayout, ScaleRounding, Scales, fp8, gemm, m_major_ld};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// # if lowp.arch() != lowp::Arch::Sm90a { return Ok(()); } // compute capability 9.0 only
/// let (m, n, k) = (64, 128, 128);
/// let x = Matrix::from_host(&stream, &vec![bf16::ONE; m * k], m, k)?;
/// let w = Matrix::from_host(&stream, &vec![bf16::from_f32(0.5); n * k], n, k)?;
/// // quantize both operands
/// let (mut xq, mut wq) = (Matrix::<F8E4M3>::zeros(&stream, m, k)?, Matrix::<F8E4M3>::zeros(&stream, n, k)?);
/// let mut scales_x = Scales::<f32>::zeros(&stream, m, k / 128, ScaleLayout::MMajor { ld: m_major_ld(m) })?;
/// let mut scales_w = Scales::<f32>::zeros(&stream, n.div_ceil(128), k / 128, ScaleLayout::RowMajor { ld: k / 128 })?;
/// fp8::quantize_per_token_group(&lowp, &stream, &x, ScaleRounding::Exact, &mut xq, &mut scales_x)?;
/// fp8::quantize_per_block(&lowp, &stream, &w, ScaleRounding::Exact, &mut wq, &mut scales_w)?;
/// let mut out = Matrix::<bf16>::zeros(&stream, m, n)?;
/// gemm::blockwise_fp8(&lowp, &stream, &xq, &scales_x, &wq, &scales_w, &mut out)?;
/// assert!(out.to_host(&stream)?.iter().all(|v| (v.to_f32() - 64.0).abs() <= 0.5)); // 128 · 1 · 0.5
/// # Ok(()) }
/// ```
pub fn blockwise_fp8<X, SX, W, SW, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &Matrix<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    blockwise_fp8_in(lowp, stream, None, x, scales_x, w, scales_w, out)
}

/// [`blockwise_fp8`] in the kernel configuration `config` (one of [`GemmConfig::all`]`(true)`,
/// else `Error::InvalidValue { arg: "config" }`, as is a configuration whose clusters the device
/// cannot hold at once) instead of the one it picks. Every configuration computes the same sums;
/// those with split-K clusters add the slices' partial sums in another order, so their bf16
/// results may differ slightly in rounding.
#[allow(clippy::too_many_arguments)]
pub fn blockwise_fp8_with<X, SX, W, SW, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &Matrix<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    config: GemmConfig,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    blockwise_fp8_in(lowp, stream, Some(config), x, scales_x, w, scales_w, out)
}

/// The kernel configuration [`blockwise_fp8`] runs for operands of the shapes of `x` and `w` on
/// this device (the `LOWP_GEMM_*` overrides included). Errors: `Unsupported` off compute
/// capability 9.0; `Shape` where K (the columns of `x`) is not a positive multiple of 128;
/// `InvalidValue` for a malformed `LOWP_GEMM_*` variable; `DeviceMismatch` for a stream of
/// another context; the driver's, loading a split-K kernel to ask how many of its clusters fit.
pub fn blockwise_fp8_config<X, W>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    w: &Matrix<F8E4M3, W>,
) -> Result<GemmConfig>
where
    X: DeviceSlice<F8E4M3>,
    W: DeviceSlice<F8E4M3>,
{
    let k_blocks = config_k_blocks(lowp, stream, "blockwise_fp8", "x", x.cols(), true)?;
    Ok(configure(lowp, stream, "blockwise_fp8", Rows::Dense(x.rows()), w.rows(), k_blocks, true)?.into())
}

#[allow(clippy::too_many_arguments)]
fn blockwise_fp8_in<X, SX, W, SW, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    config: Option<GemmConfig>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &Matrix<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    out: &mut Matrix<bf16, O>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    O: DevicePtrMut<bf16>,
{
    lowp.check_stream(stream)?;
    let k_blocks = (x.cols() / GEMM_BLOCK_K as usize) as u64;
    let tiles = tiles_of(lowp, stream, "blockwise_fp8", config, Rows::Dense(x.rows()), w.rows(), k_blocks, true)?;
    let f = gemm_function(lowp, "blockwise_fp8", tiles, true)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("scales_x", scales_x.buffer())?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("scales_w", scales_w.buffer())?;
    lowp.check_buffer("out", out.buffer())?;
    let out_shape = (out.rows(), out.cols(), out.row_stride());
    let (xa, _g1) = x.device_ptr(stream);
    let (sxa, _g2) = scales_x.device_ptr(stream);
    let (wa, _g3) = w.device_ptr(stream);
    let (swa, _g4) = scales_w.device_ptr(stream);
    let (oa, _g5) = out.device_ptr_mut(stream);
    let o = Operand { name: "out", rows: out_shape.0, cols: out_shape.1, stride: out_shape.2, addr: oa, elem: 2 };
    let (xo, wo) = (operand("x", x, xa), operand("w", w, wa));
    let input =
        DenseInput { x: xo, scales_x: scale_input(scales_x, sxa), w: wo, scales_w: scale_input(scales_w, swa), out: o };
    let p = dense_plan(&input)?;
    if p.rows == 0 || p.n == 0 {
        return Ok(());
    }
    let count = tile_bound(Rows::Dense(p.rows as usize), p.n as usize, tiles);
    launch_gemm(
        lowp,
        stream,
        "blockwise_fp8",
        &f,
        tiles,
        true,
        p,
        (xa, xo.cols, xo.rows, xo.stride),
        (wa, wo.cols, wo.rows, wo.stride),
        count,
    )
}

/// The grouped blockwise FP8 GEMM (sm_90a), asynchronous on `stream`: for each expert g and each
/// row t of its group,
///
/// ```text
/// out[t, n] (bf16) = Σ_k (x[t, k] · scales_x(t, k/128)) · (w[g, n, k] · scales_w(g · ⌈N/128⌉ + n/128, k/128))
/// ```
/// - `x [rows, K]`: E4M3, K-major, 16-byte aligned base and row stride;
/// - `scales_x [rows, K/128]`: per-token-group scales over every row of `x`, in
///   [`ScaleLayout::RowMajor`] or [`ScaleLayout::MMajor`] (M-major with `ld` a multiple of 4 and
///   a 16-byte aligned base: loaded into shared memory by the TMA, whatever the group layout;
///   otherwise read from global memory);
/// - `w [E, N, K]`: E4M3 weights, expert g's `[N, K]` matrix at `g · N · K`, 16-byte aligned;
/// - `scales_w [E · ⌈N/128⌉, K/128]`: each expert's per-block scales `[⌈N/128⌉, K/128]` stacked
///   (expert g's at scale row `g · ⌈N/128⌉`), [`ScaleLayout::RowMajor`] with any `ld`: what
///   [`crate::fp8::quantize_per_block`] writes for the `[E · N, K]` weights when N is a multiple
///   of 128;
/// - `groups`: which rows of `x` each expert takes ([`GroupLayout`], one `i32` per expert);
/// - `out [rows, N]`: bf16, even row stride; rows outside every group are not written;
/// - `error_flag`: gets [`ERR_GROUP_BOUNDS`] when a group bound was out of range.
///
/// K a positive multiple of 128; group sizes are arbitrary (0, 1, not multiples of 128).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{ErrorFlag, F8E4M3, Lowp, Matrix, MatrixBatch, Scales, gemm::{self, GroupLayout}};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// # if lowp.arch() != lowp::Arch::Sm90a { return Ok(()); } // compute capability 9.0 only
/// let (experts, rows, n, k) = (2, 64, 128, 128);
/// let (one, two) = (F8E4M3::from_bits(0x38), F8E4M3::from_bits(0x40)); // 1.0, 2.0
/// let x = Matrix::from_host(&stream, &vec![one; rows * k], rows, k)?;
/// let scales_x = Scales::row_major(stream.clone_htod(&vec![1.0f32 / 128.0; rows])?, rows, 1)?;
/// // expert 0's weights are 1.0, expert 1's 2.0
/// let w_host: Vec<F8E4M3> = (0..experts * n * k).map(|i| if i < n * k { one } else { two }).collect();
/// let w = MatrixBatch::from_host(&stream, &w_host, experts, n, k)?;
/// let scales_w = Scales::row_major(stream.clone_htod(&[1.0f32, 1.0])?, experts, 1)?;
/// let ends = stream.clone_htod(&[40i32, 64])?; // rows 0..40 to expert 0, 40..64 to expert 1
/// let mut out = Matrix::<bf16>::zeros(&stream, rows, n)?;
/// let mut flag = ErrorFlag::new(&stream)?;
/// gemm::grouped_fp8(&lowp, &stream, &x, &scales_x, &w, &scales_w, &GroupLayout::Contiguous { ends: &ends }, &mut out, Some(&mut flag))?;
/// let y = out.to_host(&stream)?;
/// assert_eq!((y[39 * n].to_f32(), y[40 * n].to_f32()), (1.0, 2.0));
/// assert_eq!(flag.read(&stream)?, 0);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn grouped_fp8<X, SX, W, SW, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &MatrixBatch<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    groups: &GroupLayout<'_, G>,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    grouped_fp8_in(lowp, stream, None, x, scales_x, w, scales_w, groups, out, error_flag)
}

/// [`grouped_fp8`] in the kernel configuration `config` (one of [`GemmConfig::all`]`(true)`
/// that the device holds, else `Error::InvalidValue { arg: "config" }`) instead of the one it
/// picks; see [`blockwise_fp8_with`].
#[allow(clippy::too_many_arguments)]
pub fn grouped_fp8_with<X, SX, W, SW, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &MatrixBatch<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    groups: &GroupLayout<'_, G>,
    config: GemmConfig,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    grouped_fp8_in(lowp, stream, Some(config), x, scales_x, w, scales_w, groups, out, error_flag)
}

/// The kernel configuration [`grouped_fp8`] runs for operands of the shapes of `x` and `w` in
/// the layout of `groups` on this device (the `LOWP_GEMM_*` overrides included). Errors as
/// [`blockwise_fp8_config`]'s (K: the last dimension of `w`).
pub fn grouped_fp8_config<X, W, G>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<F8E4M3, X>,
    w: &MatrixBatch<F8E4M3, W>,
    groups: &GroupLayout<'_, G>,
) -> Result<GemmConfig>
where
    X: DeviceSlice<F8E4M3>,
    W: DeviceSlice<F8E4M3>,
{
    grouped_config(lowp, stream, "grouped_fp8", x.rows(), w.shape(), groups, true)
}

/// The k-blocks (128 bytes of K) of a call asking for its configuration, after the checks the op
/// would make first: the stream's context, the device (compute capability 9.0) and K (`arg`'s,
/// a positive multiple of 128 FP8 (`fp8`) or 64 bf16 elements).
fn config_k_blocks(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    arg: &'static str,
    k: usize,
    fp8: bool,
) -> Result<u64> {
    lowp.check_stream(stream)?;
    if lowp.arch() != crate::Arch::Sm90a {
        return Err(lowp.unsupported(op, NEEDS));
    }
    let per_block = if fp8 { GEMM_BLOCK_K as usize } else { GEMM_BLOCK_K as usize / 2 };
    if k == 0 || k % per_block != 0 {
        return Err(Error::Shape {
            arg,
            expected: format!("K a positive multiple of {per_block}"),
            actual: format!("K = {k}"),
        });
    }
    Ok((k / per_block) as u64)
}

/// The configuration of a grouped call.
fn grouped_config<G>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    x_rows: usize,
    [experts, n, k]: [usize; 3],
    groups: &GroupLayout<'_, G>,
    fp8: bool,
) -> Result<GemmConfig> {
    let k_blocks = config_k_blocks(lowp, stream, op, "w", k, fp8)?;
    let rows = group_rows(x_rows, experts, groups.parts().1);
    Ok(configure(lowp, stream, op, rows, n, k_blocks, fp8)?.into())
}

#[allow(clippy::too_many_arguments)]
fn grouped_fp8_in<X, SX, W, SW, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    config: Option<GemmConfig>,
    x: &Matrix<F8E4M3, X>,
    scales_x: &Scales<f32, SX>,
    w: &MatrixBatch<F8E4M3, W>,
    scales_w: &Scales<f32, SW>,
    groups: &GroupLayout<'_, G>,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<F8E4M3>,
    SX: DevicePtr<f32>,
    W: DevicePtr<F8E4M3>,
    SW: DevicePtr<f32>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    let (table, max_m) = groups.parts();
    let rows = group_rows(x.rows(), w.shape()[0], max_m);
    lowp.check_stream(stream)?;
    let k_blocks = (w.shape()[2] / GEMM_BLOCK_K as usize) as u64;
    let tiles = tiles_of(lowp, stream, "grouped_fp8", config, rows, w.shape()[1], k_blocks, true)?;
    let f = gemm_function(lowp, "grouped_fp8", tiles, true)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("scales_x", scales_x.buffer())?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("scales_w", scales_w.buffer())?;
    lowp.check_buffer("groups", table)?;
    lowp.check_buffer("out", out.buffer())?;
    let out_shape = (out.rows(), out.cols(), out.row_stride());
    let (xa, _g1) = x.device_ptr(stream);
    let (sxa, _g2) = scales_x.device_ptr(stream);
    let (wa, _g3) = w.device_ptr(stream);
    let (swa, _g4) = scales_w.device_ptr(stream);
    let (ta, _g5) = table.device_ptr(stream);
    let (oa, _g6) = out.device_ptr_mut(stream);
    let input = GroupedInput {
        x: operand("x", x, xa),
        w: w.shape(),
        w_addr: wa,
        out: Operand { name: "out", rows: out_shape.0, cols: out_shape.1, stride: out_shape.2, addr: oa, elem: 2 },
        groups_len: table.len(),
        max_m,
        scales: Some((scale_input(scales_x, sxa), scale_input(scales_w, swa))),
    };
    grouped_launch(lowp, stream, "grouped_fp8", &f, tiles, &input, ta, error_flag)
}

/// The grouped bf16 GEMM (sm_90a), asynchronous on `stream`: `out[t] = x[t] · w[g]ᵀ` for each
/// expert g and each row t of its group, bf16 in and out, f32 accumulation.
///
/// - `x [rows, K]`: bf16, K-major, 16-byte aligned base and row stride; K a positive multiple of
///   64;
/// - `w [E, N, K]`: bf16 weights, expert g's `[N, K]` matrix at `g · N · K`, 16-byte aligned;
/// - `groups`, `out`, `error_flag`: as [`grouped_fp8`].
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use lowp::half::bf16;
/// use lowp::{Lowp, Matrix, MatrixBatch, gemm::{self, GroupLayout}};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// # if lowp.arch() != lowp::Arch::Sm90a { return Ok(()); } // compute capability 9.0 only
/// let (experts, max_m, n, k) = (2, 64, 128, 64);
/// let x = Matrix::from_host(&stream, &vec![bf16::ONE; experts * max_m * k], experts * max_m, k)?;
/// let w = MatrixBatch::from_host(&stream, &vec![bf16::from_f32(0.5); experts * n * k], experts, n, k)?;
/// let counts = stream.clone_htod(&[64i32, 10])?; // slab 1 holds 10 valid rows
/// let poison = bf16::from_f32(-1.0);
/// let mut out = Matrix::from_host(&stream, &vec![poison; experts * max_m * n], experts * max_m, n)?;
/// gemm::grouped_bf16(&lowp, &stream, &x, &w, &GroupLayout::Masked { counts: &counts, max_m }, &mut out, None)?;
/// let y = out.to_host(&stream)?;
/// assert_eq!(y[(max_m + 9) * n].to_f32(), 32.0); // 64 · 1 · 0.5
/// assert_eq!(y[(max_m + 10) * n], poison); // past the count: not written
/// # Ok(()) }
/// ```
pub fn grouped_bf16<X, W, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<bf16, X>,
    w: &MatrixBatch<bf16, W>,
    groups: &GroupLayout<'_, G>,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<bf16>,
    W: DevicePtr<bf16>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    grouped_bf16_in(lowp, stream, None, x, w, groups, out, error_flag)
}

/// [`grouped_bf16`] in the kernel configuration `config` (one of [`GemmConfig::all`]`(false)`
/// that the device holds, else `Error::InvalidValue { arg: "config" }`) instead of the one it
/// picks.
#[allow(clippy::too_many_arguments)]
pub fn grouped_bf16_with<X, W, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<bf16, X>,
    w: &MatrixBatch<bf16, W>,
    groups: &GroupLayout<'_, G>,
    config: GemmConfig,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<bf16>,
    W: DevicePtr<bf16>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    grouped_bf16_in(lowp, stream, Some(config), x, w, groups, out, error_flag)
}

/// The kernel configuration [`grouped_bf16`] runs for operands of the shapes of `x` and `w` in
/// the layout of `groups` on this device (the `LOWP_GEMM_*` overrides included). Errors as
/// [`blockwise_fp8_config`]'s (K: the last dimension of `w`, a positive multiple of 64).
pub fn grouped_bf16_config<X, W, G>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    x: &Matrix<bf16, X>,
    w: &MatrixBatch<bf16, W>,
    groups: &GroupLayout<'_, G>,
) -> Result<GemmConfig>
where
    X: DeviceSlice<bf16>,
    W: DeviceSlice<bf16>,
{
    grouped_config(lowp, stream, "grouped_bf16", x.rows(), w.shape(), groups, false)
}

#[allow(clippy::too_many_arguments)]
fn grouped_bf16_in<X, W, G, O>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    config: Option<GemmConfig>,
    x: &Matrix<bf16, X>,
    w: &MatrixBatch<bf16, W>,
    groups: &GroupLayout<'_, G>,
    out: &mut Matrix<bf16, O>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    X: DevicePtr<bf16>,
    W: DevicePtr<bf16>,
    G: DevicePtr<i32>,
    O: DevicePtrMut<bf16>,
{
    let (table, max_m) = groups.parts();
    let rows = group_rows(x.rows(), w.shape()[0], max_m);
    lowp.check_stream(stream)?;
    // k-blocks of 128 bytes: 64 bf16 (K is unchecked here: not doubled, which could overflow)
    let k_blocks = (w.shape()[2] / (GEMM_BLOCK_K as usize / 2)) as u64;
    let tiles = tiles_of(lowp, stream, "grouped_bf16", config, rows, w.shape()[1], k_blocks, false)?;
    let f = gemm_function(lowp, "grouped_bf16", tiles, false)?;
    lowp.check_buffer("x", x.buffer())?;
    lowp.check_buffer("w", w.buffer())?;
    lowp.check_buffer("groups", table)?;
    lowp.check_buffer("out", out.buffer())?;
    let out_shape = (out.rows(), out.cols(), out.row_stride());
    let (xa, _g1) = x.device_ptr(stream);
    let (wa, _g2) = w.device_ptr(stream);
    let (ta, _g3) = table.device_ptr(stream);
    let (oa, _g4) = out.device_ptr_mut(stream);
    let input = GroupedInput {
        x: operand("x", x, xa),
        w: w.shape(),
        w_addr: wa,
        out: Operand { name: "out", rows: out_shape.0, cols: out_shape.1, stride: out_shape.2, addr: oa, elem: 2 },
        groups_len: table.len(),
        max_m,
        scales: None,
    };
    grouped_launch(lowp, stream, "grouped_bf16", &f, tiles, &input, ta, error_flag)
}

/// The rows of a grouped call as the tile heuristic sees them.
fn group_rows(rows: usize, experts: usize, max_m: Option<usize>) -> Rows {
    match max_m {
        Some(max_m) => Rows::Masked { experts, max_m },
        None => Rows::Contiguous { rows, experts },
    }
}

/// Validates a grouped call whose buffers are resolved (their guards alive in the caller) and
/// launches it in the configuration `tiles` (whose kernel `f` is).
fn grouped_launch(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: &'static str,
    f: &cudarc::driver::CudaFunction,
    tiles: plan::Tiles,
    input: &GroupedInput,
    table: u64,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()> {
    let mut p = grouped_plan(input)?;
    let (flag, _guard) = ErrorFlag::device_addr(error_flag, lowp, stream)?;
    (p.group_ends, p.error_flag) = (table, flag);
    let (x, [experts, n, k]) = (input.x, input.w);
    if x.rows == 0 {
        return Ok(());
    }
    let e = x.elem;
    let a = (x.addr, x.cols * e, x.rows, x.stride * e);
    let b = (input.w_addr, k * e, experts * n, k * e);
    let bound = tile_bound(group_rows(x.rows, experts, input.max_m), n, tiles);
    launch_gemm(lowp, stream, op, f, tiles, input.scales.is_some(), p, a, b, bound)
}

#[cfg(test)]
#[path = "../tests/gemm_plan.rs"]
mod tests;
