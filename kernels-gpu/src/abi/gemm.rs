//! Parameters of `gemm` (the Hopper GEMMs: blockwise FP8 and bf16, dense or grouped).

/// One launch of the Hopper GEMM kernels (`fp8_blockwise_gemm`, `bf16_gemm`; sm_90a), dense or
/// grouped (MoE):
///
/// ```text
/// group g has rows [start_g, end_g) of A and D, and uses rows g·N .. g·N + N of B:
///   dense       (group_ends = 0):   one group, rows [0, rows)
///   contiguous  (max_m = 0):        end_g = group_ends[g] (cumulative, i32), start_g = end_{g-1}
///   masked      (max_m > 0):        start_g = g·max_m, end_g = start_g + group_ends[g] (a count)
/// D[m, n] = Σ_k A[m, k] · B[g·N + n, k]   (· sa(m, k/128) · sb_g(n/128, k/128) for FP8)
/// ```
/// Group bounds read on the device are clamped into `[0, rows]` (contiguous: non-decreasing;
/// masked: counts into `[0, max_m]`); a clamp sets `GEMM_ERR_GROUP_BOUNDS` in `error_flag`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmParams {
    /// FP8 only: f32 activation scales, sa(m, g) at `sa + m * sa_row_stride + g * sa_col_stride`.
    pub sa: u64,
    pub sa_row_stride: u64,
    pub sa_col_stride: u64,
    /// FP8 only: f32 weight scales of group g, `[⌈N/128⌉, K/128]` at `sb + g * sb_group_stride`,
    /// row stride `sb_stride`.
    pub sb: u64,
    pub sb_stride: u64,
    pub sb_group_stride: u64,
    /// bf16 output `[rows, N]`, row stride `d_stride` (even), 4-byte aligned.
    pub d: u64,
    pub d_stride: u64,
    /// `const i32*` `[groups]` (see above), or 0 for a dense GEMM.
    pub group_ends: u64,
    /// `u32*` error bits, or 0.
    pub error_flag: u64,
    /// Rows of A and D (all groups).
    pub rows: u32,
    pub n: u32,
    /// Elements; `k · element size` is a multiple of 128 bytes.
    pub k: u32,
    pub groups: u32,
    /// Masked layout: rows per group slab; 0 otherwise.
    pub max_m: u32,
    /// Output tiles are visited in groups of this many tile rows (L2 reuse of B).
    pub group_m: u32,
    /// FP8 only: 1 when the producer loads each stage's activation scales with the TMA (the third
    /// tensor map; M-major scales, `sa_row_stride` 1, with `sa_col_stride` a multiple of 4 and a
    /// 16-byte aligned `sa`), 0 when the math threads read them from global memory.
    pub sa_tma: u32,
    /// 1 when D has a 16-byte aligned base and row stride (`d_stride` a multiple of 8): the
    /// epilogue stores through the D tensor map every tile of a dense GEMM and, of a grouped
    /// one, each math warpgroup's 64 rows that lie wholly inside their group; the other rows,
    /// and all of them with 0, the math threads store in 16-byte chunks (narrower where D's
    /// alignment or N asks).
    pub d_tma: u32,
}
const _: () = assert!(core::mem::size_of::<GemmParams>() == 112);
const _: () = assert!(core::mem::align_of::<GemmParams>() == 8);

/// The `CUtensorMap`s of one launch of the Hopper GEMM kernels: their second parameter, read
/// by the TMA in parameter space (the `__grid_constant__` form: the kernel converts the
/// parameter's address to a generic one; the maps are never copied to global memory). In order,
/// 128 bytes each: A `[rows, K]`, then B `[groups · N, K]`, both K-major, bytes, boxes of
/// `block_m` (A; half of it in clusters of 2 along N) or `block_n` (B) rows × 128 bytes, 128-byte
/// swizzle; then, when `sa_tma` is set, the activation scales as a 2-D f32 tensor `[K/128][rows]`
/// (inner dimension the rows, outer stride `4 · sa_col_stride` bytes), boxes of `block_m` rows ×
/// 1 k-block, no swizzle; then, when `d_tma` is set, D as bf16 `[rows, N]` (row stride
/// `2 · d_stride` bytes), boxes of `GEMM_D_BOX_M` rows × `gemm_d_box_n(block_n)` columns,
/// swizzled over the box's row (`gemm_d_swizzle_bytes`). The D map is the third map, or the
/// fourth with `sa_tma`; unused slots are not read.
///
/// The TMA needs each map 64-byte aligned; rustc declares kernel parameters with at most 16-byte
/// alignment, so build.rs raises this parameter's declaration to `.align 64` in the PTX.
#[repr(C, align(16))]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmTensorMaps {
    pub maps: [[u8; 128]; GEMM_MAX_MAPS],
}
const _: () = assert!(core::mem::size_of::<GemmTensorMaps>() == 512);
const _: () = assert!(core::mem::align_of::<GemmTensorMaps>() == 16);

