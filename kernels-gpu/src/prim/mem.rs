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

/// Loads `N` consecutive 16-bit values (`N` ∈ {1, 2, 4, 8}) from global memory: one 2-, 4-, 8- or
/// 16-byte access when `vector`, `N` scalar accesses otherwise. Coherent (not `.nc`), so it may
/// read memory the same kernel writes.
///
/// # Safety
/// `p` is a global address valid for `N` u16; when `vector`, it is aligned to `2 * N` bytes.
#[inline(always)]
pub unsafe fn ld_u16xn<const N: usize>(p: *const u16, vector: bool) -> [u16; N] {
    let mut out = [0u16; N];
    if !vector || N == 1 {
        for (i, o) in out.iter_mut().enumerate() {
            // SAFETY: i < N, inside the caller's range.
            *o = unsafe { p.add(i).read() };
        }
        return out;
    }
    let mut w = [0u32; 4];
    // SAFETY: alignment to 2N bytes and validity are the caller's contract; each arm reads
    // exactly 2N bytes.
    unsafe {
        match N {
            2 => asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.b32 {a}, [g]; }}",
                      p = in(reg64) p, a = out(reg32) w[0], options(readonly, nostack, preserves_flags)),
            4 => asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.v2.b32 {{{a}, {b}}}, [g]; }}",
                      p = in(reg64) p, a = out(reg32) w[0], b = out(reg32) w[1],
                      options(readonly, nostack, preserves_flags)),
            _ => {
                let v = ld_global_v4(p as *const Vec16);
                w = v.0;
            }
        }
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = (w[i / 2] >> (16 * (i % 2))) as u16;
    }
    out
}

/// Stores `N` consecutive 16-bit values (see `ld_u16xn`).
///
/// # Safety
/// `p` is a global address valid for `N` u16 of writes; when `vector`, aligned to `2 * N` bytes.
#[inline(always)]
pub unsafe fn st_u16xn<const N: usize>(p: *mut u16, v: [u16; N], vector: bool) {
    if !vector || N == 1 {
        for (i, x) in v.iter().enumerate() {
            // SAFETY: i < N, inside the caller's range.
            unsafe { p.add(i).write(*x) };
        }
        return;
    }
    let mut w = [0u32; 4];
    for (i, x) in v.iter().enumerate() {
        w[i / 2] |= (*x as u32) << (16 * (i % 2));
    }
    // SAFETY: alignment and validity are the caller's contract; each arm writes exactly 2N bytes.
    unsafe {
        match N {
            2 => asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; st.global.b32 [g], {a}; }}",
                      p = in(reg64) p, a = in(reg32) w[0], options(nostack, preserves_flags)),
            4 => asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; st.global.v2.b32 [g], {{{a}, {b}}}; }}",
                      p = in(reg64) p, a = in(reg32) w[0], b = in(reg32) w[1], options(nostack, preserves_flags)),
            _ => st_global_v4(p as *mut Vec16, Vec16(w)),
        }
    }
}

/// Sets a device-side error flag (a u32 the host reads later) with a relaxed atomic store: many
/// threads may set it at once.
///
/// # Safety
/// `flag` is a valid, 4-byte aligned global address (or null, which does nothing).
#[inline(always)]
pub unsafe fn raise_flag(flag: *mut u32, value: u32) {
    if flag.is_null() {
        return;
    }
    // SAFETY: valid and aligned per the contract; atomic, so concurrent stores are not a race.
    unsafe { core::sync::atomic::AtomicU32::from_ptr(flag).fetch_or(value, core::sync::atomic::Ordering::Relaxed) };
}

/// Loads 8 bytes through the read-only path.
///
/// # Safety
/// `p` is an 8-byte-aligned global address valid for 8 bytes, not written during the kernel.
#[inline(always)]
pub unsafe fn ld_global_nc_b64(p: *const u64) -> u64 {
    let v: u64;
    // SAFETY: alignment, validity and read-only-ness are the caller's contract.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; ld.global.nc.b64 {v}, [g]; }}",
             p = in(reg64) p, v = out(reg64) v, options(readonly, nostack, preserves_flags));
    }
    v
}

/// Stores 8 bytes.
///
/// # Safety
/// `p` is an 8-byte-aligned global address valid for 8 bytes of writes.
#[inline(always)]
pub unsafe fn st_global_b64(p: *mut u64, v: u64) {
    // SAFETY: alignment and validity are the caller's contract.
    unsafe {
        asm!("{{ .reg .u64 g; cvta.to.global.u64 g, {p}; st.global.b64 [g], {v}; }}",
             p = in(reg64) p, v = in(reg64) v, options(nostack, preserves_flags));
    }
}
