//! Parameters of `fp8` (blockwise FP8 quantization for the DeepSeek-V3 recipe: the quantizers and
//! dequantizers; the GEMM that reads their output is `gemm`).

/// One launch of `fp8_quantize_*` or `fp8_dequantize_*`.
///
/// Element (r, c) of the high-precision matrix is at `x + r * x_stride`, of the E4M3 matrix at
/// `codes + r * codes_stride` (elements); its scale at `scales + (r / block_rows) * scale_row_stride +
/// (c / 128) * scale_col_stride` (f32 elements): `block_rows` = 1 for per-token groups of 1×128,
/// 128 for 128×128 weight blocks. Row-major scales have `scale_col_stride` 1, M-major ones
/// `scale_row_stride` 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fp8QuantParams {
    /// bf16/f16/f32 input of a quantizer, bf16 output of a dequantizer.
    pub x: u64,
    /// E4M3 bytes: output of a quantizer, input of a dequantizer.
    pub codes: u64,
    /// f32 scales (x ≈ code · scale).
    pub scales: u64,
    pub x_stride: u64,
    pub codes_stride: u64,
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
