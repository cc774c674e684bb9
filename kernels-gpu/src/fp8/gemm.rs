//! Blockwise-scaled FP8 GEMM on Hopper (sm_90a): TMA loads, `wgmma` with E4M3 operands (QGMMA),
//! f32 promotion with the scales at every 128 of K, warp-specialized and persistent.
//!
//! ```text
//! block = 3 warpgroups                      smem: stages × [A tile 128×128 | B tile 128×128] (E4M3,
//!   WG0  producer: thread 0 issues TMA            128-byte swizzled), full[s] / empty[s] mbarriers
//!   WG1  math: rows  0..64 of the tile
//!   WG2  math: rows 64..128
//! for each tile (m0, n0) of this CTA (persistent, grouped order):
//!   for each k-block kb (128 of K):              stage s = it % STAGES, phase = (it / STAGES) & 1
//!     producer: wait empty[s] (phase ^ 1); expect 32 KiB on full[s]; TMA A(kb, m0), B(kb, n0) → s
//!     math:     wait full[s] (phase); 4 × wgmma m64n128k32 into `acc` (fresh per k-block);
//!               wait; arrive empty[s]; final += acc · sa(m, kb) · sb(n0/128, kb)
//!   math: round `final` to bf16 and store (rows ≥ M and columns ≥ N masked)
//! ```
//! FP8 wgmma accumulates with reduced precision inside the tensor core, so each k-block's
//! product is promoted into the f32 `final` with its scales (DeepSeek-V3's recipe).
//!
//! NOT YET RUN ON A GPU: written without one; see `docs/kernels/fp8_gemm.md`.

use crate::abi::{
    FP8_GEMM_BLOCK_K as BK, FP8_GEMM_BLOCK_M as BM, FP8_GEMM_BLOCK_N as BN, FP8_GEMM_STAGES as STAGES, Fp8GemmParams,
};
use crate::prim::convert::f32x2_to_bf16x2;
use crate::prim::hopper::{
    fence_mbarrier_init, fence_operands, mbarrier_arrive, mbarrier_arrive_expect_tx, mbarrier_init, mbarrier_wait, prefetch_tensormap,
    setmaxnreg_dec, setmaxnreg_inc, smem_addr, smem_desc_k_major_sw128, tma_load_2d, wgmma_commit, wgmma_fence,
    wgmma_m64n128k32_e4m3, wgmma_wait,
};
use crate::prim::{block_idx_x, dynamic_smem, grid_dim_x, lane_id, sync_threads, thread_idx_x};

const TILE_A_BYTES: u32 = BM * BK;
const TILE_B_BYTES: u32 = BN * BK;
/// Math warpgroups arrive once per warp on an empty barrier.
const EMPTY_ARRIVALS: u32 = 8;

/// The shared-memory plan, from the (1024-aligned) base of the stages.
#[derive(Clone, Copy)]
struct Smem {
    base: u32,
}

impl Smem {
    fn a(self, s: u32) -> u32 {
        self.base + s * (TILE_A_BYTES + TILE_B_BYTES)
    }
    fn b(self, s: u32) -> u32 {
        self.a(s) + TILE_A_BYTES
    }
    fn full(self, s: u32) -> u32 {
        self.base + STAGES * (TILE_A_BYTES + TILE_B_BYTES) + 8 * s
    }
    fn empty(self, s: u32) -> u32 {
        self.full(STAGES) + 8 * s
    }
}

/// Output tile `t` in grouped order: `group_m` tile rows at a time sweep all tile columns, so
/// concurrently running CTAs share B tiles in L2.
#[inline(always)]
fn tile_coords(t: u32, tiles_m: u32, tiles_n: u32, group_m: u32) -> (u32, u32) {
    let per_group = group_m * tiles_n;
    let first_m = (t / per_group) * group_m;
    let rows = if tiles_m - first_m < group_m { tiles_m - first_m } else { group_m };
    let r = t % per_group;
    (first_m + r % rows, r / rows)
}

