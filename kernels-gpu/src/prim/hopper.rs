//! Hopper (sm_90a) primitives: mbarriers, the tensor memory accelerator (TMA), warpgroup MMA
//! (wgmma) and its shared-memory matrix descriptors, register reallocation. All inline PTX of the
//! Hopper kernels lives here; compiled only into the sm_90a module.
//!
//! Shared-memory addresses are 32-bit `.shared` addresses (`smem_addr`), as these instructions
//! take them.

use core::arch::asm;

/// The 32-bit shared-state-space address of a generic pointer into shared memory.
#[inline(always)]
pub fn smem_addr<T>(p: *const T) -> u32 {
    let a: u64;
    // SAFETY: pure address arithmetic; `p` points into shared memory (callers' use).
    unsafe {
        asm!("cvta.to.shared.u64 {a}, {p};", a = out(reg64) a, p = in(reg64) p,
             options(pure, nomem, nostack, preserves_flags));
    }
    a as u32
}

/// Initializes an mbarrier expecting `count` arrivals per phase.
///
/// # Safety
/// `bar` is an 8-byte aligned shared address no thread uses until a fence and barrier after this.
#[inline(always)]
pub unsafe fn mbarrier_init(bar: u32, count: u32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("mbarrier.init.shared::cta.b64 [{b}], {c};", b = in(reg32) bar, c = in(reg32) count, options(nostack))
    };
}

/// Makes mbarrier initializations visible to the async proxy (TMA) and other threads; follow it
/// with a block barrier.
///
/// # Safety
/// None beyond being called after the inits it publishes.
#[inline(always)]
pub unsafe fn fence_mbarrier_init() {
    // SAFETY: a fence.
    unsafe { asm!("fence.mbarrier_init.release.cluster;", options(nostack)) };
}

/// Arrives on `bar` and adds `bytes` to the transaction count the current phase waits for (the
/// producer's half of a TMA stage).
///
/// # Safety
/// `bar` is an initialized mbarrier.
#[inline(always)]
pub unsafe fn mbarrier_arrive_expect_tx(bar: u32, bytes: u32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("mbarrier.arrive.expect_tx.shared::cta.b64 _, [{b}], {n};", b = in(reg32) bar, n = in(reg32) bytes,
             options(nostack))
    };
}

/// Arrives on `bar` (one of its expected arrivals).
///
/// # Safety
/// `bar` is an initialized mbarrier.
#[inline(always)]
pub unsafe fn mbarrier_arrive(bar: u32) {
    // SAFETY: caller's contract.
    unsafe { asm!("mbarrier.arrive.shared::cta.b64 _, [{b}];", b = in(reg32) bar, options(nostack)) };
}

/// Waits until the phase of `bar` with parity `parity` has completed.
///
/// # Safety
/// `bar` is an initialized mbarrier that will complete that phase (or the wait never ends).
#[inline(always)]
pub unsafe fn mbarrier_wait(bar: u32, parity: u32) {
    loop {
        let done: u32;
        // SAFETY: caller's contract; `try_wait` may return false before the phase completes (it
        // suspends for a system-dependent time), so the loop retries.
        unsafe {
            asm!(
                "{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [{b}], {ph}; selp.u32 {d}, 1, 0, p; }}",
                b = in(reg32) bar, ph = in(reg32) parity, d = out(reg32) done, options(nostack)
            )
        };
        if done != 0 {
            return;
        }
    }
}

/// TMA: copies the 2-D box at coordinates (`c0` innermost, `c1`) of the tensor described by the
/// tensor map at `tmap` (a generic address of global memory) to shared memory at `dst`,
/// completing `bytes` of transactions on `bar`. Out-of-bounds elements are filled with zeros.
///
/// # Safety
/// `tmap` points to a valid, 64-byte aligned `CUtensorMap` that stays unchanged during the
/// kernel; `dst` is shared memory of the box's size, aligned as the map's swizzle needs (1024 bytes
/// for 128-byte swizzling); `bar` expects the bytes.
#[inline(always)]
pub unsafe fn tma_load_2d(dst: u32, tmap: u64, c0: i32, c1: i32, bar: u32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!(
            "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [{d}], [{m}, {{{x}, {y}}}], [{b}];",
            d = in(reg32) dst, m = in(reg64) tmap, x = in(reg32) c0, y = in(reg32) c1, b = in(reg32) bar,
            options(nostack)
        )
    };
}

