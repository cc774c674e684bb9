//! Validation of the Hopper GEMMs (pure: unit-tested without a GPU): shapes, TMA alignments,
//! scale layouts and extents, group tables and overlaps, into the kernel's parameters.

use crate::abi::{
    GEMM_BLOCK_K, GEMM_BLOCK_M, GEMM_BLOCK_M_SMALL, GEMM_BLOCK_NS, GEMM_SPLITS, GemmParams, gemm_has_configuration,
    gemm_smem_bytes, gemm_threads,
};
use crate::error::{Error, Result};
use crate::fp8::GROUP;
use crate::fp8::plan::{Accepts, ScaleArg, ScaleInput, place};
use crate::gemm::tma::TMA_MAX_STRIDE;
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

/// `Alignment` unless the operand's base and row stride are multiples of `bytes`; `Shape` for a
/// row stride of more bytes than 64 bits count.
fn aligned(o: &Operand, bytes: u64) -> Result<()> {
    let Some(stride) = o.stride_bytes() else {
        return Err(Error::Shape {
            arg: o.name,
            expected: "a row stride whose bytes fit in 64 bits".into(),
            actual: format!("{} elements of {} bytes", o.stride, o.elem),
        });
    };
    if !o.aligned(bytes) {
        let actual = if o.addr % bytes != 0 { o.addr } else { stride };
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
    let range = out.range()?;
    for &(other, r) in inputs {
        if overlap(range, r) {
            return Err(Error::Aliasing { arg: out.name, other });
        }
    }
    Ok(())
}

/// Whether the producer can TMA-load the activation scales `sa` into shared memory: M-major
/// (rows contiguous) with a column stride (`ld`) a multiple of 4 f32 and below 2^40 bytes and a
/// 16-byte aligned base, the TMA's 16-byte alignment of global addresses and strides and its
/// bound on strides. Otherwise (row-major, another `ld`, another base) the math threads read them
/// from global memory.
pub(crate) fn scales_by_tma(sa: &ScaleArg) -> bool {
    sa.row_stride == 1 && sa.col_stride % 4 == 0 && (sa.col_stride as u64) < TMA_MAX_STRIDE / 4 && sa.addr % 16 == 0
}

/// Whether the epilogue may store D with the TMA: its base and row stride are 16-byte aligned and
/// the row stride below 2^40 bytes (a tensor map's requirements). The kernel then TMA-stores every
/// tile of a dense GEMM and, of a grouped one, each warpgroup's 64 rows that lie wholly inside
/// their group; the math threads store the rest (and everything when D is not aligned).
pub(crate) fn output_by_tma(out: &Operand) -> bool {
    out.aligned(16) && out.stride_bytes().is_some_and(|s| s < TMA_MAX_STRIDE)
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
    // The epilogue stores D with the TMA where D is 16-byte aligned (`output_by_tma`), else in
    // 16-byte chunks, bf16 pairs and singles: a 4-byte aligned base and an even row stride.
    aligned(&out, 4)?;
    let sa = place("scales_x", g.scales_x, [m, k / GROUP], "M, K/128", Accepts::RowOrMMajor)?;
    let sb = place("scales_w", g.scales_w, [n.div_ceil(GROUP), k / GROUP], "⌈N/128⌉, K/128", Accepts::RowMajor)?;
    out_disjoint(
        &out,
        &[(a.name, a.range()?), (b.name, b.range()?), ("scales_x", sa.range()), ("scales_w", sb.range())],
    )?;
    Ok(GemmParams {
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
        d_tma: output_by_tma(&out) as u32,
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
    let mut inputs = vec![(x.name, x.range()?), (w.name, w.range()?)];
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
        sa: sa.map_or(0, |a| a.addr),
        sa_row_stride: sa.map_or(0, |a| a.row_stride as u64),
        sa_col_stride: sa.map_or(0, |a| a.col_stride as u64),
        sb: sb.map_or(0, |b| b.addr),
        sb_stride: sb.map_or(0, |b| b.row_stride as u64),
        // Read for experts past the first only, whose scale rows `place` has checked.
        sb_group_stride: sb.map_or(0, |b| nb.saturating_mul(b.row_stride) as u64),
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
        d_tma: output_by_tma(&out) as u32,
    })
}

/// Rows of a configuration's tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockM {
    /// 128-row tiles, two math warpgroups (384 threads).
    M128,
    /// 64-row tiles, one math warpgroup (256 threads).
    M64,
}

