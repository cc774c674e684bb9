//! Parameters of `fp8` (blockwise FP8 quantization for the DeepSeek-V3 recipe).

/// One launch of `fp8_quantize_*` or `fp8_dequantize_*`.
///
/// Element (r, c) of the high-precision matrix is at `x + r * x_stride`, of the E4M3 matrix at
/// `q + r * q_stride` (elements); its scale at `scales + (r / block_rows) * scale_row_stride +
/// (c / 128) * scale_col_stride` (f32 elements): `block_rows` = 1 for per-token groups of 1×128,
/// 128 for 128×128 weight blocks. Row-major scales have `scale_col_stride` 1, M-major ones
/// `scale_row_stride` 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fp8QuantParams {
    /// bf16/f16/f32 input of a quantizer, bf16 output of a dequantizer.
    pub x: u64,
    /// E4M3 bytes: output of a quantizer, input of a dequantizer.
    pub q: u64,
    /// f32 scales (x ≈ q · scale).
    pub scales: u64,
    pub x_stride: u64,
    pub q_stride: u64,
    pub scale_row_stride: u64,
    pub scale_col_stride: u64,
    pub rows: u64,
    /// A multiple of 128.
    pub cols: u64,
    /// 1 or 128.
    pub block_rows: u32,
    /// `FP8_*` bits.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<Fp8QuantParams>() == 80);
const _: () = assert!(core::mem::align_of::<Fp8QuantParams>() == 8);

/// Scales are powers of two, rounded up (the UE8M0 recipe); otherwise amax / 448.
pub const FP8_UE8M0: u32 = 1;
/// Rows, strides and bases allow one 16-byte access per 8 high-precision elements and one 8-byte
/// access per 8 FP8 values.
pub const FP8_VECTORIZED: u32 = 2;

/// Elements along K that share a scale.
pub const FP8_GROUP: u32 = 128;
/// Threads per block of every `fp8_*` kernel.
pub const FP8_THREADS: u32 = 256;
/// Dynamic shared memory of the block quantizer (one f32 per warp).
pub const FP8_BLOCK_SMEM_BYTES: u32 = (FP8_THREADS / 32) * 4;

/// One launch of `fp8_blockwise_gemm` (sm_90a):
/// `D[m, n] = Σ_k A[m, k] · B[n, k] · sa(m, k/128) · sb(n/128, k/128)`, bf16 out.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fp8GemmParams {
    /// Generic address of two `CUtensorMap`s in global memory (64-byte aligned): A `[M, K]`, then
    /// B `[N, K]`, both E4M3 K-major, boxes of 128 × 128 bytes with 128-byte swizzling.
    pub tensor_maps: u64,
    /// f32 activation scales: sa(m, g) at `sa + m * sa_row_stride + g * sa_col_stride`.
    pub sa: u64,
    pub sa_row_stride: u64,
    pub sa_col_stride: u64,
    /// f32 weight scales `[⌈N/128⌉, K/128]` with row stride `sb_stride`.
    pub sb: u64,
    pub sb_stride: u64,
    /// bf16 output `[M, N]`, row stride `d_stride` (even).
    pub d: u64,
    pub d_stride: u64,
    pub m: u32,
    pub n: u32,
    /// A multiple of 128.
    pub k: u32,
    /// Output tiles are visited in groups of this many tile rows (L2 reuse of B).
    pub group_m: u32,
}
const _: () = assert!(core::mem::size_of::<Fp8GemmParams>() == 80);
const _: () = assert!(core::mem::align_of::<Fp8GemmParams>() == 8);

/// Tile of the FP8 GEMM: 128 × 128 outputs, 128 of K per pipeline stage.
pub const FP8_GEMM_BLOCK_M: u32 = 128;
pub const FP8_GEMM_BLOCK_N: u32 = 128;
pub const FP8_GEMM_BLOCK_K: u32 = 128;
/// Pipeline depth (shared-memory stages of A and B tiles).
pub const FP8_GEMM_STAGES: u32 = 4;
/// One producer warpgroup (TMA) and two math warpgroups (64 rows each).
pub const FP8_GEMM_THREADS: u32 = 384;
/// Bytes of one stage: an A tile and a B tile of 128 × 128 E4M3.
pub const FP8_GEMM_STAGE_BYTES: u32 = (FP8_GEMM_BLOCK_M + FP8_GEMM_BLOCK_N) * FP8_GEMM_BLOCK_K;
/// Dynamic shared memory: the stages, 1 KiB to align them to the 128-byte swizzle atom, and the
/// full/empty mbarriers.
pub const FP8_GEMM_SMEM_BYTES: u32 = FP8_GEMM_STAGES * FP8_GEMM_STAGE_BYTES + 1024 + 2 * FP8_GEMM_STAGES * 8;