/// TMA store: copies the 2-D box at shared address `src` (in the map's swizzle layout) to the
/// tensor described by the tensor map at `tmap`, at coordinates (`c0` innermost, `c1`); the parts
/// of the box outside the tensor are not written. The copy joins this thread's current bulk
/// async-group (`bulk_commit_group`).
///
/// # Safety
/// `tmap` points to a valid, 64-byte aligned `CUtensorMap` that stays unchanged during the kernel;
/// `src` is shared memory of the box's size, aligned as the map's swizzle needs (1024 bytes for
/// 128-byte swizzling), written before and made visible to the async proxy
/// (`fence_proxy_async_shared` after the writes, and a barrier between other threads' writes and
/// this call); `src` is not written again, nor the shared memory released (the CTA's exit), before
/// a `bulk_wait_group_read` of this thread retires the copy's group. No other access to the
/// tensor's bytes the box covers races with it.
#[inline(always)]
pub unsafe fn tma_store_2d(tmap: u64, src: u32, c0: i32, c1: i32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!(
            "cp.async.bulk.tensor.2d.global.shared::cta.bulk_group [{m}, {{{x}, {y}}}], [{s}];",
            m = in(reg64) tmap, x = in(reg32) c0, y = in(reg32) c1, s = in(reg32) src,
            options(nostack)
        )
    };
}

/// `cp.async.bulk.commit_group`: this thread's bulk copies issued since the last commit form a
/// group, which `bulk_wait_group_read` waits for.
#[inline(always)]
pub fn bulk_commit_group() {
    // SAFETY: no operands; it only groups this thread's bulk copies already issued.
    unsafe { asm!("cp.async.bulk.commit_group;", options(nostack)) };
}

/// `cp.async.bulk.wait_group.read N`: waits until at most `N` of this thread's newest committed
/// bulk groups still read their shared-memory sources; the others' sources may be written again.
#[inline(always)]
pub fn bulk_wait_group_read<const N: u32>() {
    // SAFETY: it only waits; a memory clobber keeps later shared stores below it.
    unsafe { asm!("cp.async.bulk.wait_group.read {n};", n = const N, options(nostack)) };
}

/// `cp.async.bulk.wait_group N`: waits until at most `N` of this thread's newest committed bulk
/// groups are incomplete (their writes done, their sources read).
#[inline(always)]
pub fn bulk_wait_group<const N: u32>() {
    // SAFETY: as `bulk_wait_group_read`.
    unsafe { asm!("cp.async.bulk.wait_group {n};", n = const N, options(nostack)) };
}

/// `fence.proxy.async.shared::cta`: orders this thread's earlier shared-memory accesses through
/// the generic proxy (and those ordered before them, e.g. by a barrier) before its later
/// async-proxy operations (TMA stores reading that memory).
#[inline(always)]
pub fn fence_proxy_async_shared() {
    // SAFETY: a fence; no operands.
    unsafe { asm!("fence.proxy.async.shared::cta;", options(nostack)) };
}

/// `bar.sync id, count`: a named barrier for `count` threads (a multiple of 32), a subset of the
/// block (e.g. one warpgroup), independent of `__syncthreads` (barrier 0).
///
/// # Safety
/// `id` is in 1..16 and not used with another count at the same time; exactly `count` threads,
/// whole warps, reach it each time.
#[inline(always)]
pub unsafe fn named_barrier_sync(id: u32, count: u32) {
    // SAFETY: caller's contract.
    unsafe { asm!("bar.sync {i}, {c};", i = in(reg32) id, c = in(reg32) count, options(nostack)) };
}