/// Columns of a configuration's tiles (rows of its B boxes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BlockN {
    N64,
    N112,
    N128,
    N192,
}

impl BlockN {
    /// The index of the width in `GEMM_BLOCK_NS`.
    fn index(self) -> usize {
        self as usize
    }
}

/// The kernel configuration of a call: tile rows and columns, and with them the entry point, the
/// threads and the shared memory (`kernels-gpu/src/gemm.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tiles {
    pub m: BlockM,
    pub n: BlockN,
    /// CTAs per cluster along N (1, or 2: pairs of CTAs sharing their A tiles by TMA multicast;
    /// see [`choose_cluster`]).
    pub cluster: u32,
    /// CTAs per split-K cluster (1, or 2, 4, 8: each CTA of a cluster computes a slice of K of
    /// the same tile; see [`choose_split`]). At most one of `cluster` and `split` exceeds 1.
    pub split: u32,
}

/// Entry points by element kind (FP8, bf16), tile rows (128, 64) and [`BlockN`]; FP8 has no
/// 128 × 192 configuration (`gemm_has_configuration`), whose entry is never looked up.
const KERNELS: [[[&str; 4]; 2]; 2] = [
    [
        ["fp8_blockwise_gemm_n64", "fp8_blockwise_gemm_n112", "fp8_blockwise_gemm", ""],
        [
            "fp8_blockwise_gemm_m64_n64",
            "fp8_blockwise_gemm_m64_n112",
            "fp8_blockwise_gemm_m64",
            "fp8_blockwise_gemm_m64_n192",
        ],
    ],
    [
        ["bf16_gemm_n64", "bf16_gemm_n112", "bf16_gemm", "bf16_gemm_n192"],
        ["bf16_gemm_m64_n64", "bf16_gemm_m64_n112", "bf16_gemm_m64", "bf16_gemm_m64_n192"],
    ],
];

/// The clustered entry points (2 CTAs along N), with 128-row tiles, by element kind (FP8, bf16)
/// and [`BlockN`]: FP8 of 112 and 128 columns, bf16 of 112, 128 and 192; empty where there is
/// none ([`Tiles::clusters`]).
const KERNELS_C2: [[&str; 4]; 2] = [
    ["", "fp8_blockwise_gemm_n112_c2", "fp8_blockwise_gemm_c2", ""],
    ["", "bf16_gemm_n112_c2", "bf16_gemm_c2", "bf16_gemm_n192_c2"],
];

/// The split-K entry points, FP8 with 64 × 64 tiles, by split (2, 4, 8: `GEMM_SPLITS`).
const KERNELS_SPLIT: [&str; 3] =
    ["fp8_blockwise_gemm_m64_n64_k2", "fp8_blockwise_gemm_m64_n64_k4", "fp8_blockwise_gemm_m64_n64_k8"];

