//! The Hopper GEMM (sm_90a): TMA loads, `wgmma` from shared memory, warp-specialized and
//! persistent, dense or grouped (MoE), with two element kinds sharing one body:
//!
//! - `fp8_blockwise_gemm`: E4M3 operands (QGMMA), f32 promotion with the DeepSeek-V3 scales at
//!   every 128 of K — `D = Σ_k (A·sa)(B·sb)`;
//! - `bf16_gemm`: bf16 operands (HGMMA), f32 accumulation across all of K.
//!
//! Fifteen configurations of one body (const generics `MATH_WGS`, the math warpgroups, and `BN`,
//! the tile's columns): FP8 or bf16 × BLOCK_M 128 (two math warpgroups, 384 threads) or 64 (one,
//! 256 threads, entry points `*_m64*`) × BN 128 (no suffix), 64, 112 or 192 (`*_n64`, `*_n112`,
//! `*_n192`), but not FP8 with 128 × 192 tiles (its two accumulator arrays would not fit the 168
//! registers of a 384-thread CTA). The pipeline is as deep as the 227 KiB of shared memory allows
//! beside the epilogue buffer (4 to 13 stages; the table in `abi::gemm`). Tiles of 112 and 192
//! columns straddle a 128-column weight-scale block (at most two blocks per tile,
//! `gemm_scale_blocks_per_tile`). Five more entry points (`*_c2`: FP8 and bf16, 128 × 128 and
//! 128 × 112 tiles, bf16 128 × 192, const generic `CLUSTER` = 2) run in clusters of 2 CTAs along
//! N: the pair computes tiles (m, n) and (m, n + BN), each CTA's producer loads half of the shared
//! A box's rows and multicasts it into both CTAs' stage, and each math warp frees a stage on the
//! empty barriers of both CTAs (`docs/kernels/gemm.md`, "Clusters"). Three more
//! (`fp8_blockwise_gemm_m64_n64_k2`, `_k4`, `_k8`, const generic `SPLIT`) run FP8 64 × 64 tiles
//! in split-K clusters of 2, 4 or 8 CTAs: every CTA of a cluster computes the same tile over its
//! slice of the k-blocks and puts its sums in its shared memory; then each reads its 1/SPLIT of
//! the tile's columns from every CTA's sums through distributed shared memory, adds them in rank
//! order and stores them from registers (`docs/kernels/gemm.md`, "Split-K clusters").
//!
//! ```text
//! block = 1 + MATH_WGS warpgroups
//!   WG0  producer: thread 0 issues TMA
//!   WG1  math: rows  0..64 of the tile
//!   WG2  math: rows 64..128 (BLOCK_M = 128 only)
//! smem (from a 1024-byte boundary): stages × [A tile BLOCK_M rows × 128 B | B tile BN rows × 128 B]
//!   (128-byte swizzled); epilogue buffer (none with split-K): per math warpgroup 64 rows × BN
//!   bf16 in column blocks of 64 (32, 16) bf16, each a D box (rows swizzled over 128 (64, 32)
//!   bytes); split-K: the reduction buffer (the tile in f32); FP8: stages × [BLOCK_M f32
//!   activation scales]; FP8 but 64 × 192: per math warpgroup the weight scales of its tile (2 ×
//!   256 f32); full[s], empty[s] mbarriers (split-K: red_full, red_empty)
//! sa_tma (FP8, per launch, set by the host for M-major activation scales whose ld and base are
//!   16-byte aligned): the producer loads each stage's activation scales; otherwise the math
//!   threads read theirs from global memory. Weight scales: each math warpgroup copies its tile's
//!   (one or two 128-column blocks × the CTA's k-blocks) into its buffer once per tile, the global
//!   loads issued before the previous tile's epilogue; with 64 × 192 tiles or more than 256
//!   k-blocks in a CTA, from global memory at every k-block.
//! for each tile (group g, m0, n0) of this CTA (persistent; groups walked in order, tiles of a group
//! in grouped order):
//!   math (FP8, weight scales in shared memory): store the tile's weight scales (loaded during
//!         the previous tile's epilogue) into the warpgroup's buffer; bar.sync 1 + wg, 128
//!   for each k-block kb (128 bytes of K: 128 FP8 or 64 bf16 elements):
//!     producer: wait empty[s] (phase ^ 1); expect A + B (+ scales) bytes on full[s];
//!               TMA A(kb, m0), B(kb, g·N + n0), FP8 with sa_tma: scales sa(m0 .. m0 + BLOCK_M, kb)
//!     math:     wait full[s] (phase); FP8: sa of its two rows from shared memory (sa_tma) or global;
//!               4 × wgmma m64nBN (k32 FP8 / k16 bf16: 32 bytes of K each) into acc;
//!               FP8: wait 0; arrive empty[s]; final = fma(acc, sa(m, kb) · sb_g(n/128, kb), final)
//!               (columns n < 128·(n0/128 + 1) with block n0/128's scale, the others the next's);
//!               FP8 with one math warpgroup and BN ≤ 128: two accumulators, wait 1, then the
//!               previous k-block's stage freed and its accumulator promoted (overlapped);
//!               bf16: wait 1 (the previous k-block's MMAs); arrive empty of its stage
//!   math (epilogue, per warpgroup): [issuing thread: wait_group.read 0 (last tile's stores have
//!         read the buffer)]; bar.sync 1 + wg, 128; bf16 → buffer (stmatrix.x4); for TMA stores
//!         every thread fences (fence.proxy.async.shared::cta); bar.sync again;
//!         with d_tma, dense or the warpgroup's 64 rows inside the group: the issuing thread
//!         TMA-stores the BN / box columns boxes through D's map (rows ≥ M, columns ≥ N
//!         clipped), commits;
//!         otherwise every thread reads 16-byte chunks back and stores them (rows outside the
//!         group and columns ≥ N masked; 16 bytes, or bf16 pairs and a single at a tail)
//!   split-K (instead of the epilogue): sums into the reduction buffer, exchange through the
//!         cluster's barriers, this CTA's 1/SPLIT of the columns added from every CTA's buffer
//!         and stored from registers (docs/kernels/gemm.md, "Split-K clusters")
//! s = it mod stages, phase = ⌊it / stages⌋ mod 2 for the CTA's it-th k-block, kept as a counter
//! and a parity bit that flips when s wraps (any stage count, not only powers of two).
//! ```
//! FP8 wgmma accumulates with reduced precision inside the tensor core, so each k-block's
//! product is promoted into an f32 accumulator with its scales (DeepSeek-V3's recipe): the scale
//! product `sa · sb` rounded to f32, then one fused multiply-add per k-block (`fma.rn.f32`: the
//! block's contribution is not rounded before it is added); bf16 accumulates in the wgmma
//! accumulator itself.
//!
//! Not yet run on a GPU (checked on the lowp-sim simulator); see `docs/kernels/gemm.md`.

use core::f32::math::mul_add;

use crate::abi::{
    GEMM_BLOCK_K as BK, GEMM_D_BOX_M, GEMM_ERR_GROUP_BOUNDS, GEMM_SCALE_BLOCK_N, GEMM_WEIGHT_SCALE_KBLOCKS as WS_KB,
    GemmParams, GemmTensorMaps, gemm_d_box_n, gemm_d_swizzle_bytes, gemm_epilogue_bytes, gemm_reduce_bytes,
    gemm_scale_blocks_per_tile, gemm_stage_scale_bytes, gemm_stages, gemm_weight_scale_bytes,
    gemm_weight_scales_in_smem,
};
use crate::prim::convert::f32x2_to_bf16x2;
use crate::prim::hopper::{
    WGMMA_MAX_REGS, bulk_commit_group, bulk_wait_group, bulk_wait_group_read, cluster_ctarank, cluster_sync,
    fence_accumulators, fence_mbarrier_init, fence_proxy_async_shared, kernel_param_address, ld_shared_cluster_v4,
    ld_shared_f32, ld_shared_v4, mapa_shared, mbarrier_arrive, mbarrier_arrive_cluster, mbarrier_arrive_expect_tx,
    mbarrier_init, mbarrier_wait, mbarrier_wait_cluster, named_barrier_sync, prefetch_tensormap, setmaxnreg_dec,
    setmaxnreg_inc, smem_addr, smem_desc_k_major_sw128, st_shared_f32, st_shared_v4, stmatrix_x4, tma_load_2d,
    tma_load_2d_multicast, tma_store_2d, wgmma_commit, wgmma_fence, wgmma_k32b, wgmma_wait,
};
use crate::prim::mem::{Vec16, raise_flag, st_global_v4};
use crate::prim::warp::sync_warp;
use crate::prim::{block_idx_x, dynamic_smem, grid_dim_x, lane_id, opaque_u32, sync_threads, thread_idx_x};

