//! Warp-level shuffles and reductions (full 32-lane warps).

use core::arch::asm;

const FULL_MASK: u32 = 0xffff_ffff;

/// `shfl.sync.<mode>.b32` with a full member mask and `c = 0x1f` (whole-warp segments): the
/// 32-bit value of the lane that `mode` and `b` select.
///
/// # Safety
/// All 32 lanes of the warp must execute it convergently (full mask).
macro_rules! shfl_b32 {
    ($mode:literal, $v:expr, $b:expr) => {{
        let out: u32;
        // SAFETY: `shfl.sync` with a full member mask; the caller guarantees all lanes participate.
        unsafe {
            asm!(
                concat!("shfl.sync.", $mode, ".b32 {o}, {v}, {b}, 0x1f, {mask};"),
                o = out(reg32) out,
                v = in(reg32) $v,
                b = in(reg32) $b,
                mask = in(reg32) FULL_MASK,
                options(nomem, nostack, preserves_flags)
            );
        }
        out
    }};
}

/// `__shfl_xor_sync(0xffffffff, v, lane_mask)` on the bits of an f32.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently (full mask).
#[inline(always)]
pub unsafe fn shfl_xor_f32(v: f32, lane_mask: u32) -> f32 {
    f32::from_bits(shfl_b32!("bfly", v.to_bits(), lane_mask))
}

/// `__shfl_xor_sync(0xffffffff, v, lane_mask)` on 32 bits.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently (full mask).
#[inline(always)]
pub unsafe fn shfl_xor_u32(v: u32, lane_mask: u32) -> u32 {
    shfl_b32!("bfly", v, lane_mask)
}

/// `__shfl_sync(0xffffffff, v, src_lane)`: `v` of lane `src_lane % 32` (the instruction reads the
/// index's low 5 bits only, so callers may pass an index with higher bits set).
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently (full mask).
#[inline(always)]
pub unsafe fn shfl_idx_u32(v: u32, src_lane: u32) -> u32 {
    shfl_b32!("idx", v, src_lane)
}

/// Reduces `v` over aligned groups of `width` lanes (a power of two, 2..=32) with `op`,
/// returning the result to every lane of the group (butterfly: every lane computes the same
/// combination tree, so all lanes of a group get bit-identical results).
///
/// # Safety
/// All 32 lanes of the warp call it convergently (full mask), with the same `width`.
#[inline(always)]
pub unsafe fn warp_reduce_f32(mut v: f32, width: u32, op: impl Fn(f32, f32) -> f32) -> f32 {
    let mut m = width >> 1;
    while m > 0 {
        // SAFETY: forwarded from the caller: the whole warp is converged here.
        v = op(v, unsafe { shfl_xor_f32(v, m) });
        m >>= 1;
    }
    v
}

/// Sum of `v` over the warp, returned to every lane.
///
/// # Safety
/// All 32 lanes of the warp must call it convergently.
#[inline(always)]
pub unsafe fn warp_sum_f32(v: f32) -> f32 {
    // SAFETY: forwarded.
    unsafe { warp_reduce_f32(v, 32, |a, b| a + b) }
}

/// The larger of two values, NaN if either is NaN (`f32::max` would drop the NaN: a quantizer
/// must see it).
#[inline(always)]
pub fn max_nan(a: f32, b: f32) -> f32 {
    if a != a || a > b { a } else { b }
}

/// `__syncwarp()`: orders the shared-memory accesses of the warp's lanes.
///
/// # Safety
/// All 32 lanes of the warp execute it convergently (full mask).
#[inline(always)]
pub unsafe fn sync_warp() {
    // SAFETY: full-mask warp barrier; the caller guarantees all lanes reach it.
    unsafe { asm!("bar.warp.sync 0xffffffff;", options(nostack, preserves_flags)) };
}