impl Tiles {
    /// Whether the configuration (tile rows and columns) has a clustered kernel: 128-row tiles of
    /// 112 or 128 columns (and bf16's 192), the configurations compute-bound shapes run.
    pub fn clusters(self, fp8: bool) -> bool {
        self.m == BlockM::M128 && !KERNELS_C2[usize::from(!fp8)][self.n.index()].is_empty()
    }
    /// Whether the configuration (tile rows and columns) has split-K kernels: FP8 with 64 × 64
    /// tiles, the configuration of decode shapes whose tiles underfill the SMs.
    pub fn splits(self, fp8: bool) -> bool {
        fp8 && self.m == BlockM::M64 && self.n == BlockN::N64
    }
    /// CTAs per cluster of the launch (1 without clusters).
    pub fn ctas(self) -> u32 {
        self.cluster * self.split
    }
    pub fn block_m(self) -> u32 {
        match self.m {
            BlockM::M128 => GEMM_BLOCK_M,
            BlockM::M64 => GEMM_BLOCK_M_SMALL,
        }
    }
    pub fn block_n(self) -> u32 {
        GEMM_BLOCK_NS[self.n.index()]
    }
    pub fn threads(self) -> u32 {
        gemm_threads(self.block_m())
    }
    /// The dynamic shared memory of the FP8 (`fp8`) or bf16 kernel: its stages fill the budget.
    pub fn smem_bytes(self, fp8: bool) -> u32 {
        gemm_smem_bytes(self.block_m(), self.block_n(), fp8, self.split)
    }
    /// Whether the FP8 (`fp8`) or bf16 kernel of this configuration exists.
    pub fn exists(self, fp8: bool) -> bool {
        gemm_has_configuration(self.block_m(), self.block_n(), fp8)
    }
    /// The entry point: FP8 (QGMMA) or bf16 (HGMMA); empty where the configuration does not
    /// [`exist`](Self::exists) ([`choose_tiles`] never returns one).
    pub fn kernel(self, fp8: bool) -> &'static str {
        if self.split > 1 && self.splits(fp8) {
            if let Some(i) = GEMM_SPLITS.iter().position(|&s| s == self.split) {
                return KERNELS_SPLIT[i];
            }
        }
        if self.cluster == 2 && self.clusters(fp8) {
            return KERNELS_C2[usize::from(!fp8)][self.n.index()];
        }
        KERNELS[usize::from(!fp8)][usize::from(self.m == BlockM::M64)][self.n.index()]
    }
    /// The rows of A's TMA boxes: the tile's, or half of them in a cluster of 2 (each CTA loads
    /// half and multicasts it to both).
    pub fn a_box_rows(self) -> u32 {
        self.block_m() / self.cluster
    }
    /// Whether the FP8 (`fp8`) or bf16 kernel of this whole configuration exists: the tiles, and
    /// a cluster of 2 along N or a split-K cluster (not both) only where the tiles have one.
    pub fn runs(self, fp8: bool) -> bool {
        let cluster = self.cluster == 1 || (self.cluster == 2 && self.clusters(fp8) && self.split == 1);
        let split = self.split == 1 || (GEMM_SPLITS.contains(&self.split) && self.splits(fp8) && self.cluster == 1);
        self.exists(fp8) && cluster && split
    }
    /// Every configuration whose FP8 (`fp8`) or bf16 kernel exists ([`runs`](Self::runs)): by
    /// tile rows (128, 64), tile columns, then clusters along N and split-K clusters.
    pub fn all(fp8: bool) -> Vec<Tiles> {
        let mut v = Vec::new();
        for m in [BlockM::M128, BlockM::M64] {
            for n in [BlockN::N64, BlockN::N112, BlockN::N128, BlockN::N192] {
                for (cluster, split) in [(1, 1), (2, 1), (1, 2), (1, 4), (1, 8)] {
                    let t = Tiles { m, n, cluster, split };
                    if t.runs(fp8) {
                        v.push(t);
                    }
                }
            }
        }
        v
    }
}

/// The rows of a call as the tile heuristic sees them (shapes only, never device data).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// A dense GEMM of M rows.
    Dense(usize),
    /// A grouped GEMM over `rows` rows of x, in groups of unknown sizes.
    Contiguous { rows: usize, experts: usize },
    /// A grouped GEMM of `experts` slabs of `max_m` rows.
    Masked { experts: usize, max_m: usize },
}

/// Rows per group at or below which a call runs 64-row tiles.
pub(crate) const SMALL_M: usize = 64;