/// `stmatrix.sync.aligned.m8n8.x4.shared.b16`: four 8 × 8 matrices of b16 to shared memory.
/// Register `rq` of lane `l` holds row `l / 4`, columns `2 (l % 4)` (low half) and `+ 1` of
/// matrix `q` (the fragment of a wgmma / mma accumulator pair, converted); lane `8q + r` gives
/// the shared address of row `r` of matrix `q` (16 bytes).
///
/// # Safety
/// Executed by all 32 lanes of the warp (converged); every lane's `addr` is a 16-byte aligned
/// shared address inside the launch's shared memory, not read or written by other threads without
/// a barrier between, and not the source of a TMA store still in flight.
#[inline(always)]
pub unsafe fn stmatrix_x4(addr: u32, r0: u32, r1: u32, r2: u32, r3: u32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!(
            "stmatrix.sync.aligned.m8n8.x4.shared.b16 [{a}], {{{x}, {y}, {z}, {w}}};",
            a = in(reg32) addr, x = in(reg32) r0, y = in(reg32) r1, z = in(reg32) r2, w = in(reg32) r3,
            options(nostack)
        )
    };
}

/// Loads 16 bytes at shared address `addr` (`ld.shared.v4.b32`).
///
/// # Safety
/// `addr` is a 16-byte aligned shared address inside the launch's shared memory, written before
/// (by other threads: with a barrier between).
#[inline(always)]
pub unsafe fn ld_shared_v4(addr: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: caller's contract.
    unsafe {
        asm!("ld.shared.v4.b32 {{{a}, {b}, {c}, {d}}}, [{p}];", a = out(reg32) a, b = out(reg32) b,
             c = out(reg32) c, d = out(reg32) d, p = in(reg32) addr, options(nostack, readonly, preserves_flags))
    };
    [a, b, c, d]
}

/// Loads the f32 at shared address `addr` (`ld.shared.f32`), e.g. what a TMA copy wrote once its
/// mbarrier phase has completed. Ordered after earlier barrier waits: the statement is not pure.
///
/// # Safety
/// `addr` is a 4-byte aligned shared address inside the launch's shared memory, written before
/// (and, if by a TMA copy, after a wait on its mbarrier phase).
#[inline(always)]
pub unsafe fn ld_shared_f32(addr: u32) -> f32 {
    let v: f32;
    // SAFETY: caller's contract.
    unsafe {
        asm!("ld.shared.f32 {v}, [{a}];", v = out(reg32) v, a = in(reg32) addr,
             options(nostack, readonly, preserves_flags))
    };
    v
}

/// Orders this thread's later uses of the tensor map at `tmap` (TMA loads, prefetches, which go
/// through the tensormap proxy) after the map's writes through the generic proxy: maps the host
/// copied into global memory need it before their first use in a kernel (PTX ISA 8.3).
///
/// # Safety
/// `tmap` is the generic address of a 128-byte tensor map in global memory.
#[inline(always)]
pub unsafe fn fence_tensormap_acquire(tmap: u64) {
    // SAFETY: a fence on the caller's address; no memory is written.
    unsafe { asm!("fence.proxy.tensormap::generic.acquire.gpu [{m}], 128;", m = in(reg64) tmap, options(nostack)) };
}

/// Prefetches a tensor map into the TMA unit's cache.
///
/// # Safety
/// `tmap` is the generic address of a valid tensor map.
#[inline(always)]
pub unsafe fn prefetch_tensormap(tmap: u64) {
    // SAFETY: a hint; caller's contract on the address.
    unsafe { asm!("prefetch.tensormap [{m}];", m = in(reg64) tmap, options(nostack)) };
}

/// Shared-memory matrix descriptor of a K-major operand tile stored with 128-byte swizzling (as
/// TMA writes it with `CU_TENSOR_MAP_SWIZZLE_128B`): rows of 128 bytes, 8-row groups 1024 bytes
/// apart. `addr` is the 16-byte aligned shared address of the first element to read (a tile
/// start, 1024-byte aligned, plus a K offset inside the 128-byte row).
///
/// ```text
/// bits  0..14  start address >> 4      bits 16..30  leading byte offset >> 4 (unused: 1)
/// bits 32..46  stride byte offset >> 4 (1024 B between 8-row groups)
/// bits 62..64  swizzle mode (1 = 128-byte)
/// ```
#[inline(always)]
pub const fn smem_desc_k_major_sw128(addr: u32) -> u64 {
    let start = ((addr & 0x3_ffff) >> 4) as u64;
    let lbo = 1u64;
    let sbo = (1024u64 >> 4) & 0x3fff;
    start | (lbo << 16) | (sbo << 32) | (1u64 << 62)
}

