//! Warp-level shuffles and reductions (full 32-lane warps).

use core::arch::asm;

const FULL_MASK: u32 = 0xffff_ffff;

/// `__shfl_xor_sync(0xffffffff, v, lane_mask)` on the bits of an f32.
///
/// # Safety
/// All 32 lanes of the warp must execute this call convergently (full mask).
#[inline(always)]
pub unsafe fn shfl_xor_f32(v: f32, lane_mask: u32) -> f32 {
    let out: f32;
    // SAFETY: `shfl.sync` with a full member mask; the caller guarantees all lanes participate.
    unsafe {
        asm!(
            "shfl.sync.bfly.b32 {o}, {v}, {m}, 0x1f, {mask};",
            o = out(reg32) out,
            v = in(reg32) v,
            m = in(reg32) lane_mask,
            mask = in(reg32) FULL_MASK,
            options(nomem, nostack, preserves_flags)
        );
    }
    out
}

/// Sum of `v` over the warp, returned to every lane (butterfly reduction).
///
/// # Safety
/// All 32 lanes of the warp must call it convergently.
#[inline(always)]
pub unsafe fn warp_sum_f32(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        // SAFETY: forwarded from the caller: the whole warp is converged here.
        v += unsafe { shfl_xor_f32(v, m) };
        m >>= 1;
    }
    v
}

/// Max of `v` over the warp, returned to every lane. NaN-propagation follows `f32::max` (ignores NaN).
///
/// # Safety
/// All 32 lanes of the warp must call it convergently.
#[inline(always)]
pub unsafe fn warp_max_f32(mut v: f32) -> f32 {
    let mut m = 16;
    while m > 0 {
        // SAFETY: forwarded from the caller.
        v = v.max(unsafe { shfl_xor_f32(v, m) });
        m >>= 1;
    }
    v
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