/// A zeroed accumulator array.
const ZERO_ACC: [f32; WGMMA_MAX_REGS] = [0.0; WGMMA_MAX_REGS];

/// Arrivals on an empty barrier per math warpgroup: one per warp.
const EMPTY_ARRIVALS_PER_WG: u32 = 4;

/// Rows of a tile with `math_wgs` math warpgroups (64 rows each).
const fn block_m(math_wgs: u32) -> u32 {
    64 * math_wgs
}

/// The shared-memory plan of the configuration with `MATH_WGS` math warpgroups, `BN`-column
/// tiles (FP8 or bf16) and `SPLIT` CTAs per split-K cluster, from the (1024-aligned) base of the
/// stages: `stages` × (A tile, B tile), then (`SPLIT` = 1) the epilogue buffer (per math
/// warpgroup, its 64 rows of the tile in bf16), then (`SPLIT` > 1) the reduction buffer (per math warpgroup, its 64 rows
/// in f32, in accumulator order), then (FP8) `stages` activation-scale buffers of `block_m` f32,
/// then (`gemm_weight_scales_in_smem`) per math warpgroup a weight-scale buffer (two blocks of
/// `GEMM_WEIGHT_SCALE_KBLOCKS` f32), then `stages` full barriers, then `stages` empty barriers, then (`SPLIT` > 1) per math
/// warpgroup a `red_full` and a `red_empty` barrier.
#[derive(Clone, Copy)]
struct Smem<const FP8: bool, const MATH_WGS: u32, const BN: u32, const SPLIT: u32> {
    base: u32,
}

impl<const FP8: bool, const MATH_WGS: u32, const BN: u32, const SPLIT: u32> Smem<FP8, MATH_WGS, BN, SPLIT> {
    const STAGES: u32 = gemm_stages(block_m(MATH_WGS), BN, FP8, SPLIT);
    const TILE_A_BYTES: u32 = block_m(MATH_WGS) * BK;
    const TILE_B_BYTES: u32 = BN * BK;
    const SCALE_BYTES: u32 = gemm_stage_scale_bytes(block_m(MATH_WGS), FP8);
    /// One math warpgroup's part of the epilogue buffer: `BN / EPI_BOX_N` column blocks of
    /// `GEMM_D_BOX_M` rows × `EPI_BOX_N` bf16, each laid out as a D tensor-map box (rows of
    /// `EPI_SPAN` bytes, 16-byte chunks swizzled over them); none with split-K.
    const EPI_WG_BYTES: u32 = gemm_epilogue_bytes(block_m(MATH_WGS), BN, SPLIT) / MATH_WGS;
    const EPI_BOX_N: u32 = gemm_d_box_n(BN);
    const EPI_SPAN: u32 = gemm_d_swizzle_bytes(BN);
    const EPI_BOX_BYTES: u32 = GEMM_D_BOX_M * Self::EPI_SPAN;
    /// One math warpgroup's part of the reduction buffer: 16 bytes per thread and group of 4
    /// accumulator registers, the 128 threads' 16 bytes side by side (`red_at`).
    const RED_WG_BYTES: u32 = gemm_reduce_bytes(block_m(MATH_WGS), BN, SPLIT) / MATH_WGS;
    /// Whether the tiles' weight scales go through shared memory, and one math warpgroup's buffer.
    const WS_SMEM: bool = gemm_weight_scales_in_smem(block_m(MATH_WGS), BN, FP8);
    const WS_WG_BYTES: u32 = gemm_weight_scale_bytes(block_m(MATH_WGS), BN, FP8) / MATH_WGS;

    fn a(self, s: u32) -> u32 {
        self.base + s * (Self::TILE_A_BYTES + Self::TILE_B_BYTES)
    }
    fn b(self, s: u32) -> u32 {
        self.a(s) + Self::TILE_A_BYTES
    }
    /// The epilogue buffer of math warpgroup `wg` (1024-byte aligned).
    fn epi(self, wg: u32) -> u32 {
        self.a(Self::STAGES) + wg * Self::EPI_WG_BYTES
    }
    /// The shared address of element (`row`, `col`) of a warpgroup's epilogue buffer at `epi`
    /// (`col` a multiple of 8: the first of a 16-byte chunk): column block `col / EPI_BOX_N`, row
    /// `row` of it, the 16-byte chunks of each row XOR-ed with bits 7.. of the offset (CUTLASS's
    /// `Swizzle<log2(EPI_SPAN / 16), 4, 3>`, the TMA's swizzle of the box).
    #[inline(always)]
    fn epi_at(epi: u32, row: u32, col: u32) -> u32 {
        let off = (col / Self::EPI_BOX_N) * Self::EPI_BOX_BYTES + row * Self::EPI_SPAN + (col % Self::EPI_BOX_N) * 2;
        epi + (off ^ (((off >> 7) & (Self::EPI_SPAN / 16 - 1)) << 4))
    }
    /// The reduction buffer of math warpgroup `wg` (1024-byte aligned; empty without split-K).
    fn red(self, wg: u32) -> u32 {
        self.epi(MATH_WGS) + wg * Self::RED_WG_BYTES
    }
    /// Where thread `t` (of 128) of a warpgroup keeps accumulator registers `4q .. 4q + 4` in a
    /// reduction buffer at `red`: a warp's 16-byte accesses cover 512 contiguous bytes (no bank
    /// conflict beyond the four wavefronts 16-byte accesses take).
    #[inline(always)]
    fn red_at(red: u32, q: u32, t: u32) -> u32 {
        red + 16 * (q * 128 + t)
    }
    /// The activation scales of stage `s`: f32 of tile rows 0..block_m (128-byte aligned).
    fn sa(self, s: u32) -> u32 {
        self.red(MATH_WGS) + s * Self::SCALE_BYTES
    }
    /// Math warpgroup `wg`'s weight scales of its current tile: the k-blocks of the tile's first
    /// weight-scale block at `ws(wg)`, of the next block `4 · WS_KB` bytes on.
    fn ws(self, wg: u32) -> u32 {
        self.sa(Self::STAGES) + wg * Self::WS_WG_BYTES
    }
    fn full(self, s: u32) -> u32 {
        self.ws(MATH_WGS) + 8 * s
    }
    fn empty(self, s: u32) -> u32 {
        self.full(Self::STAGES) + 8 * s
    }
    /// Split-K: the barrier that the other CTAs' partial sums of warpgroup `wg`'s rows are in
    /// their reduction buffers (one arrival per other CTA and tile).
    fn red_full(self, wg: u32) -> u32 {
        self.empty(Self::STAGES) + 8 * wg
    }
    /// Split-K: the barrier that the other CTAs have read their columns of this CTA's partial
    /// sums of warpgroup `wg`'s rows (one arrival per other CTA and tile).
    fn red_empty(self, wg: u32) -> u32 {
        self.red_full(MATH_WGS) + 8 * wg
    }
}

/// The position in the ring of stages of a configuration: stage `s` and the parity of its current
/// use. Advanced once per k-block; the parity flips each time `s` wraps, whatever the stage count.
#[derive(Clone, Copy)]
struct Ring<const FP8: bool, const MATH_WGS: u32, const BN: u32, const SPLIT: u32> {
    s: u32,
    phase: u32,
}

impl<const FP8: bool, const MATH_WGS: u32, const BN: u32, const SPLIT: u32> Ring<FP8, MATH_WGS, BN, SPLIT> {
    fn new() -> Self {
        Ring { s: 0, phase: 0 }
    }
    fn advance(&mut self) {
        self.s += 1;
        if self.s == Smem::<FP8, MATH_WGS, BN, SPLIT>::STAGES {
            self.s = 0;
            self.phase ^= 1;
        }
    }
}