/// The tile rows of a call: 64 when the groups are small enough that a 128-row tile would leave
/// half its rows (and one of its two math warpgroups) idle:
/// - dense: M ≤ 64;
/// - masked: `max_m` ≤ 64 (no group has more rows);
/// - contiguous: rows of `x` ≤ 64 per expert on average (`rows ≤ 64 · E`); each group then
///   wastes on average at least half of a 128-row tile, at most half of a 64-row one.
///
/// Otherwise 128: each B tile loaded feeds twice the rows.
pub(crate) fn choose_block_m(rows: Rows) -> BlockM {
    if groups_within(rows, SMALL_M) { BlockM::M64 } else { BlockM::M128 }
}

/// Whether every group of a call has at most `limit` rows: dense M, masked `max_m`, contiguous
/// rows of `x` per expert on average (`rows ≤ limit · E`).
fn groups_within(rows: Rows, limit: usize) -> bool {
    match rows {
        Rows::Dense(m) => m <= limit,
        Rows::Masked { max_m, .. } => max_m <= limit,
        Rows::Contiguous { rows, experts } => rows <= limit.saturating_mul(experts.max(1)),
    }
}

/// The persistent grid's waves over `sms` SMs: the most tiles one CTA computes.
fn waves(tiles: u64, sms: u32) -> u64 {
    tiles.div_ceil(sms.max(1) as u64).max(1)
}

/// The modelled time of one k-block (128 bytes of K) of one tile on one SM, in SM clocks: the
/// larger of the tensor cores' time, `BLOCK_M · BLOCK_N / 32` (`2 · BLOCK_M · BLOCK_N · 128`
/// FP8 FLOP at 8192 FLOP per clock, or the same for bf16's 64 elements at 4096), and the
/// shared-memory reads of the MMAs at 128 bytes per clock, each math warpgroup reading its 64
/// rows of A and the BLOCK_N rows of B (`BLOCK_M / 64 · (64 + BLOCK_N)`), taken at 5/4 of that
/// (the MMAs do not sustain the full shared-memory bandwidth). A model to rank configurations,
/// not a measurement: with 128 rows, 64-column tiles are the only ones it rates
/// shared-memory-bound.
pub(crate) fn k_block_cost(t: Tiles) -> u64 {
    let (bm, bn) = (t.block_m() as u64, t.block_n() as u64);
    (bm * bn / 32).max((bm / 64 * (64 + bn) * 5).div_ceil(4))
}

