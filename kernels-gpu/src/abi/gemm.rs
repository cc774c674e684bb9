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
    /// Generic address of two `CUtensorMap`s in global memory (64-byte aligned): A `[rows, K]`,
    /// then B `[groups · N, K]`, both K-major, bytes, boxes of 128 rows × 128 bytes, 128-byte
    /// swizzle.
    pub tensor_maps: u64,
    /// FP8 only: f32 activation scales, sa(m, g) at `sa + m * sa_row_stride + g * sa_col_stride`.
    pub sa: u64,
    pub sa_row_stride: u64,
    pub sa_col_stride: u64,
    /// FP8 only: f32 weight scales of group g, `[⌈N/128⌉, K/128]` at `sb + g * sb_group_stride`,
    /// row stride `sb_stride`.
    pub sb: u64,
    pub sb_stride: u64,
    pub sb_group_stride: u64,
    /// bf16 output `[rows, N]`, row stride `d_stride` (even).
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
}
const _: () = assert!(core::mem::size_of::<GemmParams>() == 112);
const _: () = assert!(core::mem::align_of::<GemmParams>() == 8);

/// Error bit: a group bound read on the device was out of range and was clamped.
pub const GEMM_ERR_GROUP_BOUNDS: u32 = 1;

/// Tile of the Hopper GEMMs: 128 × 128 outputs, 128 bytes of K per pipeline stage (128 FP8 or
/// 64 bf16 elements).
pub const GEMM_BLOCK_M: u32 = 128;
pub const GEMM_BLOCK_N: u32 = 128;
pub const GEMM_BLOCK_K: u32 = 128;
/// Pipeline depth (shared-memory stages of A and B tiles).
pub const GEMM_STAGES: u32 = 4;
/// One producer warpgroup (TMA) and two math warpgroups (64 rows each).
pub const GEMM_THREADS: u32 = 384;
/// Bytes of one stage: an A tile and a B tile of 128 × 128 E4M3.
pub const GEMM_STAGE_BYTES: u32 = (GEMM_BLOCK_M + GEMM_BLOCK_N) * GEMM_BLOCK_K;
/// Dynamic shared memory: the stages, 1 KiB to align them to the 128-byte swizzle atom, and the
/// full/empty mbarriers.
pub const GEMM_SMEM_BYTES: u32 = GEMM_STAGES * GEMM_STAGE_BYTES + 1024 + 2 * GEMM_STAGES * 8;
