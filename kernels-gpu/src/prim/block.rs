//! Block-level reductions over a 1-D block whose size is a multiple of 32.

use super::{lane_id, sync_threads, warp::warp_reduce_f32, warp_id};

/// Reduces `v` over the whole block with `op` (associative, commutative), returning the result
/// to every thread.
///
/// `scratch` points to at least `block_dim / 32` f32 of shared memory that no other code uses
/// during the call. The function synchronizes the block twice, so the scratch may be reused after.
///
/// # Safety
/// Every thread of the block calls it convergently; the block size is a multiple of 32 and at most
/// 1024; `scratch` is valid shared memory of the size above.
#[inline(always)]
pub unsafe fn block_reduce_f32(v: f32, scratch: *mut f32, block_dim: u32, op: impl Fn(f32, f32) -> f32 + Copy) -> f32 {
    let warps = block_dim >> 5;
    // SAFETY: whole warps are converged here (caller's contract).
    let w = unsafe { warp_reduce_f32(v, 32, op) };
    if lane_id() == 0 {
        // SAFETY: warp_id() < warps, within the scratch the caller provided.
        unsafe { scratch.add(warp_id() as usize).write_volatile(w) };
    }
    // SAFETY: all threads reach this barrier (caller's contract).
    unsafe { sync_threads() };
    // SAFETY: written before the barrier above, warps >= 1. Every thread combines the same values
    // in the same order, so every thread gets a bit-identical result.
    let mut total = unsafe { scratch.read_volatile() };
    let mut i = 1;
    while i < warps {
        // SAFETY: i < warps.
        total = op(total, unsafe { scratch.add(i as usize).read_volatile() });
        i += 1;
    }
    // Second barrier: nobody may overwrite the scratch before every thread has read it.
    // SAFETY: all threads reach it.
    unsafe { sync_threads() };
    total
}

/// Sum of `v` over the whole block, returned to every thread (see `block_reduce_f32`).
///
/// # Safety
/// As `block_reduce_f32`.
#[inline(always)]
pub unsafe fn block_sum_f32(v: f32, scratch: *mut f32, block_dim: u32) -> f32 {
    // SAFETY: forwarded.
    unsafe { block_reduce_f32(v, scratch, block_dim, |a, b| a + b) }
}
