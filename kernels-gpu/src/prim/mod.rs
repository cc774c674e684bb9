//! Device primitives: the only place that touches special registers, barriers, shared memory and
//! inline PTX. Kernels are written from these.

/// Repeats a block once per listed index, with the index bound as a `const usize`, so register
/// arrays indexed by it stay in registers (a run-time index would move them to local memory).
///
/// ```ignore
/// unroll!(i in [0, 1, 2, 3] { acc[i] += x[i]; });
/// ```
#[macro_export]
macro_rules! unroll {
    ($i:ident in [$($n:literal),* $(,)?] $body:block) => {
        $( { #[allow(non_upper_case_globals)] const $i: usize = $n; $body } )*
    };
}

pub mod block;
pub mod convert;
#[cfg(target_feature = "sm_90a")]
pub mod hopper;
pub mod kv_fp8;
pub mod mem;
pub mod packed;
pub mod soft;
pub mod trig;
pub mod warp;

use core::arch::nvptx;

/// `threadIdx.x`.
#[inline(always)]
pub fn thread_idx_x() -> u32 {
    // SAFETY: reads a special register; no memory is touched.
    unsafe { nvptx::_thread_idx_x() }
}

/// `blockIdx.x`.
#[inline(always)]
pub fn block_idx_x() -> u32 {
    // SAFETY: reads a special register.
    unsafe { nvptx::_block_idx_x() }
}

/// `blockDim.x`.
#[inline(always)]
pub fn block_dim_x() -> u32 {
    // SAFETY: reads a special register.
    unsafe { nvptx::_block_dim_x() }
}

/// `gridDim.x`.
#[inline(always)]
pub fn grid_dim_x() -> u32 {
    // SAFETY: reads a special register.
    unsafe { nvptx::_grid_dim_x() }
}

/// Lane within the warp (`threadIdx.x % 32` for 1-D blocks).
#[inline(always)]
pub fn lane_id() -> u32 {
    thread_idx_x() & 31
}

/// Warp index within a 1-D block.
#[inline(always)]
pub fn warp_id() -> u32 {
    thread_idx_x() >> 5
}

/// `__syncthreads()`.
///
/// # Safety
/// Every thread of the block must reach this same barrier (no call under thread-divergent
/// control flow), or the block deadlocks / behaves undefinedly.
#[inline(always)]
pub unsafe fn sync_threads() {
    // SAFETY: the caller guarantees the barrier is reached by all threads of the block.
    unsafe { nvptx::_syncthreads() }
}

/// Aborts the kernel: the launch reports an error to the host.
#[inline(always)]
pub fn trap() -> ! {
    // SAFETY: `trap` has no preconditions; it ends the thread's (and the grid's) execution.
    unsafe { nvptx::trap() }
}

/// The launch's dynamic shared memory, viewed as `T`s.
///
/// # Safety
/// The launch must have asked for at least as many bytes of dynamic shared memory as the caller
/// accesses through the pointer; all views alias the same bytes.
#[inline(always)]
pub unsafe fn dynamic_smem<T>() -> *mut T {
    core::intrinsics::gpu::gpu_launch_sized_workgroup_mem::<T>()
}

/// IEEE square root, round to nearest (`sqrt.rn.f32`, not the approximate `sqrt.approx`).
#[inline(always)]
pub fn sqrt_rn(x: f32) -> f32 {
    let out: f32;
    // SAFETY: pure register arithmetic.
    unsafe {
        core::arch::asm!("sqrt.rn.f32 {o}, {x};", o = out(reg32) out, x = in(reg32) x,
                         options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `v`, unchanged, through an empty `asm` statement the compiler must keep where it is (it is not
/// `pure`): what is computed from the result is computed after this point, not hoisted above it
/// (out of a loop, where its values would stay live across the loop's body). Costs no
/// instruction.
#[inline(always)]
pub fn opaque_u32(mut v: u32) -> u32 {
    // SAFETY: an empty instruction sequence on a register; it only pins the value's order.
    unsafe { core::arch::asm!("// {0}", inout(reg32) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// `v`, unchanged, through an empty `asm` statement the compiler must keep where it is (it is not
/// `pure`): a value that passes through it is not the same value to the optimizer before and
/// after. Kernels holding packed 16-bit data in registers use it so that the widening to f32 is
/// redone where it is needed instead of being hoisted or shared, which would keep the f32 copies
/// (twice the registers) alive in between. Costs no instruction.
#[inline(always)]
pub fn opaque_u32x4(mut v: [u32; 4]) -> [u32; 4] {
    // SAFETY: an empty instruction sequence on registers; it only pins the value's order.
    unsafe {
        core::arch::asm!("// {0} {1} {2} {3}", inout(reg32) v[0], inout(reg32) v[1], inout(reg32) v[2],
                         inout(reg32) v[3], options(nomem, nostack, preserves_flags));
    }
    v
}