/// The configuration of a call with `n` output columns on `sms` SMs: the tile rows of
/// [`choose_block_m`], then the tile columns (64, 112, 128 or 192) that minimise the modelled
/// time of the persistent grid: its waves (the most tiles one CTA computes, from
/// [`tile_bound`]) times [`k_block_cost`]. A narrower tile is taken only when it is modelled at
/// least 1/32 faster than every wider one (the model's resolution; a wider tile loads fewer
/// bytes per FLOP). FP8 with 128-row tiles has no 192-column configuration. Like DeepGEMM's heuristic it weighs the waves and how full the last one is,
/// and it rates tiles of different widths by their work: 112 columns put N = 7168 in 64 tiles,
/// so M = 256 fills 128 of 132 SMs (128 columns: 112). `forced` (from `LOWP_GEMM_BLOCK_M` and
/// `LOWP_GEMM_BLOCK_N`) overrides either choice; a forced width the configuration lacks (192
/// for FP8 with 128-row tiles) runs as 128.
///
/// ```text
/// 132 SMs (bf16)       BLOCK_M  tiles, waves × k-block cost for BLOCK_N                             BLOCK_N
///                               64                112               128               192
/// M = 64    N = 2112     64     33, 1 × 160       19, 1 × 224       17, 1 × 256       11, 1 × 384        64
/// M = 64    N = 7168     64     112, 1 × 160      64, 1 × 224       56, 1 × 256       38, 1 × 384        64
/// M = 128   N = 7168    128     112, 1 × 320      64, 1 × 448       56, 1 × 512       38, 1 × 768        64
/// M = 256   N = 7168    128     224, 2 × 320      128, 1 × 448      112, 1 × 512      76, 1 × 768       112
/// M = 512   N = 2112    128     132, 1 × 320      76, 1 × 448       68, 1 × 512       44, 1 × 768        64
/// M = 4096  N = 2112    128     1056, 8 × 320     608, 5 × 448      544, 5 × 512      352, 3 × 768      192
/// M = 4096  N = 4096    128     2048, 16 × 320    1184, 9 × 448     1024, 8 × 512     704, 6 × 768      128
/// M = 4096  N = 7168    128     3584, 28 × 320    2048, 16 × 448    1792, 14 × 512    1216, 10 × 768    128
/// M = 4096  N = 24576   128     12288, 94 × 320   7040, 54 × 448    6144, 47 × 512    4096, 32 × 768    192
/// ```
pub(crate) fn choose_tiles(rows: Rows, n: usize, sms: u32, fp8: bool, forced: Forced) -> Tiles {
    let n_cols = n;
    let m = forced.m.unwrap_or_else(|| choose_block_m(rows));
    let exists = |bn| Tiles { m, n: bn, cluster: 1, split: 1 }.exists(fp8);
    let n = match forced.n {
        Some(bn) if exists(bn) => bn,
        Some(_) => BlockN::N128,
        None => {
            let time = |bn| {
                let t = Tiles { m, n: bn, cluster: 1, split: 1 };
                waves(tile_bound(rows, n, t), sms).saturating_mul(k_block_cost(t))
            };
            // Wider first: a narrower tile must be at least 1/32 faster.
            let mut best = if exists(BlockN::N192) { BlockN::N192 } else { BlockN::N128 };
            for bn in [BlockN::N128, BlockN::N112, BlockN::N64] {
                if time(bn).saturating_mul(33) < time(best).saturating_mul(32) {
                    best = bn;
                }
            }
            best
        }
    };
    let tiles = Tiles { m, n, cluster: 1, split: 1 };
    Tiles { cluster: choose_cluster(rows, n_cols, sms, fp8, tiles, forced.cluster), ..tiles }
}

/// Tile columns at or above which an odd count still runs in clusters of 2: the last cluster's
/// second tile, past N, computes nothing useful (at most 1/8 of the grid's tiles).
pub(crate) const CLUSTER_MIN_ODD_COLUMNS: u64 = 7;

/// The CTAs per cluster of a call in configuration `tiles` on `sms` SMs: 2 (pairs of CTAs along
/// N that share their A tiles: each loads half and multicasts it, halving A's traffic from L2 to
/// shared memory) when
/// - the configuration has a clustered kernel ([`Tiles::clusters`]: 128-row tiles of 112 or 128
///   columns, and bf16's of 192) and the device has 2 SMs or more (a cluster's CTAs run at once on SMs of one GPC);
/// - there are at least 2 tile columns, an even count or at least [`CLUSTER_MIN_ODD_COLUMNS`]
///   (an odd count leaves the last pair's second tile idle);
/// - the tiles fill the SMs ([`tile_bound`] ≥ `sms`): the shared A traffic matters where the
///   grid is full, and a partial grid keeps the freedom of single CTAs;
///
/// else 1. `forced` (from `LOWP_GEMM_CLUSTER`) overrides the choice where the configuration has a
/// clustered kernel and the device 2 SMs (a single tile column then pairs a tile with one past N).
pub(crate) fn choose_cluster(rows: Rows, n: usize, sms: u32, fp8: bool, tiles: Tiles, forced: Option<u32>) -> u32 {
    let t = Tiles { cluster: 1, split: 1, ..tiles };
    if !t.clusters(fp8) || sms < 2 {
        return 1;
    }
    if let Some(c) = forced {
        return c;
    }
    let columns = n.div_ceil(t.block_n() as usize) as u64;
    let pairs_ok = columns >= 2 && (columns % 2 == 0 || columns >= CLUSTER_MIN_ODD_COLUMNS);
    if pairs_ok && tile_bound(rows, n, t) >= sms as u64 { 2 } else { 1 }
}