/// `wgmma.fence`: orders this warpgroup's register accesses before the next `wgmma.mma_async`.
///
/// # Safety
/// Executed by all threads of the warpgroup.
#[inline(always)]
pub unsafe fn wgmma_fence() {
    // SAFETY: caller's contract.
    unsafe { asm!("wgmma.fence.sync.aligned;", options(nostack)) };
}

/// Closes the current group of `wgmma.mma_async` operations.
///
/// # Safety
/// Executed by all threads of the warpgroup.
#[inline(always)]
pub unsafe fn wgmma_commit() {
    // SAFETY: caller's contract.
    unsafe { asm!("wgmma.commit_group.sync.aligned;", options(nostack)) };
}

/// Waits until at most `N` committed wgmma groups are pending.
///
/// # Safety
/// Executed by all threads of the warpgroup.
#[inline(always)]
pub unsafe fn wgmma_wait<const N: u32>() {
    // SAFETY: caller's contract.
    unsafe { asm!("wgmma.wait_group.sync.aligned {n};", n = const N, options(nostack)) };
}

/// Gives this warpgroup's registers back down to `N` per thread (producer warpgroups).
///
/// # Safety
/// Executed by all threads of the warpgroup; the kernel has launch bounds (`.maxntid`).
#[inline(always)]
pub unsafe fn setmaxnreg_dec<const N: u32>() {
    // SAFETY: caller's contract.
    unsafe { asm!("setmaxnreg.dec.sync.aligned.u32 {n};", n = const N, options(nostack)) };
}

/// Raises this warpgroup's registers to `N` per thread (math warpgroups).
///
/// # Safety
/// As `setmaxnreg_dec`, and enough registers were released by other warpgroups.
#[inline(always)]
pub unsafe fn setmaxnreg_inc<const N: u32>() {
    // SAFETY: caller's contract.
    unsafe { asm!("setmaxnreg.inc.sync.aligned.u32 {n};", n = const N, options(nostack)) };
}

/// Compiler fence on accumulator registers: an empty side-effecting `asm` that reads and writes
/// all of them, so the compiler keeps every access of `d` on its side of the surrounding wgmma
/// statements. Needed after `wgmma_wait` (the MMA writes `d` asynchronously, but the compiler
/// believes the values exist when the `wgmma.mma_async` statement ends, and could otherwise move
/// their first reads above the wait) and before `wgmma_fence`.
#[inline(always)]
pub fn fence_operands(d: &mut [f32; 64]) {
    // SAFETY: an empty instruction sequence; it only pins the registers' order of access.
    unsafe {
        asm!(
            "// fence {d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}, {d32}, {d33}, {d34}, {d35}, {d36}, {d37}, {d38}, {d39}, {d40}, {d41}, {d42}, {d43}, {d44}, {d45}, {d46}, {d47}, {d48}, {d49}, {d50}, {d51}, {d52}, {d53}, {d54}, {d55}, {d56}, {d57}, {d58}, {d59}, {d60}, {d61}, {d62}, {d63}",
            d0 = inout(reg32) d[0],
            d1 = inout(reg32) d[1],
            d2 = inout(reg32) d[2],
            d3 = inout(reg32) d[3],
            d4 = inout(reg32) d[4],
            d5 = inout(reg32) d[5],
            d6 = inout(reg32) d[6],
            d7 = inout(reg32) d[7],
            d8 = inout(reg32) d[8],
            d9 = inout(reg32) d[9],
            d10 = inout(reg32) d[10],
            d11 = inout(reg32) d[11],
            d12 = inout(reg32) d[12],
            d13 = inout(reg32) d[13],
            d14 = inout(reg32) d[14],
            d15 = inout(reg32) d[15],
            d16 = inout(reg32) d[16],
            d17 = inout(reg32) d[17],
            d18 = inout(reg32) d[18],
            d19 = inout(reg32) d[19],
            d20 = inout(reg32) d[20],
            d21 = inout(reg32) d[21],
            d22 = inout(reg32) d[22],
            d23 = inout(reg32) d[23],
            d24 = inout(reg32) d[24],
            d25 = inout(reg32) d[25],
            d26 = inout(reg32) d[26],
            d27 = inout(reg32) d[27],
            d28 = inout(reg32) d[28],
            d29 = inout(reg32) d[29],
            d30 = inout(reg32) d[30],
            d31 = inout(reg32) d[31],
            d32 = inout(reg32) d[32],
            d33 = inout(reg32) d[33],
            d34 = inout(reg32) d[34],
            d35 = inout(reg32) d[35],
            d36 = inout(reg32) d[36],
            d37 = inout(reg32) d[37],
            d38 = inout(reg32) d[38],
            d39 = inout(reg32) d[39],
            d40 = inout(reg32) d[40],
            d41 = inout(reg32) d[41],
            d42 = inout(reg32) d[42],
            d43 = inout(reg32) d[43],
            d44 = inout(reg32) d[44],
            d45 = inout(reg32) d[45],
            d46 = inout(reg32) d[46],
            d47 = inout(reg32) d[47],
            d48 = inout(reg32) d[48],
            d49 = inout(reg32) d[49],
            d50 = inout(reg32) d[50],
            d51 = inout(reg32) d[51],
            d52 = inout(reg32) d[52],
            d53 = inout(reg32) d[53],
            d54 = inout(reg32) d[54],
            d55 = inout(reg32) d[55],
            d56 = inout(reg32) d[56],
            d57 = inout(reg32) d[57],
            d58 = inout(reg32) d[58],
            d59 = inout(reg32) d[59],
            d60 = inout(reg32) d[60],
            d61 = inout(reg32) d[61],
            d62 = inout(reg32) d[62],
            d63 = inout(reg32) d[63],
            options(nostack, preserves_flags)
        );
    }
}

