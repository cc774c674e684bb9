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
    // SAFETY: forwarded.
    unsafe { mbarrier_wait_scoped::<false>(bar, parity) }
}

/// `mbarrier.try_wait.parity` until it succeeds; its acquire at cluster scope (`CLUSTER`) or at
/// the default CTA scope.
///
/// # Safety
/// As [`mbarrier_wait`].
#[inline(always)]
unsafe fn mbarrier_wait_scoped<const CLUSTER: bool>(bar: u32, parity: u32) {
    loop {
        let done: u32;
        // SAFETY: caller's contract; `try_wait` may return false before the phase completes (it
        // suspends for a system-dependent time), so the loop retries.
        unsafe {
            if CLUSTER {
                asm!(
                    "{{ .reg .pred p; mbarrier.try_wait.parity.acquire.cluster.shared::cta.b64 p, [{b}], {ph}; selp.u32 {d}, 1, 0, p; }}",
                    b = in(reg32) bar, ph = in(reg32) parity, d = out(reg32) done, options(nostack)
                )
            } else {
                asm!(
                    "{{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [{b}], {ph}; selp.u32 {d}, 1, 0, p; }}",
                    b = in(reg32) bar, ph = in(reg32) parity, d = out(reg32) done, options(nostack)
                )
            }
        };
        if done != 0 {
            return;
        }
    }
}

/// TMA: copies the 2-D box at coordinates (`c0` innermost, `c1`) of the tensor described by the
/// tensor map at `tmap` (a generic address in parameter, constant or global memory) to shared
/// memory at `dst`,
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

/// TMA multicast: [`tma_load_2d`] of the box at (`c0` innermost, `c1`) into every CTA of the
/// cluster whose rank is set in `cta_mask`: each receives the box at shared address `dst` of its
/// own shared memory and completes its bytes on the mbarrier at address `bar` of its own (the
/// same offsets in every CTA).
///
/// # Safety
/// As [`tma_load_2d`], in every CTA of the mask: the kernel runs in clusters that hold every rank
/// of `cta_mask`; in each, `dst` is free for the box (no wgmma or other reader still uses it:
/// whatever protocol frees it must count that CTA's readers) and `bar` is an initialized mbarrier
/// that expects the bytes; no CTA of the mask has exited or exits before the copy completes.
#[inline(always)]
pub unsafe fn tma_load_2d_multicast(dst: u32, tmap: u64, c0: i32, c1: i32, bar: u32, cta_mask: u16) {
    // SAFETY: caller's contract.
    unsafe {
        asm!(
            "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes.multicast::cluster [{d}], [{m}, {{{x}, {y}}}], [{b}], {k};",
            d = in(reg32) dst, m = in(reg64) tmap, x = in(reg32) c0, y = in(reg32) c1, b = in(reg32) bar,
            k = in(reg16) cta_mask, options(nostack)
        )
    };
}

/// This CTA's rank in its cluster (`%cluster_ctarank`; 0 without clusters).
#[inline(always)]
pub fn cluster_ctarank() -> u32 {
    let r: u32;
    // SAFETY: reads a special register.
    unsafe { asm!("mov.u32 {r}, %cluster_ctarank;", r = out(reg32) r, options(nomem, nostack, pure)) };
    r
}

/// The `.shared::cluster` address of the shared variable at `addr` (a `.shared` address of this
/// CTA) in the cluster's CTA `rank` (`mapa`). Computing it accesses nothing.
#[inline(always)]
pub fn mapa_shared(addr: u32, rank: u32) -> u32 {
    let d: u32;
    // SAFETY: an address computation.
    unsafe {
        asm!("mapa.shared::cluster.u32 {d}, {a}, {r};", d = out(reg32) d, a = in(reg32) addr, r = in(reg32) rank,
            options(nomem, nostack, pure))
    };
    d
}