/// Fewest k-blocks a CTA of a split-K cluster computes: below that the pipeline's fill and the
/// reduction outweigh the slice.
pub(crate) const SPLIT_MIN_K_BLOCKS: u64 = 4;

/// The reduction of a split-K cluster, in k-blocks of one tile: each CTA writes its partial sums
/// (`BLOCK_M × BLOCK_N` f32, as many bytes as a k-block's two tiles of 64 × 128) into its shared
/// memory and reads 1/split of every CTA's, (split − 1)/split of those bytes from the other CTAs'
/// shared memory, after the slowest CTA of the cluster has written.
pub(crate) const SPLIT_REDUCE_K_BLOCKS: u64 = 1;

/// The split-K clusters of a call in configuration `tiles` (from [`choose_tiles`], without
/// clusters along N) with `k_blocks` k-blocks of 128: 1, or 2, 4 or 8 CTAs per cluster, each
/// computing a slice of the k-blocks of the same tile, then adding and storing 1/split of the
/// tile's columns from every CTA's sums, read from their shared memory. Only configurations with
/// split-K kernels ([`Tiles::splits`]: FP8 64 × 64 tiles, the decode configuration) split, and
/// only where each CTA keeps [`SPLIT_MIN_K_BLOCKS`] k-blocks. Among those the split that
/// minimises the modelled time is taken, if it is at least 1/8 faster than none: the persistent
/// grid's waves over `capacity(configuration)` co-resident clusters (the driver's
/// `cuOccupancyMaxActiveClusters`; the SM count without a split) times the k-blocks of a slice
/// plus [`SPLIT_REDUCE_K_BLOCKS`] with a split. So a split happens only where the tiles leave SMs
/// idle and K is long: M = 64, N = 2112, K = 7168 (33 tiles, 56 k-blocks) on 132 SMs runs in
/// clusters of 4 (132 CTAs, 14 k-blocks each). `forced` (from `LOWP_GEMM_SPLIT_K`) overrides
/// the choice where the configuration splits: the largest split up to it with a co-resident
/// cluster. Errors are the capacity query's.
pub(crate) fn choose_split(
    rows: Rows,
    n: usize,
    k_blocks: u64,
    fp8: bool,
    tiles: Tiles,
    forced: Option<u32>,
    capacity: &mut dyn FnMut(Tiles) -> Result<u32>,
) -> Result<u32> {
    if tiles.cluster != 1 || !tiles.splits(fp8) || forced == Some(1) {
        return Ok(1);
    }
    let count = tile_bound(rows, n, Tiles { split: 1, ..tiles });
    if let Some(f) = forced {
        for &s in GEMM_SPLITS.iter().rev() {
            if s <= f && capacity(Tiles { split: s, ..tiles })? >= 1 {
                return Ok(s);
            }
        }
        return Ok(1);
    }
    let time = |s: u32, cap: u32| split_k_blocks(count, k_blocks, s, cap);
    let none = time(1, capacity(Tiles { split: 1, ..tiles })?);
    let (mut best, mut best_time) = (1, none);
    for &s in &GEMM_SPLITS {
        if k_blocks < SPLIT_MIN_K_BLOCKS * s as u64 {
            break;
        }
        let cap = capacity(Tiles { split: s, ..tiles })?;
        if cap == 0 {
            continue;
        }
        let t = time(s, cap);
        if t < best_time {
            (best, best_time) = (s, t);
        }
    }
    Ok(if best_time.saturating_mul(8) <= none.saturating_mul(7) { best } else { 1 })
}

/// The modelled time of a call in configuration `t` (its split included, no cluster along N):
/// [`split_k_blocks`] over `capacity(t)` co-resident clusters, times [`k_block_cost`].
fn modelled_time(
    rows: Rows,
    n: usize,
    k_blocks: u64,
    t: Tiles,
    capacity: &mut dyn FnMut(Tiles) -> Result<u32>,
) -> Result<u64> {
    let count = tile_bound(rows, n, Tiles { split: 1, ..t });
    Ok(split_k_blocks(count, k_blocks, t.split, capacity(t)?).saturating_mul(k_block_cost(t)))
}

