//! Global-memory access: 16-byte vector loads and stores, and scalar helpers.
//!
//! Pointers arrive from the host as generic addresses of global memory; each access converts with
//! `cvta.to.global` (free in SASS) before using the `.global` state space.

use core::arch::asm;

/// 16 bytes moved by one `ld/st.global.v4.u32`: 8 bf16/f16, 16 FP8 or 32 FP4 values.
#[repr(C, align(16))]
#[derive(Clone, Copy, Default)]
pub struct Vec16(pub [u32; 4]);

/// Loads 16 bytes through the read-only (non-coherent) path.
///
/// # Safety
/// `p` is a 16-byte-aligned global address valid for 16 bytes, and the memory is not written by
/// any thread during the kernel (`.nc` may serve stale data otherwise).
#[inline(always)]
pub unsafe fn ld_global_nc_v4(p: *const Vec16) -> Vec16 {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: alignment, validity and read-only-ness are the caller's contract.
    unsafe {
        asm!(
            "{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.v4.u32 {{{a}, {b}, {c}, {d}}}, [g]; }}",
            p = in(reg64) p,
            a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d,
            options(readonly, nostack, preserves_flags)
        );
    }
    Vec16([a, b, c, d])
}

/// Loads 16 bytes through the coherent path (memory this kernel also writes).
///
/// # Safety
/// `p` is a 16-byte-aligned global address valid for 16 bytes.
#[inline(always)]
pub unsafe fn ld_global_v4(p: *const Vec16) -> Vec16 {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: alignment and validity are the caller's contract.
    unsafe {
        asm!(
            "{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.v4.u32 {{{a}, {b}, {c}, {d}}}, [g]; }}",
            p = in(reg64) p,
            a = out(reg32) a, b = out(reg32) b, c = out(reg32) c, d = out(reg32) d,
            options(readonly, nostack, preserves_flags)
        );
    }
    Vec16([a, b, c, d])
}

/// Stores 16 bytes.
///
/// # Safety
/// `p` is a 16-byte-aligned global address valid for 16 bytes of writes, not accessed by other
/// threads of the grid without synchronization.
#[inline(always)]
pub unsafe fn st_global_v4(p: *mut Vec16, v: Vec16) {
    // SAFETY: alignment and validity are the caller's contract.
    unsafe {
        asm!(
            "{{ .reg .u64 g; cvta.to.global.u64 g, {p}; st.global.v4.u32 [g], {{{a}, {b}, {c}, {d}}}; }}",
            p = in(reg64) p,
            a = in(reg32) v.0[0], b = in(reg32) v.0[1], c = in(reg32) v.0[2], d = in(reg32) v.0[3],
            options(nostack, preserves_flags)
        );
    }
}

/// Element pointer `base + row * stride + col` for a row-major matrix of `T` given as a `u64`
/// device address.
#[inline(always)]
pub fn elem_ptr<T>(base: u64, row: u64, stride: u64, col: u64) -> *mut T {
    (base as *mut T).wrapping_add((row * stride + col) as usize)
}