/// Arrives (release, cluster scope) on the mbarrier at the `.shared::cluster` address `bar`: of
/// this CTA or, from [`mapa_shared`], of another CTA of the cluster.
///
/// # Safety
/// `bar` is an initialized mbarrier whose current phase expects this arrival, in a CTA of the
/// cluster that has not exited and does not exit before a cluster barrier that this thread
/// arrives at after this call ([`cluster_sync`]).
#[inline(always)]
pub unsafe fn mbarrier_arrive_cluster(bar: u32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("mbarrier.arrive.release.cluster.shared::cluster.b64 _, [{b}];", b = in(reg32) bar, options(nostack))
    };
}

/// Waits until the phase of `bar` (this CTA's) with parity `parity` has completed, with acquire
/// semantics at cluster scope: the shared-memory writes that other CTAs of the cluster made before
/// their [`mbarrier_arrive_cluster`] on that phase are visible to this thread after the call (a
/// [`mbarrier_wait`] acquires at CTA scope only).
///
/// # Safety
/// `bar` is an initialized mbarrier that will complete that phase (or the wait never ends).
#[inline(always)]
pub unsafe fn mbarrier_wait_cluster(bar: u32, parity: u32) {
    // SAFETY: forwarded.
    unsafe { mbarrier_wait_scoped::<true>(bar, parity) }
}

/// Loads 16 bytes at the `.shared::cluster` address `addr` (`ld.shared::cluster.v4.b32`): from
/// another CTA of the cluster when `addr` comes from [`mapa_shared`] with its rank.
///
/// # Safety
/// `addr` is 16-byte aligned, inside the shared memory of a CTA of the cluster that has not
/// exited and does not exit before a cluster barrier this thread arrives at after the call
/// ([`cluster_sync`]); the bytes were written before and, by another CTA, released to this thread
/// (its [`mbarrier_arrive_cluster`] after the writes, this thread's [`mbarrier_wait_cluster`] on
/// that phase before the load). The owner does not write them again before this thread releases
/// them (an arrival it acquires).
#[inline(always)]
pub unsafe fn ld_shared_cluster_v4(addr: u32) -> [u32; 4] {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: caller's contract.
    unsafe {
        asm!("ld.shared::cluster.v4.b32 {{{a}, {b}, {c}, {d}}}, [{p}];", a = out(reg32) a, b = out(reg32) b,
             c = out(reg32) c, d = out(reg32) d, p = in(reg32) addr, options(nostack, readonly, preserves_flags))
    };
    [a, b, c, d]
}

/// Stores 16 bytes at shared address `addr` (`st.shared.v4.b32`).
///
/// # Safety
/// `addr` is a 16-byte aligned shared address inside the launch's shared memory that no other
/// thread (of this CTA or, through `.shared::cluster`, of another) accesses concurrently.
#[inline(always)]
pub unsafe fn st_shared_v4(addr: u32, v: [u32; 4]) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("st.shared.v4.b32 [{p}], {{{a}, {b}, {c}, {d}}};", p = in(reg32) addr, a = in(reg32) v[0],
             b = in(reg32) v[1], c = in(reg32) v[2], d = in(reg32) v[3], options(nostack, preserves_flags))
    };
}