/// The modelled time of `count` tiles of `k_blocks` k-blocks each in split-K clusters of `split`
/// CTAs (1: none), `capacity` of them co-resident, in k-blocks of one CTA: the persistent grid's
/// waves times the k-blocks of a slice plus, with a split, [`SPLIT_REDUCE_K_BLOCKS`] (the
/// reduction).
fn split_k_blocks(count: u64, k_blocks: u64, split: u32, capacity: u32) -> u64 {
    let reduce = if split > 1 { SPLIT_REDUCE_K_BLOCKS } else { 0 };
    waves(count, capacity).saturating_mul(k_blocks.div_ceil(split as u64) + reduce)
}

/// The configuration of a call with `n` output columns and `k_blocks` k-blocks on `sms` SMs:
/// [`choose_tiles`], then [`choose_split`]. Where that gives 128-row tiles without clusters for
/// groups of at most 128 rows, the 64-row configuration (its tile columns and split chosen the
/// same way) is taken instead if [`modelled_time`] rates it at least 1/8 faster: M = 128,
/// N = 2112, K = 7168 on 132 SMs, 33 tiles of 128 × 64, becomes 66 tiles of 64 × 64 in split-K
/// clusters of 2 (132 CTAs, each with half of K); M = 128, N = 4096, 64 tiles of 128 × 64,
/// becomes 128 tiles of 64 × 64 (twice the SMs pulling the weights); M = 128, N = 7168, 112
/// tiles of 128 × 64, becomes 128 tiles of 64 × 112; M = 128, N = 16384 (128 tiles of 128 × 128
/// against two waves of 64-row tiles) stays. A forced tile height
/// (`LOWP_GEMM_BLOCK_M`) is kept. `capacity` is as for [`choose_split`] (SMs without clusters); its
/// errors are the call's.
pub(crate) fn choose_config(
    rows: Rows,
    n: usize,
    k_blocks: u64,
    sms: u32,
    fp8: bool,
    forced: Forced,
    capacity: &mut dyn FnMut(Tiles) -> Result<u32>,
) -> Result<Tiles> {
    let with_split = |t: Tiles, capacity: &mut dyn FnMut(Tiles) -> Result<u32>| -> Result<Tiles> {
        Ok(Tiles { split: choose_split(rows, n, k_blocks, fp8, t, forced.split, capacity)?, ..t })
    };
    let first = with_split(choose_tiles(rows, n, sms, fp8, forced), capacity)?;
    // Groups of at most 128 rows: one 128-row tile row each, which 64-row tiles may spread over
    // more SMs.
    if forced.m.is_some()
        || first.m != BlockM::M128
        || first.cluster != 1
        || !groups_within(rows, GEMM_BLOCK_M as usize)
    {
        return Ok(first);
    }
    let small = with_split(choose_tiles(rows, n, sms, fp8, Forced { m: Some(BlockM::M64), ..forced }), capacity)?;
    let (t_first, t_small) =
        (modelled_time(rows, n, k_blocks, first, capacity)?, modelled_time(rows, n, k_blocks, small, capacity)?);
    Ok(if t_small.saturating_mul(8) <= t_first.saturating_mul(7) { small } else { first })
}

/// Configuration choices forced by the environment (`None`: the heuristic's).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Forced {
    pub m: Option<BlockM>,
    pub n: Option<BlockN>,
    /// CTAs per cluster (1 or 2).
    pub cluster: Option<u32>,
    /// CTAs per split-K cluster (1, 2, 4 or 8).
    pub split: Option<u32>,
}