/// Tile `t` of a `tiles_m × tiles_n` grid in grouped order: `group_m` tile rows at a time sweep
/// all tile columns, so concurrently running CTAs share B tiles in L2.
#[inline(always)]
fn tile_coords(t: u32, tiles_m: u32, tiles_n: u32, group_m: u32) -> (u32, u32) {
    let per_group = group_m * tiles_n;
    let first_m = (t / per_group) * group_m;
    let rows = if tiles_m - first_m < group_m { tiles_m - first_m } else { group_m };
    let r = t % per_group;
    (first_m + r % rows, r / rows)
}

/// One output tile: group, its row range, and the tile's first row and column.
#[derive(Clone, Copy)]
struct Tile {
    group: u32,
    m0: u32,
    /// Rows of the group: [m0 is inside] `row_start .. row_end`.
    row_end: u32,
    n0: u32,
}

/// Walks the (group, tile) pairs of one CTA: tiles `block, block + grid, …` of the concatenation
/// of every group's tiles. The producer thread and every math thread run their own copy and see
/// the same sequence (same loads, same arithmetic). With clusters of `CLUSTER` (2) CTAs along N
/// the walk is over cluster tiles of `CLUSTER · BN` columns (cluster `block / CLUSTER` of
/// `grid / CLUSTER`): both CTAs of a cluster see the same sequence, and the CTA of rank r takes
/// columns `r · BN ..` of each (past N for the last cluster tile of an odd tile-column count).
/// With split-K clusters of `SPLIT` CTAs the walk is over the tiles, cluster by cluster, and every
/// CTA of a cluster takes the same tile (its rank picks a slice of the k-blocks instead).
struct Scheduler<'a, const MATH_WGS: u32, const BN: u32, const CLUSTER: u32, const SPLIT: u32> {
    p: &'a GemmParams,
    /// Tile columns (cluster tiles of `CLUSTER · BN` columns) and this CTA's rank in its cluster.
    tiles_n: u32,
    rank: u32,
    /// Current group and its bounds.
    g: u32,
    start: u32,
    end: u32,
    /// Tiles of the groups before `g`, and of `g`.
    before: u32,
    count: u32,
    next: u32,
}

impl<'a, const MATH_WGS: u32, const BN: u32, const CLUSTER: u32, const SPLIT: u32>
    Scheduler<'a, MATH_WGS, BN, CLUSTER, SPLIT>
{
    const BM: u32 = block_m(MATH_WGS);
    /// CTAs per cluster (one of `CLUSTER` and `SPLIT` is 1).
    const CTAS: u32 = CLUSTER * SPLIT;

    fn new(p: &'a GemmParams) -> Self {
        let mut s = Scheduler {
            p,
            tiles_n: p.n.div_ceil(BN * CLUSTER),
            rank: if Self::CTAS > 1 { cluster_ctarank() } else { 0 },
            g: 0,
            start: 0,
            end: 0,
            before: 0,
            count: 0,
            next: block_idx_x() / Self::CTAS,
        };
        s.enter(0, 0);
        s
    }

    /// Bounds of group `g` whose predecessor ended at `prev_end`, clamped (and flagged) into range.
    fn enter(&mut self, g: u32, prev_end: u32) {
        let p = self.p;
        self.g = g;
        if g >= p.groups {
            self.count = 0;
            return;
        }
        let (start, end) = if p.group_ends == 0 {
            (0, p.rows)
        } else {
            // SAFETY: group_ends holds `groups` i32 (host contract) and g < groups.
            let raw = unsafe { *(p.group_ends as *const i32).add(g as usize) };
            if p.max_m > 0 {
                let start = g * p.max_m;
                let count = if raw < 0 {
                    0
                } else if raw as u32 > p.max_m {
                    p.max_m
                } else {
                    raw as u32
                };
                if raw < 0 || raw as u32 > p.max_m {
                    // SAFETY: error_flag is null or a valid u32.
                    unsafe { raise_flag(p.error_flag as *mut u32, GEMM_ERR_GROUP_BOUNDS) };
                }
                (start, start + count)
            } else {
                let end = if raw < prev_end as i32 {
                    prev_end
                } else if raw as u32 > p.rows {
                    p.rows
                } else {
                    raw as u32
                };
                if raw < prev_end as i32 || raw as u32 > p.rows {
                    // SAFETY: as above.
                    unsafe { raise_flag(p.error_flag as *mut u32, GEMM_ERR_GROUP_BOUNDS) };
                }
                (prev_end, end)
            }
        };
        self.start = start;
        self.end = end;
        self.count = (end - start).div_ceil(Self::BM) * self.tiles_n;
    }

    /// The CTA's next tile, or `None` when every group is done.
    fn next_tile(&mut self) -> Option<Tile> {
        let t = self.next;
        while t >= self.before + self.count {
            if self.g >= self.p.groups {
                return None;
            }
            self.before += self.count;
            let prev_end = self.end;
            self.enter(self.g + 1, prev_end);
        }
        self.next += grid_dim_x() / Self::CTAS;
        let tiles_m = (self.end - self.start).div_ceil(Self::BM);
        let (tm, tn) = tile_coords(t - self.before, tiles_m, self.tiles_n, self.p.group_m);
        Some(Tile {
            group: self.g,
            m0: self.start + tm * Self::BM,
            row_end: self.end,
            n0: (tn * CLUSTER + if CLUSTER > 1 { self.rank } else { 0 }) * BN,
        })
    }
}

/// Frees stage `s`'s slot for the producers: one arrival on its empty barrier (at shared address
/// `empty`) in every CTA of the cluster, whose producers all write into this CTA's stage (with
/// `CLUSTER` 1, this CTA's only).
///
/// # Safety
/// The calling warp's reads of the stage are complete; every CTA of the cluster is running and
/// reaches the cluster barrier before its exit after this call.
#[inline(always)]
unsafe fn free_stage<const CLUSTER: u32>(empty: u32) {
    if CLUSTER == 1 {
        // SAFETY: caller's contract.
        unsafe { mbarrier_arrive(empty) };
    } else {
        for r in 0..CLUSTER {
            // SAFETY: caller's contract; the same barrier of CTA r of the cluster.
            unsafe { mbarrier_arrive_cluster(mapa_shared(empty, r)) };
        }
    }
}