/// Cluster barrier: `barrier.cluster.arrive.release` then `barrier.cluster.wait.acquire` (not
/// `.aligned`: the threads of a warp may reach it apart). Returns once every non-exited thread
/// of the cluster has arrived; orders the memory accesses (mbarrier inits and arrivals, shared
/// memory) before it in every thread before those after it.
///
/// # Safety
/// Every non-exited thread of the cluster reaches it (the same number of times), or the
/// cluster waits forever.
#[inline(always)]
pub unsafe fn cluster_sync() {
    // SAFETY: caller's contract.
    unsafe { asm!("barrier.cluster.arrive.release;", "barrier.cluster.wait.acquire;", options(nostack)) };
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

/// Stores the f32 `v` at shared address `addr` (`st.shared.f32`).
///
/// # Safety
/// `addr` is a 4-byte aligned shared address inside the launch's shared memory that no other
/// thread accesses until a barrier after this store.
#[inline(always)]
pub unsafe fn st_shared_f32(addr: u32, v: f32) {
    // SAFETY: caller's contract.
    unsafe {
        asm!("st.shared.f32 [{a}], {v};", a = in(reg32) addr, v = in(reg32) v, options(nostack, preserves_flags))
    };
}

/// The generic address of parameter `$index` of the kernel `$kernel`, whose body this must be in:
/// `mov` of the parameter's name gives its `.param`-space address and `cvta.param` a generic one
/// (PTX ISA 7.7, sm_70), as `__grid_constant__` parameters have in CUDA C++. The bytes there are
/// the launch's own copy of the argument, read-only for the whole launch; the TMA reads tensor
/// maps from such an address with no proxy fence (a map in parameter space needs none; one the
/// host copied into global memory would need `fence.proxy.tensormap::generic.acquire` before
/// its first use). rustc names
/// a kernel's PTX parameters `<kernel>_param_<index>`.
///
/// Expands to an `unsafe` block; its only invariant is that `$kernel` is the enclosing entry
/// point, which ptxas checks (another name does not assemble).
macro_rules! kernel_param_address {
    ($kernel:ident, $index:literal) => {{
        let a: u64;
        // SAFETY: reads no memory: the address of a parameter of the enclosing entry point
        // (ptxas refuses a name that is not one of its parameters).
        unsafe {
            core::arch::asm!(
                concat!("mov.b64 {a}, ", stringify!($kernel), "_param_", stringify!($index), ";\n\tcvta.param.u64 {a}, {a};"),
                a = out(reg64) a,
                options(pure, nomem, nostack, preserves_flags),
            )
        };
        a
    }};
}
pub(crate) use kernel_param_address;

/// Prefetches a tensor map into the TMA unit's cache.
///
/// # Safety
/// `tmap` is the generic address of a valid tensor map (in parameter, constant or global memory).
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

/// Accumulator registers per thread of the widest warpgroup MMA the kernels use (m64n192: 96).
/// Kernels keep their accumulators in arrays of this length; an MMA of N columns uses the first
/// N / 2 (the compiler drops the others).
pub const WGMMA_MAX_REGS: usize = 96;

/// Column counts (`N` of `m64nNk*`) with a wgmma wrapper below.
pub const WGMMA_NS: [u32; 4] = [64, 112, 128, 192];

/// Compiler fence on 8 registers: an empty side-effecting `asm` that reads and writes them.
#[inline(always)]
fn fence8(d: &mut [f32; 8]) {
    // SAFETY: an empty instruction sequence; it only pins the registers' order of access.
    unsafe {
        asm!(
            "// fence {d0}, {d1}, {d2}, {d3}, {d4}, {d5}, {d6}, {d7}",
            d0 = inout(reg32) d[0],
            d1 = inout(reg32) d[1],
            d2 = inout(reg32) d[2],
            d3 = inout(reg32) d[3],
            d4 = inout(reg32) d[4],
            d5 = inout(reg32) d[5],
            d6 = inout(reg32) d[6],
            d7 = inout(reg32) d[7],
            options(nostack, preserves_flags)
        );
    }
}

/// Compiler fence on the accumulator registers of an m64n`N` wgmma (the first `N / 2` of `d`):
/// side-effecting empty `asm` statements (in order, 8 registers each) that read and write them,
/// so the compiler keeps every access of those registers on its side of the surrounding wgmma
/// statements. Needed after `wgmma_wait` (the MMA writes `d` asynchronously, but the compiler
/// believes the values exist when the `wgmma.mma_async` statement ends, and could otherwise move
/// their first reads above the wait) and before `wgmma_fence`.
#[inline(always)]
pub fn fence_accumulators<const N: u32>(d: &mut [f32; WGMMA_MAX_REGS]) {
    const { assert!(N % 16 == 0 && N / 2 <= WGMMA_MAX_REGS as u32) };
    crate::unroll!(c in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] {
        if ((c + 1) * 8) as u32 <= N / 2 {
            // SAFETY: registers 8c .. 8c + 8 of the array (8c + 8 <= N / 2 <= its length), same
            // element type and alignment, borrowed for this call only.
            fence8(unsafe { &mut *(d.as_mut_ptr().add(8 * c) as *mut [f32; 8]) });
        }
    });
}