/// The most tensor maps of one launch (A, B, the activation scales, D).
pub const GEMM_MAX_MAPS: usize = 4;

/// Error bit: a group bound read on the device was out of range and was clamped.
pub const GEMM_ERR_GROUP_BOUNDS: u32 = 1;

/// Tile of the Hopper GEMMs: `GEMM_BLOCK_M` (128) or `GEMM_BLOCK_M_SMALL` (64) rows × one of
/// `GEMM_BLOCK_NS` columns of output, 128 bytes of K per pipeline stage (128 FP8 or 64 bf16
/// elements).
pub const GEMM_BLOCK_M: u32 = 128;
pub const GEMM_BLOCK_K: u32 = 128;
/// The small-M configurations (`*_m64` entry points): 64-row tiles, one math warpgroup.
pub const GEMM_BLOCK_M_SMALL: u32 = 64;
/// Tile columns (rows of the B boxes) of the configurations: 128 (the entry points without an
/// `_n` suffix) and 64, 112, 192 (`*_n64`, `*_n112`, `*_n192`; 192 not for FP8 with 128-row
/// tiles, see `gemm_has_configuration`).
pub const GEMM_BLOCK_NS: [u32; 4] = [64, 112, 128, 192];
/// Whether the configuration has a kernel: every one but FP8 with 128 × 192 tiles (two arrays of
/// 96 accumulators per thread do not fit the 168 registers of a 384-thread CTA).
pub const fn gemm_has_configuration(block_m: u32, block_n: u32, fp8: bool) -> bool {
    !(fp8 && block_m == GEMM_BLOCK_M && block_n > 128)
}

/// Columns of a weight-scale block (`scales_w` holds one f32 per 128 × 128 block of `w`).
pub const GEMM_SCALE_BLOCK_N: u32 = 128;

const fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}
/// The most weight-scale blocks the columns of one tile of `block_n` columns span: tiles start at
/// multiples of `block_n`, so a tile starts at most `128 − gcd(block_n, 128)` columns into a
/// block. 1 when `block_n` divides 128, 2 for 112 and 192.
pub const fn gemm_scale_blocks_per_tile(block_n: u32) -> u32 {
    (GEMM_SCALE_BLOCK_N - gcd(block_n, GEMM_SCALE_BLOCK_N) + block_n).div_ceil(GEMM_SCALE_BLOCK_N)
}
const _: () = assert!(
    gemm_scale_blocks_per_tile(64) == 1
        && gemm_scale_blocks_per_tile(128) == 1
        && gemm_scale_blocks_per_tile(112) == 2
        && gemm_scale_blocks_per_tile(192) == 2
        && gemm_scale_blocks_per_tile(176) == 3
);

/// Dynamic shared memory one CTA may use on compute capability 9.0 (H100, H200): 227 KiB
/// (`CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN`; the SM's 228 KiB less the 1 KiB the
/// system reserves per block).
pub const GEMM_SMEM_LIMIT: u32 = 227 * 1024;
/// Slack to align the stages to 1024 bytes (the 128-byte swizzle's repeat) wherever the dynamic
/// shared memory starts.
pub const GEMM_SMEM_ALIGN_SLACK: u32 = 1024;

