//! Blockwise FP8 (E4M3) quantization for the DeepSeek-V3 recipe, feeding the blockwise FP8 GEMM:
//! activations per token in groups of 1×128 along K, weights per 128×128 block, one f32 scale
//! each (`math` has the arithmetic), and the dequantizers back to bf16.
//!
//! ```text
//! fp8_quantize_group_*   16 lanes per 128-element group (8 elements each, one 16-byte load),
//!                        two groups per lane and turn (both loads in flight), grid-stride over
//!                        as many CTAs as fit at once; amax by a 16-lane shuffle reduction, 8 FP8
//!                        bytes per lane stored at once, lane 0 writes the scale at (r, c/128)
//!                        through the two scale strides.
//! fp8_quantize_block_*   one 256-thread block per 128×128 tile: thread (ty, tx) = (tid/16, tid%16)
//!                        holds rows ty, ty+16, …, ty+112 × columns 8tx..8tx+8 in registers (as
//!                        loaded: packed bf16/f16), block amax, then codes; rows past the matrix
//!                        end are skipped.
//! fp8_dequantize_bf16    one thread per 8 elements, scale at (r / block_rows, c / 128).
//! ```

pub mod math;

// `math` names its sibling `soft`, which the host tests provide from the same file.
pub(crate) use crate::prim::soft;

use crate::abi::{FP8_GROUP, FP8_THREADS, FP8_UE8M0, FP8_VECTORIZED, Fp8QuantParams};
use crate::prim::block::block_reduce_f32;
use crate::prim::convert::{Bf16, F16, F32, f32_to_bf16, f32x2_to_bf16x2, f32x2_to_e4m3fn_sat};
use crate::prim::mem::{Vec16, ld_global_nc_b64, st_global_b64, st_global_v4};
use crate::prim::packed::Held;
use crate::prim::soft::e4m3fn_to_f32;
use crate::prim::{block_dim_x, block_idx_x, dynamic_smem, grid_dim_x, lane_id, thread_idx_x, warp_id};
use math::group_scale;

const WARPS: u64 = (FP8_THREADS / 32) as u64;

/// Quantizes 8 values with `mult` and stores the 8 bytes at `q`.
///
/// # Safety
/// `q` is valid for 8 bytes, 8-byte aligned when `vector`.
#[inline(always)]
unsafe fn store_codes(q: *mut u8, x: &[f32; 8], mult: f32, vector: bool) {
    let mut packed = 0u64;
    for k in 0..4 {
        packed |= (f32x2_to_e4m3fn_sat(x[2 * k] * mult, x[2 * k + 1] * mult) as u64) << (16 * k);
    }
    if vector {
        // SAFETY: 8-byte aligned and valid (caller).
        unsafe { st_global_b64(q as *mut u64, packed) };
    } else {
        for i in 0..8 {
            // SAFETY: i < 8 bytes (caller).
            unsafe { *q.add(i) = (packed >> (8 * i)) as u8 };
        }
    }
}

/// `(row, column) + (dr, dc)` in a matrix of `cols` columns, for `c, dc < cols`: how the group
/// quantizer's grid-stride loop advances a position without a 64-bit division per turn (three per
/// thread at the start instead). Rows only grow past the matrix by a step and 2 before the loop
/// ends, far from overflowing (the host keeps `rows · cols` below 2^64 and the step is below
/// 2^36).
#[inline(always)]
fn offset_pos((r, c): (u64, u64), (dr, dc): (u64, u64), cols: u64) -> (u64, u64) {
    let c = c + dc;
    if c >= cols { (r.wrapping_add(dr + 1), c - cols) } else { (r.wrapping_add(dr), c) }
}