/// The first `R` registers of an accumulator array: the accumulator of an m64n`2R` wgmma.
#[inline(always)]
fn prefix<const R: usize>(d: &mut [f32; WGMMA_MAX_REGS]) -> &mut [f32; R] {
    const { assert!(R <= WGMMA_MAX_REGS) };
    // SAFETY: the first R <= WGMMA_MAX_REGS elements of the array (same element type and
    // alignment), borrowed for as long as `d` is.
    unsafe { &mut *(d as *mut [f32; WGMMA_MAX_REGS] as *mut [f32; R]) }
}

/// Defines a warpgroup MMA `d (64×N f32, R = N/2 registers per thread) = [d +] A · Bᵀ` with A and
/// B K-major in shared memory (descriptors), one `wgmma.mma_async` of the given shape and types;
/// the register list names each of the R registers and its index.
macro_rules! wgmma_fn {
    ($(#[$doc:meta])* $name:ident, $r:literal, $instr:literal, $tail:literal, [$r0:ident $i0:literal $(, $ri:ident $ii:literal)* $(,)?]) => {
        $(#[$doc])*
        ///
        /// Register layout of `d` (thread t of the warpgroup, warp w = t/32, lane l): element
        /// `d[4j + 2h + e]` is row `16w + l/4 + 8h`, column `8j + 2(l%4) + e`, j < N/8.
        /// `accumulate = false` overwrites `d`.
        ///
        /// # Safety
        /// Executed by all threads of the warpgroup after `wgmma_fence`, with descriptors of valid
        /// shared-memory tiles (B: N rows) that stay unchanged until a `wgmma_wait` covers this
        /// operation; `d` is not read or written until then (see `fence_accumulators`).
        #[inline(always)]
        pub unsafe fn $name(d: &mut [f32; $r], desc_a: u64, desc_b: u64, accumulate: bool) {
            let scale_d = accumulate as u32;
            // SAFETY: caller's contract.
            unsafe {
                asm!(
                    "{{ .reg .pred p; setp.ne.b32 p, {sd}, 0;",
                    $instr,
                    concat!("{{{", stringify!($r0), "}" $(, ", {", stringify!($ri), "}")*, "}},"),
                    $tail,
                    sd = in(reg32) scale_d, da = in(reg64) desc_a, db = in(reg64) desc_b,
                    $r0 = inout(reg32) d[$i0],
                    $($ri = inout(reg32) d[$ii],)*
                    options(nostack)
                );
            }
        }
    };
}

wgmma_fn!(
    /// One `wgmma.mma_async.m64n64k32` with E4M3 operands (QGMMA): A 64×32, B 64×32.
    wgmma_m64n64k32_e4m3,
    32,
    "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n64k16` with bf16 operands (HGMMA): A 64×16, B 64×16, no
    /// transposes (both K-major).
    wgmma_m64n64k16_bf16,
    32,
    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n112k32` with E4M3 operands (QGMMA): A 64×32, B 112×32.
    wgmma_m64n112k32_e4m3,
    56,
    "wgmma.mma_async.sync.aligned.m64n112k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n112k16` with bf16 operands (HGMMA): A 64×16, B 112×16, no
    /// transposes (both K-major).
    wgmma_m64n112k16_bf16,
    56,
    "wgmma.mma_async.sync.aligned.m64n112k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n128k32` with E4M3 operands (QGMMA): A 64×32, B 128×32.
    wgmma_m64n128k32_e4m3,
    64,
    "wgmma.mma_async.sync.aligned.m64n128k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55, d56 56, d57 57, d58 58, d59 59, d60 60, d61 61, d62 62, d63 63]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n128k16` with bf16 operands (HGMMA): A 64×16, B 128×16, no
    /// transposes (both K-major).
    wgmma_m64n128k16_bf16,
    64,
    "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55, d56 56, d57 57, d58 58, d59 59, d60 60, d61 61, d62 62, d63 63]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n192k32` with E4M3 operands (QGMMA): A 64×32, B 192×32.
    wgmma_m64n192k32_e4m3,
    96,
    "wgmma.mma_async.sync.aligned.m64n192k32.f32.e4m3.e4m3",
    " {da}, {db}, p, 1, 1; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55, d56 56, d57 57, d58 58, d59 59, d60 60, d61 61, d62 62, d63 63, d64 64, d65 65, d66 66, d67 67, d68 68, d69 69, d70 70, d71 71, d72 72, d73 73, d74 74, d75 75, d76 76, d77 77, d78 78, d79 79, d80 80, d81 81, d82 82, d83 83, d84 84, d85 85, d86 86, d87 87, d88 88, d89 89, d90 90, d91 91, d92 92, d93 93, d94 94, d95 95]
);

wgmma_fn!(
    /// One `wgmma.mma_async.m64n192k16` with bf16 operands (HGMMA): A 64×16, B 192×16, no
    /// transposes (both K-major).
    wgmma_m64n192k16_bf16,
    96,
    "wgmma.mma_async.sync.aligned.m64n192k16.f32.bf16.bf16",
    " {da}, {db}, p, 1, 1, 0, 0; }}",
    [d0 0, d1 1, d2 2, d3 3, d4 4, d5 5, d6 6, d7 7, d8 8, d9 9, d10 10, d11 11, d12 12, d13 13, d14 14, d15 15, d16 16, d17 17, d18 18, d19 19, d20 20, d21 21, d22 22, d23 23, d24 24, d25 25, d26 26, d27 27, d28 28, d29 29, d30 30, d31 31, d32 32, d33 33, d34 34, d35 35, d36 36, d37 37, d38 38, d39 39, d40 40, d41 41, d42 42, d43 43, d44 44, d45 45, d46 46, d47 47, d48 48, d49 49, d50 50, d51 51, d52 52, d53 53, d54 54, d55 55, d56 56, d57 57, d58 58, d59 59, d60 60, d61 61, d62 62, d63 63, d64 64, d65 65, d66 66, d67 67, d68 68, d69 69, d70 70, d71 71, d72 72, d73 73, d74 74, d75 75, d76 76, d77 77, d78 78, d79 79, d80 80, d81 81, d82 82, d83 83, d84 84, d85 85, d86 86, d87 87, d88 88, d89 89, d90 90, d91 91, d92 92, d93 93, d94 94, d95 95]
);

/// One k-step (32 bytes of K: k32 E4M3 or k16 bf16) of an m64n`N` warpgroup MMA into the first
/// `N / 2` registers of `d`, for each `N` of [`WGMMA_NS`] (another `N` does not compile).
///
/// # Safety
/// The contract of the `wgmma_m64n*` functions, B a tile of `N` rows.
#[inline(always)]
pub unsafe fn wgmma_k32b<const FP8: bool, const N: u32>(
    d: &mut [f32; WGMMA_MAX_REGS],
    desc_a: u64,
    desc_b: u64,
    accumulate: bool,
) {
    const { assert!(N == 64 || N == 112 || N == 128 || N == 192) };
    // SAFETY: caller's contract.
    unsafe {
        match (FP8, N) {
            (true, 64) => wgmma_m64n64k32_e4m3(prefix(d), desc_a, desc_b, accumulate),
            (true, 112) => wgmma_m64n112k32_e4m3(prefix(d), desc_a, desc_b, accumulate),
            (true, 128) => wgmma_m64n128k32_e4m3(prefix(d), desc_a, desc_b, accumulate),
            (true, _) => wgmma_m64n192k32_e4m3(prefix(d), desc_a, desc_b, accumulate),
            (false, 64) => wgmma_m64n64k16_bf16(prefix(d), desc_a, desc_b, accumulate),
            (false, 112) => wgmma_m64n112k16_bf16(prefix(d), desc_a, desc_b, accumulate),
            (false, 128) => wgmma_m64n128k16_bf16(prefix(d), desc_a, desc_b, accumulate),
            (false, _) => wgmma_m64n192k16_bf16(prefix(d), desc_a, desc_b, accumulate),
        }
    }
}
