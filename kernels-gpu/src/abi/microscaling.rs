//! Parameters of `microscaling` (NVFP4 / MXFP4 / MXFP8 quantization, scale swizzle,
//! dequantization, tensor amax).
//!
//! Scale layouts (see `docs/kernels/microscaling.md`):
//! - linear: scale `(r, c)` at byte `r * scale_stride + c`;
//! - swizzled (128×4 tiles): rows padded to a multiple of 128, scale columns to a multiple of 4;
//!   scale `(r, c)` at byte `((r / 128) * (cp / 4) + c / 4) * 512 + (r % 32) * 16
//!   + ((r % 128) / 32) * 4 + c % 4`, `cp` the padded column count.

/// One quantize launch (`{nvfp4,mxfp4,mxfp8}_quantize[_grouped]_{bf16,f16,f32}`).
///
/// Input row `r` starts at `x + r * x_stride` elements; its packed codes at
/// `codes + r * codes_stride` bytes. NVFP4 scales are FP8 E4M3 bytes, MX scales UE8M0 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxQuantizeParams {
    /// `const T*`, `rows × x_stride` elements, `T` = bf16, f16 or f32.
    pub x: u64,
    /// `u8*`: FP4 (two per byte, element 2i in the low nibble) or FP8 codes.
    pub codes: u64,
    /// `u8*`: the scales, linear (`scale_stride`) or swizzled (`MX_FLAG_SWIZZLED`).
    pub scales: u64,
    /// NVFP4: `const f32*` holding the global encode scale g, or 0 to use `g`.
    pub global_scale: u64,
    /// Grouped kernels: `const i32*` `[groups]` cumulative row ends (`torch._grouped_mm` `offs`).
    /// Each end is clamped to `[previous end, rows]`; a clamp sets `MX_ERR_GROUP_BOUNDS` in
    /// `error_flag`.
    pub group_ends: u64,
    /// Grouped kernels: `i32*` `[groups + 1]`, written: the first scale row of each group's
    /// swizzled region, then the total number of scale rows.
    pub scale_offsets: u64,
    /// Grouped kernels: `u32*` error bits (`MX_ERR_*`), or 0.
    pub error_flag: u64,
    pub rows: u64,
    /// Elements between input rows.
    pub x_stride: u64,
    /// Bytes between code rows.
    pub codes_stride: u64,
    /// Bytes between scale rows (linear layout only).
    pub scale_stride: u64,
    /// `K / block` (16 for NVFP4, 32 for MX): scale columns.
    pub blocks_per_row: u32,
    /// Grouped kernels: number of groups, `1..=MX_MAX_GROUPS`.
    pub groups: u32,
    /// NVFP4 global encode scale when `global_scale` is 0 (finite, > 0).
    pub g: f32,
    /// `MX_FLAG_*` bits.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<MxQuantizeParams>() == 104);
const _: () = assert!(core::mem::align_of::<MxQuantizeParams>() == 8);

/// One dequantize launch (`{nvfp4,mxfp4,mxfp8}_dequantize_bf16`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxDequantizeParams {
    /// `const u8*` codes, rows `codes_stride` bytes apart.
    pub codes: u64,
    /// `const u8*` scales, linear or swizzled (`MX_FLAG_SWIZZLED`).
    pub scales: u64,
    /// `bf16*` output, rows `out_stride` elements apart.
    pub out: u64,
    /// NVFP4: `const f32*` holding g, or 0 to use `g`.
    pub global_scale: u64,
    pub rows: u64,
    pub codes_stride: u64,
    pub scale_stride: u64,
    pub out_stride: u64,
    pub blocks_per_row: u32,
    pub flags: u32,
    pub g: f32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<MxDequantizeParams>() == 80);
const _: () = assert!(core::mem::align_of::<MxDequantizeParams>() == 8);

/// `tensor_amax_{bf16,f16,f32}`: `max |x|` over a `rows × cols` matrix, folded into `*out` (the
/// f32 bits, as u32) with an atomic max; `out` must hold 0 before the launch.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxAmaxParams {
    pub x: u64,
    /// `u32*`: the bits of a non-negative f32 (or of a NaN, which orders above +Inf).
    pub out: u64,
    pub rows: u64,
    pub x_stride: u64,
    pub cols: u32,
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<MxAmaxParams>() == 40);
const _: () = assert!(core::mem::align_of::<MxAmaxParams>() == 8);

/// `nvfp4_global_scale`: `*g = 448 · 6 / *amax` (see `math::nvfp4_global_scale`); one thread.
/// `amax` and `g` may be the same address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxGlobalScaleParams {
    pub amax: u64,
    pub g: u64,
}
const _: () = assert!(core::mem::size_of::<MxGlobalScaleParams>() == 16);
const _: () = assert!(core::mem::align_of::<MxGlobalScaleParams>() == 8);

/// `swizzle_scales` (linear → swizzled, padding written as zeros) and `unswizzle_scales`
/// (swizzled → linear, padding not read).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MxSwizzleParams {
    /// `u8*` `[rows, cols]`, rows `linear_stride` bytes apart.
    pub linear: u64,
    /// `u8*`, `pad128(rows) * pad4(cols)` bytes, 16-byte aligned.
    pub swizzled: u64,
    pub rows: u64,
    pub linear_stride: u64,
    pub cols: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<MxSwizzleParams>() == 40);
const _: () = assert!(core::mem::align_of::<MxSwizzleParams>() == 8);

/// Threads per block of every microscaling kernel.
pub const MX_THREADS: u32 = 256;
/// Elements per NVFP4 scale block.
pub const NVFP4_BLOCK: u32 = 16;
/// Elements per MXFP4 / MXFP8 scale block.
pub const MX_BLOCK: u32 = 32;
/// Rows and scale columns of one swizzled tile (512 bytes).
pub const SWIZZLE_TILE_ROWS: u32 = 128;
pub const SWIZZLE_TILE_COLS: u32 = 4;
/// Most groups a grouped launch takes (its shared memory holds two u32 per group).
pub const MX_MAX_GROUPS: u32 = 4096;

/// Rows start 16-byte aligned in every matrix argument: 16-byte loads and stores.
pub const MX_FLAG_VECTORIZED: u32 = 1;
/// Scales use the 128×4 swizzled layout (else linear).
pub const MX_FLAG_SWIZZLED: u32 = 2;
/// MX scales round up (`2^⌈log2(amax / max)⌉`) instead of the OCP rule.
pub const MX_FLAG_ROUND_UP: u32 = 4;

/// Error bit of the grouped quantizers: a group end read on the device was negative, past the
/// rows of the input or below the previous end, and was clamped. Its own bit (none of the other
/// families' bits), so one flag can be shared with the grouped GEMMs and `qk_norm_rope`.
pub const MX_ERR_GROUP_BOUNDS: u32 = 4;

/// Dynamic shared memory of a grouped quantize launch: the clamped group ends, the scale row
/// offsets (`groups + 1`) and one u32 per thread of scan scratch.
pub const fn mx_grouped_smem_bytes(groups: u32) -> u32 {
    (2 * groups + 1 + MX_THREADS) * 4
}