/// Per-token groups of 1×128: a half-warp per group (8 elements per lane, one 16-byte load of
/// bf16/f16), each warp taking 4 consecutive groups per turn of a grid-stride loop, the two
/// halves of the warp groups `4w + 2k + half` for `k` = 0, 1: both loads are issued before
/// either is used, and each load instruction of the warp reads one contiguous span (512 bytes of
/// bf16 when the two groups share a row).
///
/// # Safety
/// Launched with `FP8_THREADS` threads per block; parameters validated by `lowp::fp8`.
#[inline(always)]
unsafe fn quantize_groups<I: Held>(p: &Fp8QuantParams) {
    let groups_per_row = p.cols / FP8_GROUP as u64;
    let total = p.rows * groups_per_row;
    if total == 0 {
        return;
    }
    let sub = lane_id() & 15; // lane within the group
    let half = (lane_id() >> 4) as u64; // which of the warp's two groups of a pair
    let vector = p.flags & FP8_VECTORIZED != 0;
    let ue8m0 = p.flags & FP8_UE8M0 != 0;
    // The warp's first group of the turn (uniform over the warp, so the shuffles below always see
    // all 32 lanes) and the grid's step, in groups.
    let mut base = 4 * (block_idx_x() as u64 * WARPS + warp_id() as u64);
    let step = 4 * grid_dim_x() as u64 * WARPS;
    // This lane's first group, `base + half`, as (row, group column), advanced by `step` each
    // turn without a division; its second group is 2 further.
    let first = base + half;
    let mut pos = (first / groups_per_row, first % groups_per_row);
    let (advance, two) = ((step / groups_per_row, step % groups_per_row), (2 / groups_per_row, 2 % groups_per_row));
    while base < total {
        let at = [pos, offset_pos(pos, two, groups_per_row)];
        // a group is in the matrix exactly when its row is (its column is below groups_per_row)
        let on = [at[0].0 < p.rows, at[1].0 < p.rows];
        let mut x = [I::Raw::default(); 2];
        crate::unroll!(k in [0, 1] {
            if on[k] {
                let (r, cg) = at[k];
                let col = cg * FP8_GROUP as u64 + sub as u64 * 8;
                let src = (p.x as *const u8).wrapping_add(((r * p.x_stride + col) as usize) * I::BYTES);
                // SAFETY: (r, col..col+8) is inside the matrix; alignment per FP8_VECTORIZED.
                x[k] = unsafe { I::load_raw(src, vector) };
            }
        });
        // Both groups' amaxes reduced together over the 16 lanes of the half-warp (one shuffle
        // per step for both with 16-bit inputs: `prim::packed`). A group past the end holds
        // zeros, which nothing stores.
        let mut m = I::pair(I::amax8(&x[0]), I::amax8(&x[1]));
        crate::unroll!(j in [8, 4, 2, 1] {
            // SAFETY: all 32 lanes are here (the loop condition is uniform over the warp); the
            // lane masks stay inside each half-warp.
            m = I::pair_merge(m, unsafe { I::pair_shfl_xor(m, j as u32) });
        });
        let amaxes = I::pair_bits(m);
        crate::unroll!(k in [0, 1] {
            let amax = f32::from_bits(if k == 0 { amaxes.0 } else { amaxes.1 });
            if on[k] {
                let (r, cg) = at[k];
                let col = cg * FP8_GROUP as u64 + sub as u64 * 8;
                let (scale, mult) = group_scale(amax, ue8m0);
                let q = (p.codes as *mut u8).wrapping_add((r * p.codes_stride + col) as usize);
                // SAFETY: inside the E4M3 matrix; 8-byte aligned when vectorized.
                unsafe { store_codes(q, &I::widen(x[k]), mult, vector) };
                if sub == 0 {
                    let s = (p.scales as *mut f32).wrapping_add((r * p.scale_row_stride + cg * p.scale_col_stride) as usize);
                    // SAFETY: (r, cg) is inside the scale layout the host validated.
                    unsafe { *s = scale };
                }
            }
        });
        pos = offset_pos(pos, advance, groups_per_row);
        base += step;
    }
}

/// 128×128 blocks: one thread block per tile, the tile held in registers as loaded (packed
/// 16-bit values for bf16/f16: half the registers of f32, so more CTAs fit per SM).
///
/// # Safety
/// Launched with `FP8_THREADS` threads per block and `FP8_BLOCK_SMEM_BYTES` of dynamic shared
/// memory; parameters validated by `lowp::fp8`.
#[inline(always)]
unsafe fn quantize_blocks<I: Held>(p: &Fp8QuantParams) {
    // SAFETY: the launch provides one f32 per warp.
    let smem = unsafe { dynamic_smem::<f32>() };
    let col_blocks = p.cols / FP8_GROUP as u64;
    let tiles = p.rows.div_ceil(FP8_GROUP as u64) * col_blocks;
    let (ty, tx) = ((thread_idx_x() / 16) as u64, (thread_idx_x() % 16) as u64);
    let vector = p.flags & FP8_VECTORIZED != 0;
    let ue8m0 = p.flags & FP8_UE8M0 != 0;
    let mut tile = block_idx_x() as u64;
    // Uniform over the block: the barriers inside the reduction stay convergent.
    while tile < tiles {
        let (rb, cb) = (tile / col_blocks, tile % col_blocks);
        let col = cb * FP8_GROUP as u64 + tx * 8;
        let mut x = [I::Raw::default(); 8];
        crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7] {
            let r = rb * FP8_GROUP as u64 + ty + 16 * i as u64;
            if r < p.rows {
                let src = (p.x as *const u8).wrapping_add(((r * p.x_stride + col) as usize) * I::BYTES);
                // SAFETY: (r, col..col+8) inside the matrix; alignment per FP8_VECTORIZED.
                x[i] = unsafe { I::load_raw(src, vector) };
            }
        });
        // The amax on the values as held (packed pairs for bf16/f16, `prim::packed`), reduced
        // over the block in that form (the f32 view only carries the bits) and widened once.
        let mut acc = I::amax8(&x[0]);
        crate::unroll!(i in [1, 2, 3, 4, 5, 6, 7] {
            // rows past the matrix hold zeros, which do not change the amax
            acc = I::amax_merge(acc, I::amax8(&x[i]));
        });
        let merge = |a: f32, b: f32| f32::from_bits(I::amax_merge(a.to_bits(), b.to_bits()));
        // SAFETY: every thread of the block reaches it; smem holds one f32 per warp.
        let acc = unsafe { block_reduce_f32(f32::from_bits(acc), smem, block_dim_x(), merge) }.to_bits();
        let (scale, mult) = group_scale(f32::from_bits(I::amax_bits(acc)), ue8m0);
        crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7] {
            let r = rb * FP8_GROUP as u64 + ty + 16 * i as u64;
            if r < p.rows {
                let q = (p.codes as *mut u8).wrapping_add((r * p.codes_stride + col) as usize);
                // SAFETY: inside the E4M3 matrix; 8-byte aligned when vectorized.
                unsafe { store_codes(q, &I::widen(I::opaque(x[i])), mult, vector) };
            }
        });
        if thread_idx_x() == 0 {
            let s = (p.scales as *mut f32).wrapping_add((rb * p.scale_row_stride + cb * p.scale_col_stride) as usize);
            // SAFETY: (rb, cb) inside the scale matrix the host validated.
            unsafe { *s = scale };
        }
        tile += grid_dim_x() as u64;
    }
}