/// `fence_operands` for the 32 accumulator registers of an m64n64 wgmma.
#[inline(always)]
pub fn fence_operands_32(d: &mut [f32; 32]) {
    // SAFETY: an empty instruction sequence; it only pins the registers' order of access.
    unsafe {
        asm!(
            "// fence {d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}",
            d0 = inout(reg32) d[0],
            d1 = inout(reg32) d[1],
            d2 = inout(reg32) d[2],
            d3 = inout(reg32) d[3],
            d4 = inout(reg32) d[4],
            d5 = inout(reg32) d[5],
            d6 = inout(reg32) d[6],
            d7 = inout(reg32) d[7],
            d8 = inout(reg32) d[8],
            d9 = inout(reg32) d[9],
            d10 = inout(reg32) d[10],
            d11 = inout(reg32) d[11],
            d12 = inout(reg32) d[12],
            d13 = inout(reg32) d[13],
            d14 = inout(reg32) d[14],
            d15 = inout(reg32) d[15],
            d16 = inout(reg32) d[16],
            d17 = inout(reg32) d[17],
            d18 = inout(reg32) d[18],
            d19 = inout(reg32) d[19],
            d20 = inout(reg32) d[20],
            d21 = inout(reg32) d[21],
            d22 = inout(reg32) d[22],
            d23 = inout(reg32) d[23],
            d24 = inout(reg32) d[24],
            d25 = inout(reg32) d[25],
            d26 = inout(reg32) d[26],
            d27 = inout(reg32) d[27],
            d28 = inout(reg32) d[28],
            d29 = inout(reg32) d[29],
            d30 = inout(reg32) d[30],
            d31 = inout(reg32) d[31],
            options(nostack, preserves_flags)
        );
    }
}

/// The first 32 of 64 accumulator registers: the accumulator of an m64n64 wgmma kept in the
/// array of an m64n128 one (the other 32 are then never used, and the compiler drops them).
#[inline(always)]
pub fn low_half(d: &mut [f32; 64]) -> &mut [f32; 32] {
    // SAFETY: the first 32 elements of the array (same element type and alignment), borrowed for
    // as long as `d` is.
    unsafe { &mut *(d as *mut [f32; 64] as *mut [f32; 32]) }
}