/// The kernel body; `FP8` selects E4M3 with scale promotion, otherwise bf16; `MATH_WGS` (1 or 2)
/// the math warpgroups, 64 tile rows each; `BN` the tile's columns; `CLUSTER` (1 or 2) the CTAs
/// of a cluster along N, which share their A tiles: each CTA's producer loads half of the A box's
/// rows and multicasts it into both CTAs' stage, so a stage is refilled only when the math of
/// both CTAs has freed it (each math warp arrives on the empty barrier of both).
///
/// # Safety
/// Launched with `gemm_threads(64 · MATH_WGS)` threads (`.maxntid` set by build.rs),
/// `gemm_smem_bytes(64 · MATH_WGS, BN, FP8, SPLIT)` of dynamic shared memory and parameters validated by
/// the host (`lowp::gemm`): `maps` the generic address of the launch's `GemmTensorMaps` in
/// parameter space (64-byte aligned), tensor maps describing A (boxes of 64 · MATH_WGS rows), B
/// (boxes of `BN` rows), when `sa_tma` is set the activation scales (boxes of 64 · MATH_WGS rows
/// × 1 k-block) and when `d_tma` is set D, scale extents covering every row and group, D of `rows × N`, `group_ends` with
/// `groups` entries. `CLUSTER` 2: launched in clusters of 2 × 1 × 1 CTAs (`.reqnctapercluster`,
/// set by build.rs) with an even grid, A's boxes of 32 · MATH_WGS rows (half a tile). `SPLIT` > 1:
/// launched in clusters of `SPLIT` × 1 × 1 CTAs (`.reqnctapercluster`, set by build.rs) with a
/// grid that is a multiple of `SPLIT`.
#[inline(always)]
unsafe fn gemm<const FP8: bool, const MATH_WGS: u32, const BN: u32, const CLUSTER: u32, const SPLIT: u32>(
    p: &GemmParams,
    maps: u64,
) {
    const { assert!(MATH_WGS == 1 || MATH_WGS == 2) };
    const { assert!(CLUSTER == 1 || CLUSTER == 2) };
    const { assert!(SPLIT == 1 || SPLIT == 2 || SPLIT == 4 || SPLIT == 8) };
    // A cluster either shares A along N or splits K, not both.
    const { assert!(CLUSTER == 1 || SPLIT == 1) };
    const { assert!(BN == 64 || BN == 112 || BN == 128 || BN == 192) };
    // FP8 keeps two arrays of BN / 2 accumulators (the MMA's and the promoted sums): 192 columns
    // need about 230 registers, more than the 168 ptxas compiles a 384-thread kernel for (the
    // whole kernel, the math after `setmaxnreg.inc` included).
    const { assert!(!(FP8 && MATH_WGS == 2 && BN > 128)) };
    // Registers move from the producer to the math warpgroups (`setmaxnreg`) only where the math
    // needs more than the launch budget: two math warpgroups with tiles of 112 columns or more
    // (below).
    let realloc_regs = MATH_WGS == 2 && BN >= 112;
    let stages = Smem::<FP8, MATH_WGS, BN, SPLIT>::STAGES;
    let tile_a_bytes = Smem::<FP8, MATH_WGS, BN, SPLIT>::TILE_A_BYTES;
    let tile_b_bytes = Smem::<FP8, MATH_WGS, BN, SPLIT>::TILE_B_BYTES;
    // FP8 with M-major, TMA-aligned activation scales: the producer loads each stage's scales.
    let sa_tma = FP8 && p.sa_tma != 0;
    let scale_bytes = if sa_tma { Smem::<FP8, MATH_WGS, BN, SPLIT>::SCALE_BYTES } else { 0 };
    // SAFETY: the launch provides gemm_smem_bytes; the stages start at the first 1024-byte
    // boundary inside it (the 1 KiB of slack is part of the size).
    let raw = smem_addr(unsafe { dynamic_smem::<u8>() });
    let sm = Smem::<FP8, MATH_WGS, BN, SPLIT> { base: (raw + 1023) & !1023 };
    let tid = thread_idx_x();
    let warpgroup = tid / 128;
    // The kernel's `GemmTensorMaps` parameter, 128 bytes per map.
    let tmap_a = maps;
    let tmap_b = maps + 128;
    let tmap_sa = maps + 256;
    // D's map follows the others (the third, or the fourth after the scales').
    let tmap_d = maps + 256 + if p.sa_tma != 0 { 128 } else { 0 };
    // The split-K kernels store from registers: no D map, whatever the parameters say.
    let d_tma = SPLIT == 1 && p.d_tma != 0;

    if tid == 0 {
        for s in 0..stages {
            // SAFETY: barrier words inside the dynamic shared memory, used only after the fence
            // and block barrier below.
            unsafe {
                mbarrier_init(sm.full(s), 1);
                // Every math warp of every CTA of the cluster frees the stage.
                mbarrier_init(sm.empty(s), EMPTY_ARRIVALS_PER_WG * MATH_WGS * CLUSTER);
            }
        }
        if SPLIT > 1 {
            for wg in 0..MATH_WGS {
                // SAFETY: as above. Each expects one arrival per other CTA of the cluster and
                // tile.
                unsafe {
                    mbarrier_init(sm.red_full(wg), SPLIT - 1);
                    mbarrier_init(sm.red_empty(wg), SPLIT - 1);
                }
            }
        }
        // SAFETY: publishes the inits; the maps are valid tensor maps in the kernel's parameter
        // space (host contract), which needs no proxy fence before the TMA reads them.
        unsafe {
            fence_mbarrier_init();
            prefetch_tensormap(tmap_a);
            prefetch_tensormap(tmap_b);
            if sa_tma {
                prefetch_tensormap(tmap_sa);
            }
        }
    }
    if CLUSTER * SPLIT == 1 {
        // SAFETY: every thread reaches it.
        unsafe { sync_threads() };
    } else {
        // The peers' barriers are initialized before any multicast into this CTA or arrival on
        // its barriers. SAFETY: every thread of the cluster reaches it (once here, once before
        // exit).
        unsafe { cluster_sync() };
    }

    let k_blocks = p.k * if FP8 { 1 } else { 2 } / BK;
    let mut sched = Scheduler::<MATH_WGS, BN, CLUSTER, SPLIT>::new(p);
    // The k-blocks of this CTA: all of them, or with split-K its rank's slice of the cluster's
    // (balanced: slices differ by at most one k-block; with fewer k-blocks than CTAs some are
    // empty).
    let (kb0, kb1) =
        if SPLIT > 1 { (k_blocks * sched.rank / SPLIT, k_blocks * (sched.rank + 1) / SPLIT) } else { (0, k_blocks) };

    if warpgroup == 0 {
        // Producer: one thread issues every load. With two math warpgroups and tiles of 112
        // columns or more (384 threads, a launch budget of 168 registers per thread, which the
        // accumulators and promoted sums fill) the producer gives registers to the math, as
        // DeepGEMM does (ptxas 13.0 still compiles the math for 168); with 64-column tiles the
        // math needs fewer than the budget (ptxas allocates below it and would ignore
        // `setmaxnreg`); with one math warpgroup (256 threads) every thread already has the most
        // a thread can hold (255). In those cases there is nothing to move.
        if realloc_regs {
            // SAFETY: all 128 threads of the warpgroup execute it; launch bounds are set.
            unsafe { setmaxnreg_dec::<40>() };
        }
        if tid != 0 {
            return;
        }
        let mut ring = Ring::<FP8, MATH_WGS, BN, SPLIT>::new();
        while let Some(tile) = sched.next_tile() {
            let b_row = tile.group * p.n + tile.n0;
            for kb in kb0..kb1 {
                let (s, phase) = (ring.s, ring.phase);
                // SAFETY: initialized barriers; the math warpgroups free every stage they consume.
                unsafe {
                    mbarrier_wait(sm.empty(s), phase ^ 1);
                    mbarrier_arrive_expect_tx(sm.full(s), tile_a_bytes + tile_b_bytes + scale_bytes);
                    // Boxes past the last row of A or B are zero-filled by the TMA unit; rows of
                    // the next group or expert are loaded but never stored.
                    if CLUSTER == 1 {
                        tma_load_2d(sm.a(s), tmap_a, (kb * BK) as i32, tile.m0 as i32, sm.full(s));
                    } else {
                        // This CTA's half of the A box (rows rank · BM/2 ..), into the same place
                        // of both CTAs' stage s (the peer's producer loads the other half): the
                        // full barrier of each still expects the whole stage.
                        let half = block_m(MATH_WGS) / 2;
                        let rank = sched.rank;
                        tma_load_2d_multicast(
                            sm.a(s) + rank * half * BK,
                            tmap_a,
                            (kb * BK) as i32,
                            (tile.m0 + rank * half) as i32,
                            sm.full(s),
                            0b11,
                        );
                    }
                    tma_load_2d(sm.b(s), tmap_b, (kb * BK) as i32, b_row as i32, sm.full(s));
                    if sa_tma {
                        // The scales of the A box's rows at k-block kb (the scale rows follow the
                        // rows of A; past the last row zero-filled).
                        tma_load_2d(sm.sa(s), tmap_sa, tile.m0 as i32, kb as i32, sm.full(s));
                    }
                }
                ring.advance();
            }
        }
        if CLUSTER * SPLIT > 1 {
            // No copy into the peer and no arrival on its barriers after this (its shared memory
            // is released at its exit). SAFETY: every thread of the cluster reaches it.
            unsafe { cluster_sync() };
        }
        return;
    }

    // Math warpgroups.
    if realloc_regs {
        // SAFETY: all threads of each math warpgroup execute it; the producer released registers.
        unsafe { setmaxnreg_inc::<232>() };
    }
    let wg = warpgroup - 1; // rows 64·wg .. 64·wg + 64 of the tile
    let (warp, lane) = ((tid % 128) / 32, lane_id());
    let row_in_tile = wg * 64 + warp * 16 + lane / 4; // and + 8
    let epi = sm.epi(wg);
    // The warpgroup's first thread issues its TMA stores (dense, TMA-aligned D).
    let store_thread = d_tma && tid % 128 == 0;
    if store_thread {
        // SAFETY: the D map is a valid tensor map in parameter space (host contract, `d_tma`).
        unsafe { prefetch_tensormap(tmap_d) };
    }

    // Weight scales: a tile's columns lie in one 128-column scale block when BN divides 128, else
    // in at most two (`gemm_scale_blocks_per_tile`): the tile's first `split` columns in block
    // n0/128, the others in the next.
    const { assert!(gemm_scale_blocks_per_tile(BN) <= 2) };
    let two_blocks = GEMM_SCALE_BLOCK_N % BN != 0;
    // FP8 with one math warpgroup and at most 128 columns: two accumulators overlap each
    // k-block's promotion with the next k-block's MMAs (3 × BN / 2 registers of sums per thread,
    // within the 255 a thread of a 256-thread CTA may hold; 192 columns would need 288).
    let overlap = FP8 && MATH_WGS == 1 && BN <= 128;

    // The tile's first `split` columns lie in weight-scale block n0/128; the next block is read
    // only where the tile has columns in it inside the matrix.
    let scale_blocks = |t: &Tile| {
        let split = GEMM_SCALE_BLOCK_N - t.n0 % GEMM_SCALE_BLOCK_N;
        (split, two_blocks && split < BN && t.n0 + split < p.n)
    };
    // Tile t's row of weight scales (block n0/128 of its group, at k-block 0); none for a
    // cluster's second tile past N (odd tile-column count), which reads no scale: its products
    // are never stored.
    let ws_row = |t: &Tile| {
        if CLUSTER > 1 && t.n0 >= p.n {
            None
        } else {
            Some(t.group as u64 * p.sb_group_stride + (t.n0 / GEMM_SCALE_BLOCK_N) as u64 * p.sb_stride)
        }
    };
    // Weight scales in shared memory (`gemm_weight_scales_in_smem`, and a CTA of at most WS_KB
    // k-blocks): each math warpgroup copies its tile's (the CTA's k-blocks of one or two blocks)
    // into its buffer once per tile. The global loads of the next tile's are issued before this
    // tile's epilogue, so their latency overlaps it; the values are stored into the buffer when
    // the next tile starts. Otherwise each k-block's are read from global memory.
    let ws_smem = Smem::<FP8, MATH_WGS, BN, SPLIT>::WS_SMEM && kb1 - kb0 <= WS_KB;
    const { assert!(WS_KB == 2 * 128) };
    // This thread's share of tile t's weight scales: k-blocks kb0 + t_ws and kb0 + t_ws + 128 of
    // the first block, then of the next; zeros where the tile has none. (The thread's place is
    // re-derived at each use, not kept live across the main loop.)
    let fetch_ws = |t: &Option<Tile>| -> [f32; 4] {
        let mut v = [0.0f32; 4];
        if let Some(t) = t
            && ws_smem
            && let Some(row) = ws_row(t)
        {
            let t_ws = opaque_u32(thread_idx_x()) % 128;
            let next_block = scale_blocks(t).1;
            crate::unroll!(j in [0, 1] {
                let i = t_ws + 128 * j as u32;
                if i < kb1 - kb0 {
                    let at = row + (kb0 + i) as u64;
                    // SAFETY: group < groups, n0/128 < ⌈N/128⌉ (n0 < N), kb0 + i < kb1 ≤ K/128;
                    // with next_block the next block holds a column < N.
                    unsafe {
                        v[j] = *(p.sb as *const f32).add(at as usize);
                        if next_block {
                            v[2 + j] = *(p.sb as *const f32).add((at + p.sb_stride) as usize);
                        }
                    }
                }
            });
        }
        v
    };

    let mut ring = Ring::<FP8, MATH_WGS, BN, SPLIT>::new();
    // Split-K: the parity of the current use of the reduction barriers (one use per tile).
    let mut red_phase = 0u32;
    // The next tile: with the buffer, taken before each tile's epilogue (its scales are loaded
    // then); without (64 × 192 tiles have no registers to keep it live across the epilogue), at
    // the loop's head.
    let ws_early = Smem::<FP8, MATH_WGS, BN, SPLIT>::WS_SMEM;
    let mut next = if ws_early { sched.next_tile() } else { None };
    let mut ws_next = fetch_ws(&next);
    loop {
        if !ws_early {
            next = sched.next_tile();
        }
        let Some(tile) = next else { break };
        if ws_smem {
            let ws = sm.ws(wg);
            let t_ws = opaque_u32(thread_idx_x()) % 128;
            // SAFETY: the whole warpgroup; slots of this warpgroup's buffer, which every thread
            // of it last read before the previous tile's epilogue (or split-K reduction), whose
            // named barriers 1 + wg followed; read now only after the barrier below.
            unsafe {
                crate::unroll!(j in [0, 1] {
                    st_shared_f32(ws + 4 * (t_ws + 128 * j as u32), ws_next[j]);
                    st_shared_f32(ws + 4 * (WS_KB + t_ws + 128 * j as u32), ws_next[2 + j]);
                });
                named_barrier_sync(1 + wg, 128);
            }
        }
        let m0 = tile.m0 + row_in_tile;
        let m1 = m0 + 8;
        let (split, next_block) = scale_blocks(&tile);
        // The first BN / 2 registers of each are used (the MMA's accumulator layout). Copies of a
        // constant, not a repeat expression: rustc lowers `[0.0; 96]` to a loop, which would keep
        // the arrays in local memory.
        let mut fin = ZERO_ACC;
        let mut acc = ZERO_ACC;
        // One k-block's FP8 scale products for this thread's rows m0 and m1, once stage `s` is
        // full (waited here): with the tile's first weight-scale block (s0, s1) and the next
        // (t0, t1); ones for bf16. The scales are loaded before the wait, so their latency
        // overlaps it: the weight scales (one or two per tile and k-block, the same addresses in
        // every thread) from the warpgroup's buffer or global memory, the activation scales from
        // global memory unless the producer loads them into the stage. Rows past the group read
        // nothing (their products are never stored).
        let stage_products = |kb: u32, s: u32, phase: u32| -> [f32; 4] {
            let (sb, sb_next, g0, g1) = if FP8 {
                let (sb, sb_next) = if ws_smem {
                    let at = sm.ws(wg) + 4 * (kb - kb0);
                    // SAFETY: the tile's scales, stored and published by the barrier at its start;
                    // not stored again before the tile's epilogue barriers.
                    unsafe {
                        let sb = ld_shared_f32(at);
                        (sb, if next_block { ld_shared_f32(at + 4 * WS_KB) } else { sb })
                    }
                } else if let Some(row) = ws_row(&tile) {
                    let at = row + kb as u64;
                    // SAFETY: group < groups, n0/128 < ⌈N/128⌉ (n0 < N), kb < K/128; with
                    // next_block the next block holds column n0 + split < N: n0/128 + 1 < ⌈N/128⌉.
                    unsafe {
                        let sb = *(p.sb as *const f32).add(at as usize);
                        (sb, if next_block { *(p.sb as *const f32).add((at + p.sb_stride) as usize) } else { sb })
                    }
                } else {
                    (0.0, 0.0)
                };
                let sa_at = |m: u32| {
                    if !sa_tma && m < tile.row_end {
                        let i = m as u64 * p.sa_row_stride + kb as u64 * p.sa_col_stride;
                        // SAFETY: m < rows, kb < K/128: inside the validated scale extent.
                        unsafe { *(p.sa as *const f32).add(i as usize) }
                    } else {
                        0.0
                    }
                };
                (sb, sb_next, sa_at(m0), sa_at(m1))
            } else {
                (1.0, 1.0, 1.0, 1.0)
            };
            // SAFETY: initialized barrier; the producer fills every stage in order.
            unsafe { mbarrier_wait(sm.full(s), phase) };
            let (a0, a1) = if sa_tma {
                // SAFETY: stage s's scales are complete (full barrier) and are not overwritten
                // before this warp arrives on empty[s]; rows 0..block_m of the buffer.
                unsafe { (ld_shared_f32(sm.sa(s) + 4 * row_in_tile), ld_shared_f32(sm.sa(s) + 4 * (row_in_tile + 8))) }
            } else {
                (g0, g1)
            };
            let (s0, s1) = (a0 * sb, a1 * sb);
            let (t0, t1) = if two_blocks { (a0 * sb_next, a1 * sb_next) } else { (s0, s1) };
            [s0, s1, t0, t1]
        };
        // Issues the k-block in stage `s` (4 × wgmma, 32 bytes of K each) into `d`, adding to it
        // or not, and commits the group.
        // SAFETY (callers): the whole warpgroup; stage s is full (waited) and is not overwritten
        // before this warpgroup frees it, after a wait that retires this group; `d` is not
        // accessed before that wait.
        let issue = |d: &mut [f32; WGMMA_MAX_REGS], s: u32, accumulate: bool| {
            let a_tile = sm.a(s) + wg * 64 * BK; // this warpgroup's 64 rows
            let b_tile = sm.b(s);
            fence_accumulators::<BN>(d);
            // SAFETY: the callers' contract above.
            unsafe {
                wgmma_fence();
                crate::unroll!(k in [0, 1, 2, 3] {
                    let da = smem_desc_k_major_sw128(a_tile + 32 * k as u32);
                    let db = smem_desc_k_major_sw128(b_tile + 32 * k as u32);
                    wgmma_k32b::<FP8, BN>(d, da, db, k != 0 || accumulate);
                });
                wgmma_commit();
            }
        };
        // Promotion: fin = fma(acc, sa·sb, fin), one rounding per k-block (fma.rn.f32); the
        // BN / 8 column groups of 8 the MMA wrote, each inside one scale block (n0 and 128 are
        // multiples of 8).
        let promote = |fin: &mut [f32; WGMMA_MAX_REGS], d: &[f32; WGMMA_MAX_REGS], [s0, s1, t0, t1]: [f32; 4]| {
            crate::unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23] {
                if (j as u32) < BN / 8 {
                    let (u0, u1) = if two_blocks && 8 * j as u32 >= split { (t0, t1) } else { (s0, s1) };
                    fin[4 * j] = mul_add(d[4 * j], u0, fin[4 * j]);
                    fin[4 * j + 1] = mul_add(d[4 * j + 1], u0, fin[4 * j + 1]);
                    fin[4 * j + 2] = mul_add(d[4 * j + 2], u1, fin[4 * j + 2]);
                    fin[4 * j + 3] = mul_add(d[4 * j + 3], u1, fin[4 * j + 3]);
                }
            });
        };
        if overlap {
            // FP8 with one math warpgroup: two accumulators, so that each k-block's promotion
            // runs while the next k-block's MMAs are in flight (with two math warpgroups, each
            // promotes while the other's MMAs run). k-block kb goes into `acc` when kb − kb0 is
            // even, `acc2` when odd; after issuing kb, wait_group 1 retires kb − 1, whose stage
            // is then freed and whose accumulator is promoted.
            let mut acc2 = ZERO_ACC;
            // The stage and scale products of the k-block whose MMAs may be in flight.
            let mut pending: Option<(u32, [f32; 4])> = None;
            let mut step = |cur: &mut [f32; WGMMA_MAX_REGS],
                            prev: &mut [f32; WGMMA_MAX_REGS],
                            fin: &mut [f32; WGMMA_MAX_REGS],
                            kb: u32| {
                let (s, phase) = (ring.s, ring.phase);
                let products = stage_products(kb, s, phase);
                // SAFETY: the whole warpgroup; stage s is full, and is freed only after a wait
                // that retires this group (the next step's, or the drain below); `cur` was last
                // read by its promotion two k-blocks ago (the fence in `issue` orders it first).
                issue(cur, s, false);
                // SAFETY: the whole warpgroup; retires every group but this one: the previous
                // k-block's, into `prev`.
                unsafe { wgmma_wait::<1>() };
                // Only now may `prev` be read: pin its reads below the wait.
                fence_accumulators::<BN>(prev);
                if let Some((ps, pp)) = pending {
                    if lane == 0 {
                        // SAFETY: the MMAs reading stage ps are complete (wait above); the
                        // cluster barrier before exit follows.
                        unsafe { free_stage::<CLUSTER>(sm.empty(ps)) };
                    }
                    promote(fin, prev, pp);
                }
                pending = Some((s, products));
                ring.advance();
            };
            // Pairs of k-blocks, then an odd one, each way ending with every group retired: the
            // only accumulator in flight at a join of control paths is `acc2` at the pair loop's
            // back-edge and exit, which ptxas keeps asynchronous; an accumulator in flight on one
            // side of a join and not on the other (a loop over single k-blocks with the arrays
            // swapped by a branch) makes ptxas serialize the MMAs.
            let pairs = (kb1 - kb0) / 2;
            for i in 0..pairs {
                step(&mut acc, &mut acc2, &mut fin, kb0 + 2 * i);
                step(&mut acc2, &mut acc, &mut fin, kb0 + 2 * i + 1);
            }
            // The last k-block's stage is freed and its accumulator promoted once its MMAs are
            // retired.
            let drain = |last: &mut [f32; WGMMA_MAX_REGS],
                         fin: &mut [f32; WGMMA_MAX_REGS],
                         pending: Option<(u32, [f32; 4])>| {
                // SAFETY: the whole warpgroup; retires the tile's last MMAs.
                unsafe { wgmma_wait::<0>() };
                fence_accumulators::<BN>(last);
                if let Some((ps, pp)) = pending {
                    if lane == 0 {
                        // SAFETY: every MMA reading stage ps is complete (wait above).
                        unsafe { free_stage::<CLUSTER>(sm.empty(ps)) };
                    }
                    promote(fin, last, pp);
                }
            };
            if (kb1 - kb0) % 2 == 1 {
                step(&mut acc, &mut acc2, &mut fin, kb1 - 1);
                drain(&mut acc, &mut fin, pending);
            } else {
                drain(&mut acc2, &mut fin, pending);
            }
        } else {
            // bf16: the stage of the previous k-block, whose MMAs may still be in flight.
            let mut prev_s = 0;
            for kb in kb0..kb1 {
                let (s, phase) = (ring.s, ring.phase);
                let products = stage_products(kb, s, phase);
                // FP8: a fresh accumulator per k-block; bf16: across all of K.
                // SAFETY: the whole warpgroup; stage s is full and is freed after a wait that
                // retires this group (FP8: in this k-block; bf16: in the next, or after the
                // tile's last); `acc` is read only after such a wait.
                issue(&mut acc, s, !FP8 && kb != kb0);
                // FP8 promotes this k-block's accumulators now: wait for its MMAs. bf16 keeps
                // them in flight (the next k-block's MMAs chain on the same accumulators) and
                // waits for the previous k-block's.
                // SAFETY: the whole warpgroup.
                unsafe {
                    if FP8 {
                        wgmma_wait::<0>();
                    } else {
                        wgmma_wait::<1>();
                    }
                }
                // Only now may `acc` be read (FP8): pin its first reads below the wait.
                fence_accumulators::<BN>(&mut acc);
                if lane == 0 {
                    if FP8 {
                        // SAFETY: this warp's reads of stage s are complete (wait above); the
                        // cluster barrier before exit follows.
                        unsafe { free_stage::<CLUSTER>(sm.empty(s)) };
                    } else if kb > kb0 {
                        // SAFETY: the previous k-block's MMAs, the last to read stage prev_s,
                        // are complete (wait above).
                        unsafe { free_stage::<CLUSTER>(sm.empty(prev_s)) };
                    }
                }
                prev_s = s;
                if FP8 {
                    promote(&mut fin, &acc, products);
                }
                ring.advance();
            }
            if !FP8 {
                // SAFETY: the whole warpgroup executes it; retires the tile's last MMAs.
                unsafe { wgmma_wait::<0>() };
                fence_accumulators::<BN>(&mut acc);
                if lane == 0 && kb1 > kb0 {
                    // SAFETY: every MMA reading stage prev_s is complete.
                    unsafe { free_stage::<CLUSTER>(sm.empty(prev_s)) };
                }
            }
        }
        // The next tile, and its weight scales, loaded while this tile's epilogue runs.
        if ws_early {
            next = sched.next_tile();
            ws_next = fetch_ws(&next);
        }
        let out = if FP8 { &mut fin } else { &mut acc };
        if SPLIT > 1 {
            // Split-K: every CTA of the cluster has the sums of its slice of K for this tile, and
            // stores 1/SPLIT of the tile's columns: it puts its sums in its reduction buffer,
            // reads the sums of its columns from every CTA's buffer (its own included) in rank
            // order (the same sum whichever CTA finishes first) and stores them from registers.
            // Each thread holds the same (row, column) registers in every CTA, so a thread reads
            // the same place of each buffer.
            let t_wg = opaque_u32(tid) % 128;
            let red = sm.red(wg);
            let rank = sched.rank;
            // SAFETY (this block): the whole warpgroup; barriers initialized before the cluster
            // barrier above, every CTA running until the cluster barrier before its exit. The
            // buffer is written only once every other CTA has read this CTA's previous tile from
            // it (red_empty: their release arrivals, acquired at cluster scope; the first wait is
            // on the phase before the barrier's first, which counts as complete), and published
            // by one release arrival on every other CTA's red_full after every thread's writes
            // (the named barrier). The other CTAs' buffers are read once this CTA's red_full has
            // their arrivals for this tile, and are not written again before this CTA's arrivals
            // on their red_empty, which follow every thread's reads (the named barrier).
            unsafe {
                mbarrier_wait_cluster(sm.red_empty(wg), red_phase ^ 1);
                crate::unroll!(q in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23] {
                    if (q as u32) < BN / 8 {
                        let v = [out[4 * q], out[4 * q + 1], out[4 * q + 2], out[4 * q + 3]];
                        st_shared_v4(Smem::<FP8, MATH_WGS, BN, SPLIT>::red_at(red, q as u32, t_wg), v.map(f32::to_bits));
                    }
                });
                named_barrier_sync(1 + wg, 128);
                if t_wg == 0 {
                    for r in 0..SPLIT {
                        if r != rank {
                            mbarrier_arrive_cluster(mapa_shared(sm.red_full(wg), r));
                        }
                    }
                }
                // The warp reconverges before its lanes poll red_full: the arrivals do not wait
                // on the scheduler interleaving diverged lanes.
                sync_warp();
                mbarrier_wait_cluster(sm.red_full(wg), red_phase);
                // This CTA's columns: groups of 8 (the accumulator's register groups of 4) rank ·
                // BN / 8 / SPLIT .. (rank + 1) · BN / 8 / SPLIT.
                const { assert!((BN / 8) % SPLIT == 0) };
                let (warp, lane) = (t_wg / 32, t_wg % 32);
                for j in 0..BN / 8 / SPLIT {
                    let q = rank * (BN / 8 / SPLIT) + j;
                    // This thread's place of group q in the buffer of the CTA of rank r.
                    let at = |r: u32| Smem::<FP8, MATH_WGS, BN, SPLIT>::red_at(mapa_shared(red, r), q, t_wg);
                    let mut v = ld_shared_cluster_v4(at(0)).map(f32::from_bits);
                    for r in 1..SPLIT {
                        let x = ld_shared_cluster_v4(at(r));
                        crate::unroll!(i in [0, 1, 2, 3] {
                            v[i] += f32::from_bits(x[i]);
                        });
                    }
                    // Registers 4q, 4q + 1: row 16 · warp + lane / 4 of the warpgroup's, columns
                    // 8q + 2 · (lane % 4) and the next; 4q + 2, 4q + 3: the row 8 below.
                    let m = tile.m0 + 64 * wg + 16 * warp + lane / 4;
                    let n = tile.n0 + 8 * q + 2 * (lane % 4);
                    if m < tile.row_end {
                        store_pair(p, m, n, f32x2_to_bf16x2(v[0], v[1]));
                    }
                    if m + 8 < tile.row_end {
                        store_pair(p, m + 8, n, f32x2_to_bf16x2(v[2], v[3]));
                    }
                }
                named_barrier_sync(1 + wg, 128);
                if t_wg == 0 {
                    for r in 0..SPLIT {
                        if r != rank {
                            mbarrier_arrive_cluster(mapa_shared(sm.red_empty(wg), r));
                        }
                    }
                }
                sync_warp();
            }
            red_phase ^= 1;
            continue;
        }
        // Epilogue. The buffer is free once the previous tile's TMA stores have read it (their
        // issuing thread waits) and every thread has read its chunks back (grouped stores): one
        // named barrier of the warpgroup (the producer takes no part).
        if store_thread {
            bulk_wait_group_read::<0>();
        }
        // SAFETY: the 128 threads of this math warpgroup, and only they, reach it every tile.
        unsafe { named_barrier_sync(1 + wg, 128) };
        // The thread's place in the warpgroup, re-derived here: the buffer addresses below are
        // computed per tile, not hoisted out of the tile loop, where BN / 16 of them would stay
        // live (and spill) across the main loop.
        let t_wg = opaque_u32(tid) % 128;
        let (warp, lane) = (t_wg / 32, t_wg % 32);
        // bf16 into the buffer with stmatrix: per 16 columns, the four 8 × 8 matrices (rows
        // 0..8 and 8..16 of the warp's 16, columns 0..8 and 8..16); lane 8q + r gives the row r
        // of matrix q.
        let st_row = warp * 16 + (lane % 8) + 8 * ((lane / 8) % 2);
        let st_col = 8 * (lane / 16);
        // (One step per 16 columns of the accumulator: the list covers its BN / 16.)
        const { assert!(BN / 16 <= 12) };
        crate::unroll!(t in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
            if (t as u32) < BN / 16 {
                let i = 8 * t;
                let at = Smem::<FP8, MATH_WGS, BN, SPLIT>::epi_at(epi, st_row, 16 * t as u32 + st_col);
                // SAFETY: all 32 lanes of each warp; 16-byte aligned rows inside this
                // warpgroup's buffer, which no other thread and no TMA store uses now (above).
                unsafe {
                    stmatrix_x4(
                        at,
                        f32x2_to_bf16x2(out[i], out[i + 1]),
                        f32x2_to_bf16x2(out[i + 2], out[i + 3]),
                        f32x2_to_bf16x2(out[i + 4], out[i + 5]),
                        f32x2_to_bf16x2(out[i + 6], out[i + 7]),
                    )
                };
            }
        });
        let m_wg = tile.m0 + 64 * wg;
        // TMA stores where the warpgroup's 64 rows may all be written: a dense GEMM's (the TMA
        // clips rows ≥ M), a group's rows wholly inside the group; the rows of a group's last,
        // partial tile go out through the math threads, masked.
        let by_tma = d_tma && (p.group_ends == 0 || m_wg + 64 <= tile.row_end);
        if by_tma {
            // Each thread's stmatrix writes are made visible to the async proxy (the TMA stores)
            // before the barrier, as CUTLASS's epilogues do: a writer-side fence.
            fence_proxy_async_shared();
        }
        // SAFETY: as above.
        unsafe { named_barrier_sync(1 + wg, 128) };
        if by_tma {
            if store_thread {
                // The warpgroup's writes, fenced and ordered before this thread by the barrier;
                // rows ≥ M and columns ≥ N of the boxes are clipped, and boxes wholly past N
                // (a tile's tail, a cluster's tile past N) are not issued.
                crate::unroll!(b in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
                    let n = tile.n0 + b as u32 * Smem::<FP8, MATH_WGS, BN, SPLIT>::EPI_BOX_N;
                    if (b as u32) < BN / Smem::<FP8, MATH_WGS, BN, SPLIT>::EPI_BOX_N && n < p.n {
                        let src = epi + b as u32 * Smem::<FP8, MATH_WGS, BN, SPLIT>::EPI_BOX_BYTES;
                        // SAFETY: the D map (host contract); the box is written and fenced, and
                        // is not written again before the wait at the next tile (or the end).
                        unsafe { tma_store_2d(tmap_d, src, n as i32, m_wg as i32) };
                    }
                });
                bulk_commit_group();
            }
        } else {
            // 16-byte chunks back from the buffer, consecutive threads along a row, stored where
            // they lie inside the group's rows and N.
            let chunks_per_row = BN / 8;
            crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
                if (i as u32) < BN / 16 {
                    let c = t_wg + 128 * i as u32;
                    let (row, col) = (c / chunks_per_row, 8 * (c % chunks_per_row));
                    let (m, n) = (m_wg + row, tile.n0 + col);
                    if m < tile.row_end && n < p.n {
                        // SAFETY: a chunk of this warpgroup's buffer, written before the barrier.
                        let v = unsafe { ld_shared_v4(Smem::<FP8, MATH_WGS, BN, SPLIT>::epi_at(epi, row, col)) };
                        store_chunk(p, m, n, v);
                    }
                }
            });
        }
    }
    if store_thread {
        // The CTA's shared memory must outlive the last stores' reads.
        bulk_wait_group::<0>();
    }
    if CLUSTER * SPLIT > 1 {
        // The peer's math no longer arrives on this CTA's barriers or reads its shared memory,
        // nor its producer multicasts into this CTA, once every thread of the cluster is here. SAFETY: every
        // thread of the cluster reaches it.
        unsafe { cluster_sync() };
    }
}

