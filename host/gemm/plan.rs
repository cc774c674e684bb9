//! Validation of the Hopper GEMMs (pure: unit-tested without a GPU): shapes, TMA alignments,
//! scale layouts and extents, group tables and overlaps, into the kernel's parameters.

use crate::abi::{
    GEMM_BLOCK_K, GEMM_BLOCK_M, GEMM_BLOCK_M_SMALL, GEMM_BLOCK_N, GEMM_SMEM_BYTES_BF16, GEMM_SMEM_BYTES_BF16_SMALL,
    GEMM_SMEM_BYTES_FP8, GEMM_SMEM_BYTES_FP8_SMALL, GEMM_THREADS, GEMM_THREADS_SMALL, GemmParams,
};
use crate::error::{Error, Result};
use crate::fp8::GROUP;
use crate::fp8::plan::{Accepts, ScaleArg, ScaleInput, place};
use crate::validate::{Operand, overlap};

/// Row-major operands of a dense blockwise FP8 GEMM, device addresses resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DenseInput {
    pub x: Operand,
    pub scales_x: ScaleInput,
    pub w: Operand,
    pub scales_w: ScaleInput,
    pub out: Operand,
}

/// `Alignment` unless the operand's base and row stride are multiples of `bytes`.
fn aligned(o: &Operand, bytes: u64) -> Result<()> {
    if !o.aligned(bytes) {
        let actual = if o.addr % bytes != 0 { o.addr } else { (o.stride * o.elem) as u64 };
        return Err(Error::Alignment { arg: o.name, required: bytes as usize, actual });
    }
    Ok(())
}