/// Threads of a CTA with `block_m` rows per tile: one producer warpgroup (TMA) and one math
/// warpgroup per 64 rows.
pub const fn gemm_threads(block_m: u32) -> u32 {
    128 * (1 + block_m / 64)
}
/// Bytes of one stage's activation-scale buffer: `block_m` f32 (FP8; nothing for bf16). The
/// TMA fills it with the stage's k-block of scales when `GemmParams::sa_tma` is set; the buffer
/// is part of every FP8 stage either way (the stage count is fixed per kernel).
pub const fn gemm_stage_scale_bytes(block_m: u32, fp8: bool) -> u32 {
    if fp8 { block_m * 4 } else { 0 }
}
/// Bytes of one pipeline stage: an A tile (`block_m` rows) and a B tile (`block_n` rows) of 128
/// bytes of K each, and for FP8 the stage's activation scales.
pub const fn gemm_stage_bytes(block_m: u32, block_n: u32, fp8: bool) -> u32 {
    (block_m + block_n) * GEMM_BLOCK_K + gemm_stage_scale_bytes(block_m, fp8)
}
/// Rows of a D tensor-map box: one math warpgroup's rows of a tile.
pub const GEMM_D_BOX_M: u32 = 64;
/// Columns of a D tensor-map box (and of a column block of the epilogue buffer) for `block_n`-
/// column tiles: 64 (128 bytes of bf16, the widest swizzle span) when they divide the tile, else
/// 32 or 16 (`block_n` is a multiple of 16).
pub const fn gemm_d_box_n(block_n: u32) -> u32 {
    if block_n % 64 == 0 {
        64
    } else if block_n % 32 == 0 {
        32
    } else {
        16
    }
}
/// The swizzle span of the epilogue buffer and the D map: a box row, `2 · gemm_d_box_n` bytes
/// (128, 64 or 32).
pub const fn gemm_d_swizzle_bytes(block_n: u32) -> u32 {
    2 * gemm_d_box_n(block_n)
}
/// Bytes of the epilogue buffer: the tile in bf16, `block_m × block_n × 2`, as `block_n /
/// gemm_d_box_n` column blocks per math warpgroup of `GEMM_D_BOX_M` swizzled rows (each a
/// multiple of 1024 bytes); none with `split` > 1 (the split-K kernels store their columns of
/// the tile from registers).
pub const fn gemm_epilogue_bytes(block_m: u32, block_n: u32, split: u32) -> u32 {
    if split > 1 { 0 } else { block_m * block_n * 2 }
}
/// CTAs per cluster of the split-K configurations (`*_k2`, `*_k4`, `*_k8`): each CTA of a
/// cluster computes one slice of the k-blocks of the same output tile, then adds the partial
/// sums of 1/split of the tile's columns from every CTA's shared memory and stores them. 1: no
/// split.
pub const GEMM_SPLITS: [u32; 3] = [2, 4, 8];
/// Bytes of the split-K reduction buffer: the tile's f32 partial sums, `block_m × block_n × 4`
/// (each math warpgroup's 64 rows in its accumulator order), with `split` > 1; nothing without.
pub const fn gemm_reduce_bytes(block_m: u32, block_n: u32, split: u32) -> u32 {
    if split > 1 { block_m * block_n * 4 } else { 0 }
}
/// Bytes of the split-K mbarriers: two per math warpgroup (the other CTAs' partials ready,
/// this CTA's partials read by the others), with `split` > 1.
pub const fn gemm_reduce_barrier_bytes(block_m: u32, split: u32) -> u32 {
    if split > 1 { 2 * 8 * (block_m / 64) } else { 0 }
}
/// The most k-blocks of weight scales an FP8 CTA keeps in shared memory for one tile: K up to
/// 32,768 (a CTA's slice of K, with split-K). Each math warpgroup copies its tile's weight scales
/// (one or two 128-column blocks × the CTA's k-blocks) from global memory into its buffer once per
/// tile; a CTA with more k-blocks reads them from global memory at every k-block instead.
pub const GEMM_WEIGHT_SCALE_KBLOCKS: u32 = 256;
/// Whether the configuration keeps its tiles' weight scales in shared memory: every FP8 one but
/// 64 × 192 tiles (its single math warpgroup's two arrays of 96 accumulators leave no registers
/// for the buffer's addressing: ptxas spills), which reads them from global memory at every
/// k-block.
pub const fn gemm_weight_scales_in_smem(block_m: u32, block_n: u32, fp8: bool) -> bool {
    fp8 && !(block_m == GEMM_BLOCK_M_SMALL && block_n == 192)
}
/// Bytes of the weight-scale buffers (`gemm_weight_scales_in_smem`): per math warpgroup, two
/// weight-scale blocks (a tile spans at most two, `gemm_scale_blocks_per_tile`) ×
/// `GEMM_WEIGHT_SCALE_KBLOCKS` f32; nothing otherwise.
pub const fn gemm_weight_scale_bytes(block_m: u32, block_n: u32, fp8: bool) -> u32 {
    if gemm_weight_scales_in_smem(block_m, block_n, fp8) {
        (block_m / 64) * 2 * GEMM_WEIGHT_SCALE_KBLOCKS * 4
    } else {
        0
    }
}
/// Pipeline depth: as many stages as fit in `GEMM_SMEM_LIMIT` with the alignment slack, the
/// epilogue buffer, the split-K reduction buffer and barriers (`split` > 1), the weight-scale
/// buffers and two mbarriers (full, empty; 8 bytes each) per stage.
pub const fn gemm_stages(block_m: u32, block_n: u32, fp8: bool, split: u32) -> u32 {
    (GEMM_SMEM_LIMIT
        - GEMM_SMEM_ALIGN_SLACK
        - gemm_epilogue_bytes(block_m, block_n, split)
        - gemm_reduce_bytes(block_m, block_n, split)
        - gemm_weight_scale_bytes(block_m, block_n, fp8)
        - gemm_reduce_barrier_bytes(block_m, split))
        / (gemm_stage_bytes(block_m, block_n, fp8) + 2 * 8)
}
/// Dynamic shared memory of a launch: the stages, the epilogue buffer, the reduction buffer, the
/// weight-scale buffers, the alignment slack, the mbarriers.
pub const fn gemm_smem_bytes(block_m: u32, block_n: u32, fp8: bool, split: u32) -> u32 {
    let stages = gemm_stages(block_m, block_n, fp8, split);
    stages * gemm_stage_bytes(block_m, block_n, fp8)
        + gemm_epilogue_bytes(block_m, block_n, split)
        + gemm_reduce_bytes(block_m, block_n, split)
        + gemm_weight_scale_bytes(block_m, block_n, fp8)
        + GEMM_SMEM_ALIGN_SLACK
        + 2 * stages * 8
        + gemm_reduce_barrier_bytes(block_m, split)
}