/// Stores the two bf16 of `v` (low half first) at D[m, n], D[m, n + 1] (`n` even, row m inside
/// D), those inside the matrix (`n < N`): one 4-byte store, or a single at N's tail.
#[inline(always)]
fn store_pair(p: &GemmParams, m: u32, n: u32, v: u32) {
    let at = (p.d as *mut u16).wrapping_add((m as u64 * p.d_stride + n as u64) as usize);
    if n + 1 < p.n {
        // SAFETY: (m, n) and (m, n + 1) inside D; n is even and the row stride even with a
        // 4-byte aligned base (host contract), so the pair is 4-byte aligned.
        unsafe { *(at as *mut u32) = v };
    } else if n < p.n {
        // SAFETY: (m, n) inside D.
        unsafe { *at = v as u16 };
    }
}

/// Stores the 8 bf16 of `v` at D[m, n .. n + 8] (row m inside D), those inside the matrix
/// (`n < N`): one 16-byte store where the chunk is whole and 16-byte aligned, else bf16 pairs and
/// a last single ([`store_pair`]).
#[inline(always)]
fn store_chunk(p: &GemmParams, m: u32, n: u32, v: [u32; 4]) {
    let at = (p.d as *mut u16).wrapping_add((m as u64 * p.d_stride + n as u64) as usize);
    if n + 8 <= p.n && at as u64 % 16 == 0 {
        // SAFETY: D[m, n .. n + 8] is inside D, 16-byte aligned.
        unsafe { st_global_v4(at as *mut Vec16, Vec16(v)) };
        return;
    }
    crate::unroll!(k in [0, 1, 2, 3] {
        store_pair(p, m, n + 2 * k as u32, v[k]);
    });
}