/// `Shape` for a dimension the kernel's 32-bit indices cannot hold.
fn below_2_31(dims: &[(&'static str, usize)]) -> Result<()> {
    for &(arg, v) in dims {
        if v > i32::MAX as usize {
            return Err(Error::Shape { arg, expected: "dimensions below 2^31".to_string(), actual: v.to_string() });
        }
    }
    Ok(())
}

/// `Aliasing` if `out` overlaps any of `inputs` (byte ranges).
fn out_disjoint(out: &Operand, inputs: &[(&'static str, (u64, u64))]) -> Result<()> {
    if out.rows == 0 || out.cols == 0 {
        return Ok(());
    }
    for &(other, r) in inputs {
        if overlap(out.range(), r) {
            return Err(Error::Aliasing { arg: out.name, other });
        }
    }
    Ok(())
}

/// Whether the producer can TMA-load the activation scales `sa` into shared memory: M-major
/// (rows contiguous) with a column stride (`ld`) a multiple of 4 f32 and a 16-byte aligned base,
/// the TMA's 16-byte alignment of global addresses and strides. Otherwise (row-major, another
/// `ld`, another base) the math threads read them from global memory.
pub(crate) fn scales_by_tma(sa: &ScaleArg) -> bool {
    sa.row_stride == 1 && sa.col_stride % 4 == 0 && sa.addr % 16 == 0
}

/// Validates a dense blockwise GEMM and fills the parameters but the tensor-map address.
pub(crate) fn dense_plan(g: &DenseInput) -> Result<GemmParams> {
    let (a, b, out) = (g.x, g.w, g.out);
    let (m, n, k) = (a.rows, b.rows, a.cols);
    if k == 0 || k % GROUP != 0 {
        return Err(Error::Shape {
            arg: a.name,
            expected: format!("K a positive multiple of {GROUP}"),
            actual: format!("K = {k}"),
        });
    }
    if b.cols != k {
        return Err(Error::Shape {
            arg: b.name,
            expected: format!("[N, K = {k}] (K-major like a)"),
            actual: format!("[{}, {}]", b.rows, b.cols),
        });
    }
    if out.rows != m || out.cols != n {
        return Err(Error::Shape {
            arg: out.name,
            expected: format!("[M, N] = [{m}, {n}]"),
            actual: format!("[{}, {}]", out.rows, out.cols),
        });
    }
    below_2_31(&[(a.name, m), (b.name, n), (a.name, k)])?;
    // TMA: 16-byte aligned bases and row strides.
    aligned(&a, 16)?;
    aligned(&b, 16)?;
    // The epilogue stores bf16 pairs: 4-byte aligned base, even row stride.
    aligned(&out, 4)?;
    let sa = place("scales_x", g.scales_x, [m, k / GROUP], "M, K/128", Accepts::RowOrMMajor)?;
    let sb = place("scales_w", g.scales_w, [n.div_ceil(GROUP), k / GROUP], "⌈N/128⌉, K/128", Accepts::RowMajor)?;
    out_disjoint(
        &out,
        &[(a.name, a.range()), (b.name, b.range()), ("scales_x", sa.range()), ("scales_w", sb.range())],
    )?;
    Ok(GemmParams {
        tensor_maps: 0,
        sa: sa.addr,
        sa_row_stride: sa.row_stride as u64,
        sa_col_stride: sa.col_stride as u64,
        sb: sb.addr,
        sb_stride: sb.row_stride as u64,
        sb_group_stride: 0,
        d: out.addr,
        d_stride: out.stride as u64,
        group_ends: 0,
        error_flag: 0,
        rows: m as u32,
        n: n as u32,
        k: k as u32,
        groups: 1,
        max_m: 0,
        group_m: 8,
        sa_tma: scales_by_tma(&sa) as u32,
        _pad: 0,
    })
}

/// The operands of a grouped call, device addresses resolved.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupedInput {
    /// `[rows, K]`, elements of `x.elem` bytes (2: bf16, 1: E4M3).
    pub x: Operand,
    /// The weights `[E, N, K]`, contiguous, at `w_addr`.
    pub w: [usize; 3],
    pub w_addr: u64,
    pub out: Operand,
    /// Entries of the group table.
    pub groups_len: usize,
    /// The masked layout's rows per slab; `None` for the contiguous layout.
    pub max_m: Option<usize>,
    /// FP8: the scales of `x` and of the weights.
    pub scales: Option<(ScaleInput, ScaleInput)>,
}

/// Validates a grouped GEMM and fills the parameters but the tensor-map, group-table and
/// error-flag addresses.
pub(crate) fn grouped_plan(s: &GroupedInput) -> Result<GemmParams> {
    let (x, out) = (s.x, s.out);
    let [experts, n, wk] = s.w;
    let (rows, k, elem) = (x.rows, x.cols, x.elem);
    if experts == 0 || n == 0 {
        return Err(Error::Shape {
            arg: "w",
            expected: "[E, N, K] with E, N >= 1".into(),
            actual: format!("[{experts}, {n}, {wk}]"),
        });
    }
    let k_align = GEMM_BLOCK_K as usize / elem;
    if k == 0 || k % k_align != 0 {
        return Err(Error::Shape {
            arg: x.name,
            expected: format!("K a positive multiple of {k_align}"),
            actual: format!("K = {k}"),
        });
    }
    if wk != k {
        return Err(Error::Shape {
            arg: "w",
            expected: format!("[E, N, K = {k}] (K like x)"),
            actual: format!("[{experts}, {n}, {wk}]"),
        });
    }
    if out.rows != rows || out.cols != n {
        return Err(Error::Shape {
            arg: out.name,
            expected: format!("[{rows}, {n}]"),
            actual: format!("[{}, {}]", out.rows, out.cols),
        });
    }
    if s.groups_len != experts {
        return Err(Error::Shape {
            arg: "groups",
            expected: format!("{experts} entries (one per expert)"),
            actual: s.groups_len.to_string(),
        });
    }
    if let Some(max_m) = s.max_m {
        if experts.checked_mul(max_m) != Some(rows) {
            return Err(Error::Shape {
                arg: x.name,
                expected: format!("E · max_m = {experts} · {max_m} rows (masked layout)"),
                actual: format!("{rows} rows"),
            });
        }
    }
    let w_rows = experts.saturating_mul(n);
    below_2_31(&[(x.name, rows), ("w", w_rows), ("w", k)])?;
    let w = Operand { name: "w", rows: w_rows, cols: k, stride: k, addr: s.w_addr, elem };
    aligned(&x, 16)?;
    aligned(&w, 16)?;
    aligned(&out, 4)?;
    let mut inputs = vec![(x.name, x.range()), (w.name, w.range())];
    let (mut sa, mut sb) = (None::<ScaleArg>, None::<ScaleArg>);
    if let Some((scales_x, scales_w)) = s.scales {
        let (kb, nb) = (k / GROUP, n.div_ceil(GROUP));
        let a = place("scales_x", scales_x, [rows, kb], "rows of x, K/128", Accepts::RowOrMMajor)?;
        let b = place("scales_w", scales_w, [experts * nb, kb], "E · ⌈N/128⌉, K/128", Accepts::RowMajor)?;
        inputs.extend([("scales_x", a.range()), ("scales_w", b.range())]);
        (sa, sb) = (Some(a), Some(b));
    }
    out_disjoint(&out, &inputs)?;
    let nb = n.div_ceil(GROUP);
    Ok(GemmParams {
        tensor_maps: 0,
        sa: sa.map_or(0, |a| a.addr),
        sa_row_stride: sa.map_or(0, |a| a.row_stride as u64),
        sa_col_stride: sa.map_or(0, |a| a.col_stride as u64),
        sb: sb.map_or(0, |b| b.addr),
        sb_stride: sb.map_or(0, |b| b.row_stride as u64),
        sb_group_stride: sb.map_or(0, |b| (nb * b.row_stride) as u64),
        d: out.addr,
        d_stride: out.stride as u64,
        group_ends: 0,
        error_flag: 0,
        rows: rows as u32,
        n: n as u32,
        k: k as u32,
        groups: experts as u32,
        max_m: s.max_m.unwrap_or(0) as u32,
        group_m: 8,
        sa_tma: sa.is_some_and(|a| scales_by_tma(&a)) as u32,
        _pad: 0,
    })
}

/// The kernel configuration of a call: tile rows, and with them the entry point, the threads and
/// the shared memory (`kernels-gpu/src/gemm.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tiles {
    /// 128-row tiles, two math warpgroups (384 threads), 6 pipeline stages (FP8) or 7 (bf16).
    M128,
    /// 64-row tiles, one math warpgroup (256 threads), 9 pipeline stages.
    M64,
}

impl Tiles {
    pub fn block_m(self) -> u32 {
        match self {
            Tiles::M128 => GEMM_BLOCK_M,
            Tiles::M64 => GEMM_BLOCK_M_SMALL,
        }
    }
    pub fn threads(self) -> u32 {
        match self {
            Tiles::M128 => GEMM_THREADS,
            Tiles::M64 => GEMM_THREADS_SMALL,
        }
    }
    /// The dynamic shared memory of the FP8 (`fp8`) or bf16 kernel.
    pub fn smem_bytes(self, fp8: bool) -> u32 {
        match (self, fp8) {
            (Tiles::M128, true) => GEMM_SMEM_BYTES_FP8,
            (Tiles::M64, true) => GEMM_SMEM_BYTES_FP8_SMALL,
            (Tiles::M128, false) => GEMM_SMEM_BYTES_BF16,
            (Tiles::M64, false) => GEMM_SMEM_BYTES_BF16_SMALL,
        }
    }
    /// The entry point: FP8 (QGMMA) or bf16 (HGMMA).
    pub fn kernel(self, fp8: bool) -> &'static str {
        match (self, fp8) {
            (Tiles::M128, true) => "fp8_blockwise_gemm",
            (Tiles::M64, true) => "fp8_blockwise_gemm_m64",
            (Tiles::M128, false) => "bf16_gemm",
            (Tiles::M64, false) => "bf16_gemm_m64",
        }
    }
}

/// Rows per group at or below which a call runs 64-row tiles.
pub(crate) const SMALL_M: usize = 64;

/// The configuration of a call: `forced` (from `LOWP_GEMM_BLOCK_M`) if set, else 64-row tiles
/// when the groups are small enough that a 128-row tile would leave half its rows (and one of its
/// two math warpgroups) idle:
/// - dense: M ≤ 64;
/// - masked: `max_m` ≤ 64 (no group has more rows);
/// - contiguous: rows of `x` ≤ 64 per expert on average (`rows ≤ 64 · E`); each group then
///   wastes on average at least half of a 128-row tile, at most half of a 64-row one.
///
/// Otherwise 128-row tiles: each B tile loaded feeds twice the rows.
pub(crate) fn choose_tiles(rows: usize, experts: usize, max_m: Option<usize>, forced: Option<Tiles>) -> Tiles {
    if let Some(t) = forced {
        return t;
    }
    let small = match max_m {
        Some(m) => m <= SMALL_M,
        None => rows <= SMALL_M.saturating_mul(experts.max(1)),
    };
    if small { Tiles::M64 } else { Tiles::M128 }
}

/// The environment variable that overrides [`choose_tiles`] for every GEMM of the process.
pub(crate) const TILES_VAR: &str = "LOWP_GEMM_BLOCK_M";

/// Parses the value of [`TILES_VAR`]: unset or empty, the heuristic; `64` or `128`, that
/// configuration; anything else `InvalidValue`.
pub(crate) fn parse_tiles(value: Option<&str>) -> Result<Option<Tiles>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("64") => Ok(Some(Tiles::M64)),
        Some("128") => Ok(Some(Tiles::M128)),
        Some(v) => Err(Error::InvalidValue { arg: TILES_VAR, expected: "64, 128 or unset", actual: v.to_string() }),
    }
}

/// Upper bound of the output tiles of all groups (`block_m` rows each).
pub(crate) fn tile_bound(rows: usize, experts: usize, n: usize, max_m: Option<usize>, block_m: u32) -> u64 {
    let (tiles_n, bm) = (n.div_ceil(GEMM_BLOCK_N as usize) as u64, block_m as usize);
    let tiles_m = match max_m {
        Some(m) => experts as u64 * m.div_ceil(bm) as u64,
        None => rows.div_ceil(bm) as u64 + experts as u64,
    };
    tiles_m * tiles_n
}