/// Defines a warpgroup MMA `d (64×128 f32, 64 registers per thread) = [d +] A · Bᵀ` with A and B
/// K-major in shared memory (descriptors), one `wgmma.mma_async` of the given shape and types.
macro_rules! wgmma_m64n128 {
    ($(#[$doc:meta])* $name:ident, $instr:literal, $tail:literal) => {
        $(#[$doc])*
        ///
        /// Register layout of `d` (thread t of the warpgroup, warp w = t/32, lane l): element
        /// `d[4j + 2h + e]` is row `16w + l/4 + 8h`, column `8j + 2(l%4) + e`. `accumulate =
        /// false` overwrites `d`.
        ///
        /// # Safety
        /// Executed by all threads of the warpgroup after `wgmma_fence`, with descriptors of valid
        /// shared-memory tiles that stay unchanged until a `wgmma_wait` covers this operation;
        /// `d` is not read or written until then (see `fence_operands`).
        #[inline(always)]
        pub unsafe fn $name(d: &mut [f32; 64], desc_a: u64, desc_b: u64, accumulate: bool) {
            let scale_d = accumulate as u32;
            // SAFETY: caller's contract.
            unsafe {
                asm!(
                    "{{ .reg .pred p; setp.ne.b32 p, {sd}, 0;",
                    $instr,
                    "{{{d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}, {d32}, {d33}, {d34}, {d35}, {d36}, {d37}, {d38}, {d39}, {d40}, {d41}, {d42}, {d43}, {d44}, {d45}, {d46}, {d47}, {d48}, {d49}, {d50}, {d51}, {d52}, {d53}, {d54}, {d55}, {d56}, {d57}, {d58}, {d59}, {d60}, {d61}, {d62}, {d63}}},",
                    $tail,
                    sd = in(reg32) scale_d, da = in(reg64) desc_a, db = in(reg64) desc_b,
                    d0 = inout(reg32) d[0],
                    d1 = inout(reg32) d[1],
                    d2 = inout(reg32) d[2],
                    d3 = inout(reg32) d[3],
                    d4 = inout(reg32) d[4],
                    d5 = inout(reg32) d[5],
                    d6 = inout(reg32) d[6],
                    d7 = inout(reg32) d[7],
                    d8 = inout(reg32) d[8],
                    d9 = inout(reg32) d[9],
                    d10 = inout(reg32) d[10],
                    d11 = inout(reg32) d[11],
                    d12 = inout(reg32) d[12],
                    d13 = inout(reg32) d[13],
                    d14 = inout(reg32) d[14],
                    d15 = inout(reg32) d[15],
                    d16 = inout(reg32) d[16],
                    d17 = inout(reg32) d[17],
                    d18 = inout(reg32) d[18],
                    d19 = inout(reg32) d[19],
                    d20 = inout(reg32) d[20],
                    d21 = inout(reg32) d[21],
                    d22 = inout(reg32) d[22],
                    d23 = inout(reg32) d[23],
                    d24 = inout(reg32) d[24],
                    d25 = inout(reg32) d[25],
                    d26 = inout(reg32) d[26],
                    d27 = inout(reg32) d[27],
                    d28 = inout(reg32) d[28],
                    d29 = inout(reg32) d[29],
                    d30 = inout(reg32) d[30],
                    d31 = inout(reg32) d[31],
                    d32 = inout(reg32) d[32],
                    d33 = inout(reg32) d[33],
                    d34 = inout(reg32) d[34],
                    d35 = inout(reg32) d[35],
                    d36 = inout(reg32) d[36],
                    d37 = inout(reg32) d[37],
                    d38 = inout(reg32) d[38],
                    d39 = inout(reg32) d[39],
                    d40 = inout(reg32) d[40],
                    d41 = inout(reg32) d[41],
                    d42 = inout(reg32) d[42],
                    d43 = inout(reg32) d[43],
                    d44 = inout(reg32) d[44],
                    d45 = inout(reg32) d[45],
                    d46 = inout(reg32) d[46],
                    d47 = inout(reg32) d[47],
                    d48 = inout(reg32) d[48],
                    d49 = inout(reg32) d[49],
                    d50 = inout(reg32) d[50],
                    d51 = inout(reg32) d[51],
                    d52 = inout(reg32) d[52],
                    d53 = inout(reg32) d[53],
                    d54 = inout(reg32) d[54],
                    d55 = inout(reg32) d[55],
                    d56 = inout(reg32) d[56],
                    d57 = inout(reg32) d[57],
                    d58 = inout(reg32) d[58],
                    d59 = inout(reg32) d[59],
                    d60 = inout(reg32) d[60],
                    d61 = inout(reg32) d[61],
                    d62 = inout(reg32) d[62],
                    d63 = inout(reg32) d[63],
                    options(nostack)
                );
            }
        }
    };
}

wgmma_m64n128!(
    /// One `wgmma.mma_async.m64n128k32` with E4M3 operands (QGMMA): A 64×32, B 128×32.
    wgmma_m64n128k32_e4m3,
    "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}"
);

wgmma_m64n128!(
    /// One `wgmma.mma_async.m64n128k16` with bf16 operands (HGMMA): A 64×16, B 128×16, no
    /// transposes (both K-major).
    wgmma_m64n128k16_bf16,
    "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}"
);

/// Defines a warpgroup MMA `d (64×64 f32, 32 registers per thread) = [d +] A · Bᵀ` with A and B
/// K-major in shared memory (descriptors), one `wgmma.mma_async` of the given shape and types.
macro_rules! wgmma_m64n64 {
    ($(#[$doc:meta])* $name:ident, $instr:literal, $tail:literal) => {
        $(#[$doc])*
        ///
        /// Register layout of `d` as the m64n128 form's (thread t of the warpgroup, warp w = t/32,
        /// lane l): element `d[4j + 2h + e]` is row `16w + l/4 + 8h`, column `8j + 2(l%4) + e`,
        /// j < 8. `accumulate = false` overwrites `d`.
        ///
        /// # Safety
        /// Executed by all threads of the warpgroup after `wgmma_fence`, with descriptors of valid
        /// shared-memory tiles (B: 64 rows) that stay unchanged until a `wgmma_wait` covers this
        /// operation; `d` is not read or written until then (see `fence_operands_32`).
        #[inline(always)]
        pub unsafe fn $name(d: &mut [f32; 32], desc_a: u64, desc_b: u64, accumulate: bool) {
            let scale_d = accumulate as u32;
            // SAFETY: caller's contract.
            unsafe {
                asm!(
                    "{{ .reg .pred p; setp.ne.b32 p, {sd}, 0;",
                    $instr,
                    "{{{d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}, {d8}, {d9}, {d10}, {d11}, {d12}, {d13}, {d14}, {d15}, {d16}, {d17}, {d18}, {d19}, {d20}, {d21}, {d22}, {d23}, {d24}, {d25}, {d26}, {d27}, {d28}, {d29}, {d30}, {d31}}},",
                    $tail,
                    sd = in(reg32) scale_d, da = in(reg64) desc_a, db = in(reg64) desc_b,
                    d0 = inout(reg32) d[0],
                    d1 = inout(reg32) d[1],
                    d2 = inout(reg32) d[2],
                    d3 = inout(reg32) d[3],
                    d4 = inout(reg32) d[4],
                    d5 = inout(reg32) d[5],
                    d6 = inout(reg32) d[6],
                    d7 = inout(reg32) d[7],
                    d8 = inout(reg32) d[8],
                    d9 = inout(reg32) d[9],
                    d10 = inout(reg32) d[10],
                    d11 = inout(reg32) d[11],
                    d12 = inout(reg32) d[12],
                    d13 = inout(reg32) d[13],
                    d14 = inout(reg32) d[14],
                    d15 = inout(reg32) d[15],
                    d16 = inout(reg32) d[16],
                    d17 = inout(reg32) d[17],
                    d18 = inout(reg32) d[18],
                    d19 = inout(reg32) d[19],
                    d20 = inout(reg32) d[20],
                    d21 = inout(reg32) d[21],
                    d22 = inout(reg32) d[22],
                    d23 = inout(reg32) d[23],
                    d24 = inout(reg32) d[24],
                    d25 = inout(reg32) d[25],
                    d26 = inout(reg32) d[26],
                    d27 = inout(reg32) d[27],
                    d28 = inout(reg32) d[28],
                    d29 = inout(reg32) d[29],
                    d30 = inout(reg32) d[30],
                    d31 = inout(reg32) d[31],
                    options(nostack)
                );
            }
        }
    };
}

wgmma_m64n64!(
    /// One `wgmma.mma_async.m64n64k32` with E4M3 operands (QGMMA): A 64×32, B 64×32.
    wgmma_m64n64k32_e4m3,
    "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}"
);

wgmma_m64n64!(
    /// One `wgmma.mma_async.m64n64k16` with bf16 operands (HGMMA): A 64×16, B 64×16, no
    /// transposes (both K-major).
    wgmma_m64n64k16_bf16,
    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}"
);