/// Defines one entry point of the kernel body: `$name`, the configuration
/// `gemm::<FP8, MATH_WGS, BN, CLUSTER, SPLIT>` (`CLUSTER` and `SPLIT` 1 when not given).
macro_rules! entry {
    ($(#[$doc:meta])* $name:ident: $fp8:literal, $wgs:literal, $bn:literal) => {
        entry!($(#[$doc])* $name: $fp8, $wgs, $bn, 1, 1);
    };
    ($(#[$doc:meta])* $name:ident: $fp8:literal, $wgs:literal, $bn:literal, $cluster:literal) => {
        entry!($(#[$doc])* $name: $fp8, $wgs, $bn, $cluster, 1);
    };
    ($(#[$doc:meta])* $name:ident: $fp8:literal, $wgs:literal, $bn:literal, $cluster:literal, $split:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("Launch contract of `gemm` with `MATH_WGS = ", $wgs, "`, `BN = ", $bn, "`, `CLUSTER = ", $cluster, "`, `SPLIT = ", $split, "`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: GemmParams, _maps: GemmTensorMaps) {
            let maps = kernel_param_address!($name, 1);
            unsafe { gemm::<$fp8, $wgs, $bn, $cluster, $split>(&p, maps) }
        }
    };
}

entry!(
    /// `D = (A · sa) (B · sb)ᵀ`, E4M3 inputs, bf16 output, dense or grouped; 128 × 128 tiles.
    fp8_blockwise_gemm: true, 2, 128
);
entry!(
    /// `fp8_blockwise_gemm` with 128 × 64 tiles (twice the tiles, for shapes that underfill the SMs).
    fp8_blockwise_gemm_n64: true, 2, 64
);
entry!(
    /// `fp8_blockwise_gemm` with 128 × 112 tiles (N = 7168 in 64 tiles, not 56).
    fp8_blockwise_gemm_n112: true, 2, 112
);
entry!(
    /// `fp8_blockwise_gemm` with 64-row tiles and one math warpgroup (small M).
    fp8_blockwise_gemm_m64: true, 1, 128
);
entry!(
    /// `fp8_blockwise_gemm` with 64 × 64 tiles and one math warpgroup.
    fp8_blockwise_gemm_m64_n64: true, 1, 64
);
entry!(
    /// `fp8_blockwise_gemm` with 64 × 112 tiles and one math warpgroup.
    fp8_blockwise_gemm_m64_n112: true, 1, 112
);
entry!(
    /// `fp8_blockwise_gemm` with 64 × 192 tiles and one math warpgroup.
    fp8_blockwise_gemm_m64_n192: true, 1, 192
);
entry!(
    /// `D = A Bᵀ`, bf16 inputs, f32 accumulation, bf16 output, dense or grouped; 128 × 128 tiles.
    bf16_gemm: false, 2, 128
);
entry!(
    /// `bf16_gemm` with 128 × 64 tiles (twice the tiles, for shapes that underfill the SMs).
    bf16_gemm_n64: false, 2, 64
);
entry!(
    /// `bf16_gemm` with 128 × 112 tiles.
    bf16_gemm_n112: false, 2, 112
);
entry!(
    /// `bf16_gemm` with 128 × 192 tiles.
    bf16_gemm_n192: false, 2, 192
);
entry!(
    /// `fp8_blockwise_gemm` in clusters of 2 CTAs along N sharing their A tiles (TMA multicast).
    fp8_blockwise_gemm_c2: true, 2, 128, 2
);
entry!(
    /// `fp8_blockwise_gemm_n112` in clusters of 2 CTAs along N sharing their A tiles.
    fp8_blockwise_gemm_n112_c2: true, 2, 112, 2
);
entry!(
    /// `bf16_gemm` in clusters of 2 CTAs along N sharing their A tiles (TMA multicast).
    bf16_gemm_c2: false, 2, 128, 2
);
entry!(
    /// `bf16_gemm_n112` in clusters of 2 CTAs along N sharing their A tiles.
    bf16_gemm_n112_c2: false, 2, 112, 2
);
entry!(
    /// `bf16_gemm_n192` in clusters of 2 CTAs along N sharing their A tiles.
    bf16_gemm_n192_c2: false, 2, 192, 2
);
entry!(
    /// `fp8_blockwise_gemm_m64_n64` in split-K clusters of 2 CTAs: each computes half of the
    /// k-blocks of the same tile, then adds both CTAs' sums of half of its columns and stores them
    /// (decode shapes with few tiles).
    fp8_blockwise_gemm_m64_n64_k2: true, 1, 64, 1, 2
);
entry!(
    /// `fp8_blockwise_gemm_m64_n64` in split-K clusters of 4 CTAs.
    fp8_blockwise_gemm_m64_n64_k4: true, 1, 64, 1, 4
);
entry!(
    /// `fp8_blockwise_gemm_m64_n64` in split-K clusters of 8 CTAs.
    fp8_blockwise_gemm_m64_n64_k8: true, 1, 64, 1, 8
);
entry!(
    /// `bf16_gemm` with 64-row tiles and one math warpgroup (small M).
    bf16_gemm_m64: false, 1, 128
);
entry!(
    /// `bf16_gemm` with 64 × 64 tiles and one math warpgroup.
    bf16_gemm_m64_n64: false, 1, 64
);
entry!(
    /// `bf16_gemm` with 64 × 112 tiles and one math warpgroup.
    bf16_gemm_m64_n112: false, 1, 112
);
entry!(
    /// `bf16_gemm` with 64 × 192 tiles and one math warpgroup.
    bf16_gemm_m64_n192: false, 1, 192
);