/// E4M3 + scales → bf16, 8 elements per thread.
///
/// # Safety
/// Launched with `FP8_THREADS` threads per block; parameters validated by `lowp::fp8`.
#[inline(always)]
unsafe fn dequantize(p: &Fp8QuantParams) {
    let chunks_per_row = p.cols / 8;
    let total = p.rows * chunks_per_row;
    let vector = p.flags & FP8_VECTORIZED != 0;
    // Scale rows are 1 or 128 rows (the host's two layouts): a shift, not a division.
    let scale_row = |r: u64| match p.block_rows {
        1 => r,
        128 => r >> 7,
        n => r / n as u64,
    };
    // The host launches a thread per chunk, so the loop turns once (more only past 2^39 chunks).
    let mut i = block_idx_x() as u64 * FP8_THREADS as u64 + thread_idx_x() as u64;
    while i < total {
        let (r, col) = (i / chunks_per_row, (i % chunks_per_row) * 8);
        let q = (p.codes as *const u8).wrapping_add((r * p.codes_stride + col) as usize);
        let bytes = if vector {
            // SAFETY: 8 bytes inside the E4M3 matrix, 8-byte aligned, read-only.
            unsafe { ld_global_nc_b64(q as *const u64) }
        } else {
            let mut b = 0u64;
            for j in 0..8 {
                // SAFETY: inside the matrix.
                b |= (unsafe { *q.add(j) } as u64) << (8 * j);
            }
            b
        };
        let s_idx = scale_row(r) * p.scale_row_stride + (col / FP8_GROUP as u64) * p.scale_col_stride;
        // SAFETY: inside the scale layout the host validated.
        let scale = unsafe { *(p.scales as *const f32).add(s_idx as usize) };
        let mut y = [0.0f32; 8];
        for (j, v) in y.iter_mut().enumerate() {
            *v = e4m3fn_to_f32((bytes >> (8 * j)) as u8) * scale;
        }
        let out = (p.x as *mut u16).wrapping_add((r * p.x_stride + col) as usize);
        if vector {
            let v = Vec16([
                f32x2_to_bf16x2(y[0], y[1]),
                f32x2_to_bf16x2(y[2], y[3]),
                f32x2_to_bf16x2(y[4], y[5]),
                f32x2_to_bf16x2(y[6], y[7]),
            ]);
            // SAFETY: 16 bytes inside the bf16 matrix, 16-byte aligned.
            unsafe { st_global_v4(out as *mut Vec16, v) };
        } else {
            for (j, v) in y.iter().enumerate() {
                // SAFETY: inside the matrix.
                unsafe { *out.add(j) = f32_to_bf16(*v) };
            }
        }
        i += grid_dim_x() as u64 * FP8_THREADS as u64;
    }
}

macro_rules! quantizers {
    ($($name:ident: $body:ident, $t:ty;)*) => {$(
        /// See the module documentation.
        ///
        /// # Safety
        /// Launch contract of the body function.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: Fp8QuantParams) {
            unsafe { $body::<$t>(&p) }
        }
    )*};
}

quantizers! {
    fp8_quantize_group_bf16: quantize_groups, Bf16;
    fp8_quantize_group_f16: quantize_groups, F16;
    fp8_quantize_group_f32: quantize_groups, F32;
    fp8_quantize_block_bf16: quantize_blocks, Bf16;
    fp8_quantize_block_f16: quantize_blocks, F16;
    fp8_quantize_block_f32: quantize_blocks, F32;
}

/// E4M3 + per-group or per-block scales → bf16.
///
/// # Safety
/// Launch contract of `dequantize`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn fp8_dequantize_bf16(p: Fp8QuantParams) {
    unsafe { dequantize(&p) }
}
