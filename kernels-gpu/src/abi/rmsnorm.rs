//! Parameters of `rmsnorm`.

/// Parameters of the RMSNorm family (`rmsnorm_*`, `add_rmsnorm_*`).
///
/// Row `r` of a matrix starts at `ptr + r * stride` elements. For the plain RMSNorm `residual` is
/// 0 and `residual_stride` unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsNormParams {
    /// `const T*`, rows × `x_stride`: the input (for `add_rmsnorm`, the value added to `residual`).
    pub x: u64,
    /// `T*`, rows × `residual_stride`: updated in place to `residual + x` (add variant only).
    pub residual: u64,
    /// `const T*`, `[hidden]`.
    pub weight: u64,
    /// `T*`, rows × `out_stride`.
    pub out: u64,
    pub x_stride: u64,
    pub residual_stride: u64,
    pub out_stride: u64,
    pub rows: u32,
    pub hidden: u32,
    pub eps: f32,
    /// 1 when every row start and `weight` are 16-byte aligned and `hidden % 8 == 0`: the kernel then
    /// moves 8 elements per access; 0 selects the scalar path. Chosen by the host.
    pub vectorized: u32,
}
const _: () = assert!(core::mem::size_of::<RmsNormParams>() == 72);
const _: () = assert!(core::mem::align_of::<RmsNormParams>() == 8);

/// Threads per block of the RMSNorm kernels.
pub const RMSNORM_THREADS: u32 = 256;
/// Largest hidden size of the RMSNorm kernels: the vector path keeps a whole row in registers,
/// `RMSNORM_VECS_PER_THREAD` 8-element vectors per thread.
pub const RMSNORM_MAX_HIDDEN: u32 = 16384;
pub const RMSNORM_VECS_PER_THREAD: u32 = RMSNORM_MAX_HIDDEN / (8 * RMSNORM_THREADS);
/// Largest hidden size of the `*_v4_*` kernels (4 vectors of 8 elements per thread).
pub const RMSNORM_V4_MAX_HIDDEN: u32 = 4 * 8 * RMSNORM_THREADS;
/// Largest hidden size of the warp-per-row `*_warp_*` kernels (8 vectors of 8 elements per lane).
pub const RMSNORM_WARP_MAX_HIDDEN: u32 = 8 * 8 * 32;
/// Rows one CTA of the warp-per-row kernels works on at once (one per warp).
pub const RMSNORM_ROWS_PER_WARP_CTA: u32 = RMSNORM_THREADS / 32;
/// Dynamic shared memory an RMSNorm launch needs: one f32 partial sum per warp.
pub const RMSNORM_SMEM_BYTES: u32 = (RMSNORM_THREADS / 32) * 4;