/// The environment variable that forces the tile rows of every GEMM of the process.
pub(crate) const BLOCK_M_VAR: &str = "LOWP_GEMM_BLOCK_M";
/// The environment variable that forces the tile columns of every GEMM of the process.
pub(crate) const BLOCK_N_VAR: &str = "LOWP_GEMM_BLOCK_N";
/// The environment variable that forces the CTAs per cluster of every GEMM of the process.
pub(crate) const CLUSTER_VAR: &str = "LOWP_GEMM_CLUSTER";
/// The environment variable that forces the split-K clusters of every GEMM of the process.
pub(crate) const SPLIT_VAR: &str = "LOWP_GEMM_SPLIT_K";

/// Parses the value of [`SPLIT_VAR`]: unset or empty, the heuristic; `1`, `2`, `4` or `8`, that
/// many CTAs per split-K cluster (where the configuration has split-K kernels); anything else
/// `InvalidValue`.
pub(crate) fn parse_split(value: Option<&str>) -> Result<Option<u32>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(v @ ("1" | "2" | "4" | "8")) => Ok(v.parse().ok()),
        Some(v) => Err(Error::InvalidValue { arg: SPLIT_VAR, expected: "1, 2, 4, 8 or unset", actual: v.to_string() }),
    }
}

/// Parses the value of [`CLUSTER_VAR`]: unset or empty, the heuristic; `1` or `2`, that many
/// CTAs per cluster; anything else `InvalidValue`.
pub(crate) fn parse_cluster(value: Option<&str>) -> Result<Option<u32>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("1") => Ok(Some(1)),
        Some("2") => Ok(Some(2)),
        Some(v) => Err(Error::InvalidValue { arg: CLUSTER_VAR, expected: "1, 2 or unset", actual: v.to_string() }),
    }
}

/// Parses the value of [`BLOCK_M_VAR`]: unset or empty, the heuristic; `64` or `128`, that
/// tile height; anything else `InvalidValue`.
pub(crate) fn parse_block_m(value: Option<&str>) -> Result<Option<BlockM>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("64") => Ok(Some(BlockM::M64)),
        Some("128") => Ok(Some(BlockM::M128)),
        Some(v) => Err(Error::InvalidValue { arg: BLOCK_M_VAR, expected: "64, 128 or unset", actual: v.to_string() }),
    }
}

/// Parses the value of [`BLOCK_N_VAR`]: unset or empty, the heuristic; `64`, `112`, `128` or
/// `192`, that tile width; anything else `InvalidValue`.
pub(crate) fn parse_block_n(value: Option<&str>) -> Result<Option<BlockN>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("64") => Ok(Some(BlockN::N64)),
        Some("112") => Ok(Some(BlockN::N112)),
        Some("128") => Ok(Some(BlockN::N128)),
        Some("192") => Ok(Some(BlockN::N192)),
        Some(v) => {
            Err(Error::InvalidValue { arg: BLOCK_N_VAR, expected: "64, 112, 128, 192 or unset", actual: v.to_string() })
        }
    }
}

/// The output tiles of a call in configuration `tiles` (with clusters of 2, the cluster tiles of
/// `2 · BLOCK_N` columns): exact for a dense GEMM and the masked layout, an upper bound for the
/// contiguous layout (each group's last tile row may be partial: at most one more tile row per
/// non-empty group, and no more non-empty groups than rows). Split-K clusters are not counted:
/// every CTA of one takes the same tile. Saturating: the heuristics run before the shapes are
/// validated (a masked `max_m` is the caller's).
pub(crate) fn tile_bound(rows: Rows, n: usize, tiles: Tiles) -> u64 {
    let (bm, bn) = (tiles.block_m() as usize, (tiles.block_n() * tiles.cluster) as usize);
    let tiles_m = match rows {
        Rows::Dense(m) => m.div_ceil(bm) as u64,
        Rows::Masked { experts, max_m } => (experts as u64).saturating_mul(max_m.div_ceil(bm) as u64),
        Rows::Contiguous { rows, experts } => (rows.div_ceil(bm) as u64).saturating_add(experts.min(rows) as u64),
    };
    tiles_m.saturating_mul(n.div_ceil(bn) as u64)
}