/// The 128-row configurations' threads: 384 (the producer and two math warpgroups).
pub const GEMM_THREADS: u32 = gemm_threads(GEMM_BLOCK_M);
/// The 64-row configurations' threads: 256 (the producer and one math warpgroup).
pub const GEMM_THREADS_SMALL: u32 = gemm_threads(GEMM_BLOCK_M_SMALL);

/// Stage counts and dynamic shared memory of the eighteen configurations, (BLOCK_M, BLOCK_N,
/// FP8, split) (a clustered `*_c2` kernel has its configuration's):
///
/// ```text
/// kernel                      stage                            stages  epilogue  shared memory (bytes)
/// fp8_blockwise_gemm          16 + 16 KiB + 512 B = 33,280 B    5      32 KiB    204,368
/// fp8_blockwise_gemm_n64      16 +  8 KiB + 512 B = 25,088 B    8      16 KiB    222,336
/// fp8_blockwise_gemm_n112     16 + 14 KiB + 512 B = 31,232 B    6      28 KiB    221,280
/// fp8_blockwise_gemm_m64       8 + 16 KiB + 256 B = 24,832 B    8      16 KiB    218,240
/// fp8_blockwise_gemm_m64_n64   8 +  8 KiB + 256 B = 16,640 B   13       8 KiB    227,792
/// fp8_blockwise_gemm_m64_n112  8 + 14 KiB + 256 B = 22,784 B    9      14 KiB    222,608
/// fp8_blockwise_gemm_m64_n192  8 + 24 KiB + 256 B = 33,024 B    6      24 KiB    223,840
/// bf16_gemm                   16 + 16 KiB         = 32,768 B    6      32 KiB    230,496
/// bf16_gemm_n64               16 +  8 KiB         = 24,576 B    8      16 KiB    214,144
/// bf16_gemm_n112              16 + 14 KiB         = 30,720 B    6      28 KiB    214,112
/// bf16_gemm_n192              16 + 24 KiB         = 40,960 B    4      48 KiB    214,080
/// bf16_gemm_m64                8 + 16 KiB         = 24,576 B    8      16 KiB    214,144
/// bf16_gemm_m64_n64            8 +  8 KiB         = 16,384 B   13       8 KiB    222,416
/// bf16_gemm_m64_n112           8 + 14 KiB         = 22,528 B    9      14 KiB    218,256
/// bf16_gemm_m64_n192           8 + 24 KiB         = 32,768 B    6      24 KiB    222,304
/// fp8_blockwise_gemm_m64_n64_k{2,4,8}
///                              8 +  8 KiB + 256 B = 16,640 B   12       —        219,344
///                              (and the 16 KiB reduction buffer, two more mbarriers)
/// ```
///
/// Every FP8 kernel but `fp8_blockwise_gemm_m64_n192` also holds 2 KiB of weight scales per math
/// warpgroup (`gemm_weight_scale_bytes`), inside the stages' slack: no stage count changes for
/// them.
const STAGE_TABLE: [(u32, u32, bool, u32, u32, u32); 18] = [
    (128, 128, true, 1, 5, 204368),
    (128, 64, true, 1, 8, 222336),
    (128, 112, true, 1, 6, 221280),
    (64, 128, true, 1, 8, 218240),
    (64, 64, true, 1, 13, 227792),
    (64, 112, true, 1, 9, 222608),
    (64, 192, true, 1, 6, 223840),
    (128, 128, false, 1, 6, 230496),
    (128, 64, false, 1, 8, 214144),
    (128, 112, false, 1, 6, 214112),
    (128, 192, false, 1, 4, 214080),
    (64, 128, false, 1, 8, 214144),
    (64, 64, false, 1, 13, 222416),
    (64, 112, false, 1, 9, 218256),
    (64, 192, false, 1, 6, 222304),
    (64, 64, true, 2, 12, 219344),
    (64, 64, true, 4, 12, 219344),
    (64, 64, true, 8, 12, 219344),
];
/// Each configuration fits, and one more stage would not.
const fn budget_exact(block_m: u32, block_n: u32, fp8: bool, split: u32) -> bool {
    let bytes = gemm_smem_bytes(block_m, block_n, fp8, split);
    bytes <= GEMM_SMEM_LIMIT && bytes + gemm_stage_bytes(block_m, block_n, fp8) + 16 > GEMM_SMEM_LIMIT
}
/// Every configuration: the table above holds, the budget is exact, the tiles of each stage
/// and the epilogue buffer's column blocks are multiples of the 1024 bytes the 128-byte swizzle
/// repeats over (every A and B tile and every D box starts 1024-byte aligned), and a tile spans
/// at most two weight-scale blocks.
const _: () = {
    let mut i = 0;
    while i < STAGE_TABLE.len() {
        let (block_m, block_n, fp8, split, stages, bytes) = STAGE_TABLE[i];
        assert!(
            gemm_stages(block_m, block_n, fp8, split) == stages
                && gemm_smem_bytes(block_m, block_n, fp8, split) == bytes
        );
        assert!(budget_exact(block_m, block_n, fp8, split));
        assert!((block_m * GEMM_BLOCK_K) % 1024 == 0 && (block_n * GEMM_BLOCK_K) % 1024 == 0);
        assert!((GEMM_D_BOX_M * gemm_d_swizzle_bytes(block_n)) % 1024 == 0 && block_n % gemm_d_box_n(block_n) == 0);
        assert!(gemm_scale_blocks_per_tile(block_n) <= 2 && gemm_has_configuration(block_m, block_n, fp8));
        i += 1;
    }
};
// The scale buffers follow the stages' tiles (a multiple of 1024 bytes) and each is a multiple of
// the 128 bytes a TMA destination without swizzle must be aligned to.
const _: () = assert!(gemm_stage_scale_bytes(GEMM_BLOCK_M, true) % 128 == 0);
const _: () = assert!(gemm_stage_scale_bytes(GEMM_BLOCK_M_SMALL, true) % 128 == 0);
const _: () = assert!(GEMM_THREADS == 384 && GEMM_THREADS_SMALL == 256);