/// The kernel body.
///
/// # Safety
/// Launched with `FP8_GEMM_THREADS` threads (`.maxntid` set by build.rs), `FP8_GEMM_SMEM_BYTES`
/// of dynamic shared memory and parameters validated by `lowp::fp8::blockwise_gemm` (tensor maps
/// describing A and B, scale extents covering M × K/128 and ⌈N/128⌉ × K/128, D of M × N).
#[inline(always)]
unsafe fn gemm(p: &Fp8GemmParams) {
    // SAFETY: the launch provides FP8_GEMM_SMEM_BYTES; the stages start at the first 1024-byte
    // boundary inside it (the 1 KiB of slack is part of the size).
    let raw = smem_addr(unsafe { dynamic_smem::<u8>() });
    let sm = Smem { base: (raw + 1023) & !1023 };
    let tid = thread_idx_x();
    let warpgroup = tid / 128;
    let tmap_a = p.tensor_maps;
    let tmap_b = p.tensor_maps + 128;

    if tid == 0 {
        for s in 0..STAGES {
            // SAFETY: barrier words inside the dynamic shared memory, used only after the fence
            // and block barrier below.
            unsafe {
                mbarrier_init(sm.full(s), 1);
                mbarrier_init(sm.empty(s), EMPTY_ARRIVALS);
            }
        }
        // SAFETY: publishes the inits.
        unsafe { fence_mbarrier_init() };
        // SAFETY: the maps are valid global memory (host contract).
        unsafe {
            prefetch_tensormap(tmap_a);
            prefetch_tensormap(tmap_b);
        }
    }
    // SAFETY: every thread reaches it.
    unsafe { sync_threads() };

    let tiles_m = p.m.div_ceil(BM);
    let tiles_n = p.n.div_ceil(BN);
    let tiles = tiles_m * tiles_n;
    let k_blocks = p.k / BK;

    if warpgroup == 0 {
        // Producer: one thread issues every load; the warpgroup gives its registers to the math.
        // SAFETY: all 128 threads of the warpgroup execute it; launch bounds are set.
        unsafe { setmaxnreg_dec::<40>() };
        if tid != 0 {
            return;
        }
        let mut it = 0u32;
        let mut t = block_idx_x();
        while t < tiles {
            let (tm, tn) = tile_coords(t, tiles_m, tiles_n, p.group_m);
            for kb in 0..k_blocks {
                let (s, phase) = (it % STAGES, (it / STAGES) & 1);
                // SAFETY: initialized barriers; the math warpgroups free every stage they consume.
                unsafe {
                    mbarrier_wait(sm.empty(s), phase ^ 1);
                    mbarrier_arrive_expect_tx(sm.full(s), TILE_A_BYTES + TILE_B_BYTES);
                    // Boxes past M or N are zero-filled by the TMA unit.
                    tma_load_2d(sm.a(s), tmap_a, (kb * BK) as i32, (tm * BM) as i32, sm.full(s));
                    tma_load_2d(sm.b(s), tmap_b, (kb * BK) as i32, (tn * BN) as i32, sm.full(s));
                }
                it += 1;
            }
            t += grid_dim_x();
        }
        return;
    }

    // Math warpgroups.
    // SAFETY: all threads of each math warpgroup execute it; the producer released registers.
    unsafe { setmaxnreg_inc::<232>() };
    let wg = warpgroup - 1; // 0 or 1: rows 64·wg .. 64·wg + 64 of the tile
    let t_in = tid % 128;
    let (warp, lane) = (t_in / 32, lane_id());
    let row_in_tile = wg * 64 + warp * 16 + lane / 4; // and + 8
    let col_in_tile = (lane % 4) * 2; // + 8j, + 1

    let mut it = 0u32;
    let mut t = block_idx_x();
    while t < tiles {
        let (tm, tn) = tile_coords(t, tiles_m, tiles_n, p.group_m);
        let m0 = tm * BM + row_in_tile;
        let m1 = m0 + 8;
        let mut fin = [0.0f32; 64];
        let mut acc = [0.0f32; 64];
        for kb in 0..k_blocks {
            let (s, phase) = (it % STAGES, (it / STAGES) & 1);
            // Scales first: their loads overlap the wait. Rows past M read nothing (their A rows
            // are zero-filled, the products are 0 and are never stored).
            let sa_at = |m: u32| {
                if m < p.m {
                    let i = m as u64 * p.sa_row_stride + kb as u64 * p.sa_col_stride;
                    // SAFETY: m < M, kb < K/128: inside the validated scale extent.
                    unsafe { *(p.sa as *const f32).add(i as usize) }
                } else {
                    0.0
                }
            };
            let (sa0, sa1) = (sa_at(m0), sa_at(m1));
            // SAFETY: tn < ⌈N/128⌉, kb < K/128.
            let sb = unsafe { *(p.sb as *const f32).add((tn as u64 * p.sb_stride + kb as u64) as usize) };
            let (s0, s1) = (sa0 * sb, sa1 * sb);

            // SAFETY: initialized barrier; the producer fills every stage in order.
            unsafe { mbarrier_wait(sm.full(s), phase) };
            let a_tile = sm.a(s) + wg * 64 * BK; // this warpgroup's 64 rows
            let b_tile = sm.b(s);
            // SAFETY: the whole warpgroup executes these; the tiles are complete (full barrier)
            // and are not overwritten before this warpgroup arrives on empty[s] below.
            fence_operands(&mut acc);
            unsafe {
                wgmma_fence();
                crate::unroll!(k in [0, 1, 2, 3] {
                    let da = smem_desc_k_major_sw128(a_tile + 32 * k as u32);
                    let db = smem_desc_k_major_sw128(b_tile + 32 * k as u32);
                    wgmma_m64n128k32_e4m3(&mut acc, da, db, k != 0);
                });
                wgmma_commit();
                wgmma_wait::<0>();
            }
            // Only now may `acc` be read: pin its first reads below the wait.
            fence_operands(&mut acc);
            if lane == 0 {
                // SAFETY: this warp's reads of stage s are complete (wait above).
                unsafe { mbarrier_arrive(sm.empty(s)) };
            }
            crate::unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
                fin[4 * j] += acc[4 * j] * s0;
                fin[4 * j + 1] += acc[4 * j + 1] * s0;
                fin[4 * j + 2] += acc[4 * j + 2] * s1;
                fin[4 * j + 3] += acc[4 * j + 3] * s1;
            });
            it += 1;
        }
        // Epilogue: bf16 pairs straight to global memory, masked at the M and N edges.
        crate::unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15] {
            let n = tn * BN + 8 * j as u32 + col_in_tile;
            store_pair(p, m0, n, fin[4 * j], fin[4 * j + 1]);
            store_pair(p, m1, n, fin[4 * j + 2], fin[4 * j + 3]);
        });
        t += grid_dim_x();
    }
}

/// Stores D[m, n] and D[m, n + 1] (those inside the matrix).
#[inline(always)]
fn store_pair(p: &Fp8GemmParams, m: u32, n: u32, v0: f32, v1: f32) {
    if m >= p.m || n >= p.n {
        return;
    }
    let at = (p.d as *mut u16).wrapping_add((m as u64 * p.d_stride + n as u64) as usize);
    if n + 1 < p.n {
        // SAFETY: (m, n) and (m, n + 1) inside D; n is even and the row stride even with a
        // 4-byte aligned base (host contract), so the pair is 4-byte aligned.
        unsafe { *(at as *mut u32) = f32x2_to_bf16x2(v0, v1) };
    } else {
        // SAFETY: (m, n) inside D.
        unsafe { *at = crate::prim::convert::f32_to_bf16(v0) };
    }
}

/// `D = (A · sa) (B · sb)ᵀ`, E4M3 inputs, bf16 output (see the module documentation).
///
/// # Safety
/// Launch contract of `gemm`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn fp8_blockwise_gemm(p: Fp8GemmParams) {
    unsafe { gemm(&p) }
}
