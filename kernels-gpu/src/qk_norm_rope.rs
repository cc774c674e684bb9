//! Fused per-head RMSNorm + rotary embedding on the packed QKV buffer (Qwen3-style attention
//! prologue), with an optional FP8 E4M3 K/V cache write.
//!
//! ```text
//! qkv row t:  | q_0 | q_1 | … | q_{Hq-1} | k_0 | … | k_{Hk-1} | v_0 | … | v_{Hk-1} |   (D each)
//! q, k head:  n = x / sqrt(mean(x²) + eps) * w          (norm, f32)
//!             y = rope(n, pos[t])                        (f32, rounded once to T)
//! NeoX:       y[i] = n[i] cos f_i − n[i+h] sin f_i,  y[i+h] = n[i+h] cos f_i + n[i] sin f_i,  h = R/2
//! GPT-J:      y[2i] = n[2i] cos f_i − n[2i+1] sin f_i,  y[2i+1] = n[2i+1] cos f_i + n[2i] sin f_i
//!             (i < R/2; elements R..D pass through)
//! ```
//! One warp per (token, head), `D/32` consecutive elements per lane (one vector access when the
//! host says rows are aligned). The norm is a warp reduction; the rotation needs each element's
//! partner, which another lane holds, so the normalized head goes through a per-warp f32 row of
//! shared memory. cos/sin come from an f32 cache `[max_pos, R]` (cos | sin) or are computed from
//! f64 frequencies with an accurate f64 sincos (`prim::trig`).
//!
//! Three entry point families share one body: `qk_norm_rope_*` (both), `head_rmsnorm_*` (norm
//! only), `rope_*` (rotation only), for D ∈ {64, 128, 256} and bf16/f16.

use crate::abi::{
    ERR_POSITION_OUT_OF_RANGE, ERR_SLOT_OUT_OF_RANGE, FLAG_GPTJ, FLAG_POS_I64, FLAG_VECTORIZED, QK_NORM_ROPE_THREADS, QkNormRopeParams,
};
use crate::prim::convert::{Bf16, F16, Half, f32_to_e4m3fn_sat};
use crate::prim::mem::{ld_u16xn, raise_flag, st_u16xn};
use crate::prim::trig::sincos_f64;
use crate::prim::warp::{sync_warp, warp_sum_f32};
use crate::prim::{block_idx_x, dynamic_smem, grid_dim_x, lane_id, sqrt_rn, warp_id};

const WARPS: u32 = QK_NORM_ROPE_THREADS / 32;
// `head` unrolls over at most 8 elements per lane: D <= 256.
const MAX_C: usize = 8;

/// The token's position, clamped into the cache (flagging the clamp) when rotating from a cache.
///
/// # Safety
/// `p.positions` holds `p.tokens` integers of the flagged width; `t < p.tokens`.
#[inline(always)]
unsafe fn position(p: &QkNormRopeParams, t: u64) -> i64 {
    // SAFETY: t < tokens (caller).
    let pos = unsafe {
        if p.flags & FLAG_POS_I64 != 0 {
            *(p.positions as *const i64).add(t as usize)
        } else {
            *(p.positions as *const i32).add(t as usize) as i64
        }
    };
    if p.cos_sin != 0 && (pos < 0 || pos as u64 >= p.max_pos) {
        // SAFETY: error_flag is null or a valid u32 (host contract).
        unsafe { raise_flag(p.error_flag as *mut u32, ERR_POSITION_OUT_OF_RANGE) };
        return if pos < 0 { 0 } else { p.max_pos as i64 - 1 };
    }
    pos
}

/// The cache row of token `t`, or -1 when it is not cached (negative mapping: a padding token;
/// past the end of the cache: flagged).
#[inline(always)]
fn cache_slot(p: &QkNormRopeParams, t: u64) -> i64 {
    // SAFETY: slot_mapping, when given, holds `tokens` i64 and t < tokens.
    let slot = if p.slot_mapping != 0 { unsafe { *(p.slot_mapping as *const i64).add(t as usize) } } else { t as i64 };
    if slot >= 0 && slot as u64 >= p.cache_rows {
        // SAFETY: error_flag is null or a valid u32 (host contract).
        unsafe { raise_flag(p.error_flag as *mut u32, ERR_SLOT_OUT_OF_RANGE) };
        return -1;
    }
    slot
}

/// (cos, sin) of frequency `f` at `pos`.
///
/// # Safety
/// Cache form: `pos < max_pos` and the cache has `max_pos * rotary_dim` f32. Computed form:
/// `inv_freq` holds `rotary_dim / 2` f64. `f < rotary_dim / 2`.
#[inline(always)]
unsafe fn cos_sin(p: &QkNormRopeParams, pos: i64, f: u32) -> (f32, f32) {
    if p.cos_sin != 0 {
        let row = (p.cos_sin as *const f32).wrapping_add(pos as usize * p.rotary_dim as usize);
        // SAFETY: pos < max_pos (clamped), f < rotary_dim / 2: both reads inside row `pos`.
        unsafe { (*row.add(f as usize), *row.add((p.rotary_dim / 2 + f) as usize)) }
    } else {
        // SAFETY: f < rotary_dim / 2 entries of inv_freq.
        let w = unsafe { *(p.inv_freq as *const f64).add(f as usize) };
        let (s, c) = sincos_f64(pos as f64 * w);
        (c as f32 * p.attention_factor, s as f32 * p.attention_factor)
    }
}

/// One (token, head) item, executed by a whole warp.
///
/// # Safety
/// All 32 lanes call it convergently with the same `t`, `h`; launch contract of the kernels.
#[inline(always)]
unsafe fn head<T: Half, const D: usize, const C: usize, const NORM: bool, const ROPE: bool>(
    p: &QkNormRopeParams,
    t: u64,
    h: u32,
    smem: *mut f32,
) {
    let lane = lane_id();
    let base = (lane as usize) * C;
    let vector = p.flags & FLAG_VECTORIZED != 0;
    let (hq, hk) = (p.num_q_heads, p.num_kv_heads);
    let src = (p.qkv as *const u16).wrapping_add(t as usize * p.qkv_stride as usize + h as usize * D + base);
    // SAFETY: the head lies inside row t of qkv (host-validated shape); alignment per FLAG_VECTORIZED.
    let raw = unsafe { ld_u16xn::<C>(src, vector) };
    let mut x = [0.0f32; C];
    for j in 0..C {
        x[j] = T::to_f32(raw[j]);
    }
    let slot = if p.k_cache != 0 || p.v_cache != 0 { cache_slot(p, t) } else { -1 };

    if h >= hq + hk {
        // A v head: only visited when a V cache is written.
        if slot >= 0 {
            let dst = (p.v_cache as *mut u8).wrapping_add(slot as usize * p.cache_stride as usize + (h - hq - hk) as usize * D + base);
            for j in 0..C {
                // SAFETY: inside cache row `slot` (host-validated capacity), head h - hq - hk.
                unsafe { *dst.add(j) = f32_to_e4m3fn_sat(x[j] / p.v_scale) };
            }
        }
        return;
    }
    let is_q = h < hq;

    if NORM {
        let mut ss = 0.0f32;
        for j in 0..C {
            ss += x[j] * x[j];
        }
        // SAFETY: the whole warp is here (caller's contract).
        let total = unsafe { warp_sum_f32(ss) };
        let inv = 1.0 / sqrt_rn(total / D as f32 + p.eps);
        let w = if is_q { p.q_weight } else { p.k_weight } as *const u16;
        // SAFETY: weight has D elements; same alignment reasoning as the head (D * 2 bytes apart).
        let wr = unsafe { ld_u16xn::<C>(w.wrapping_add(base), vector) };
        for j in 0..C {
            x[j] = x[j] * inv * T::to_f32(wr[j]);
        }
    }

    let mut y = x;
    if ROPE {
        // SAFETY: t < tokens.
        let pos = unsafe { position(p, t) };
        let row = smem.wrapping_add((warp_id() as usize) * D);
        for j in 0..C {
            // SAFETY: this warp's D floats of shared memory (launch contract), base + j < D.
            unsafe { row.add(base + j).write_volatile(x[j]) };
        }
        // SAFETY: whole warp converged.
        unsafe { sync_warp() };
        let r = p.rotary_dim as usize;
        let half = r / 2;
        let gptj = p.flags & FLAG_GPTJ != 0;
        // Unrolled by hand (slots past C fold away): a run-time index would put `x`/`y` in
        // local memory, and the inlined sincos makes the loop too big for LLVM to unroll alone.
        crate::unroll!(j in [0, 1, 2, 3, 4, 5, 6, 7] {
            let i = base + j;
            if j < C && i < r {
                let (f, partner, sign) = if gptj {
                    (i / 2, i ^ 1, if i % 2 == 0 { -1.0f32 } else { 1.0 })
                } else if i < half {
                    (i, i + half, -1.0f32)
                } else {
                    (i - half, i - half, 1.0f32)
                };
                // SAFETY: partner < r <= D, inside this warp's row, written before the sync.
                let xp = unsafe { row.add(partner).read_volatile() };
                // SAFETY: f < r / 2; pos clamped for the cache form.
                let (c, s) = unsafe { cos_sin(p, pos, f as u32) };
                y[j] = x[j] * c + sign * xp * s;
            }
        });
        // The row is rewritten by this warp's next item: every lane must have read it first.
        // SAFETY: whole warp converged.
        unsafe { sync_warp() };
    }

    let mut out = [0u16; C];
    for j in 0..C {
        out[j] = T::from_f32(y[j]);
    }
    let (dst, kv_head) = if is_q {
        ((p.q_out as *mut u16).wrapping_add(t as usize * p.q_out_stride as usize + h as usize * D + base), 0)
    } else {
        let kh = h - hq;
        ((p.k_out as *mut u16).wrapping_add(t as usize * p.k_out_stride as usize + kh as usize * D + base), kh)
    };
    // SAFETY: inside row t of the output, head h; alignment per FLAG_VECTORIZED. In place, this
    // lane wrote nothing else and read its own elements above.
    unsafe { st_u16xn::<C>(dst, out, vector) };

    if !is_q && p.k_cache != 0 && slot >= 0 {
        let dst = (p.k_cache as *mut u8).wrapping_add(slot as usize * p.cache_stride as usize + kv_head as usize * D + base);
        for j in 0..C {
            // SAFETY: inside cache row `slot`; the cached value is the stored (rounded) k.
            unsafe { *dst.add(j) = f32_to_e4m3fn_sat(T::to_f32(out[j]) / p.k_scale) };
        }
    }
}

/// Grid-stride loop of warps over (token, head) items.
///
/// # Safety
/// Launched with `QK_NORM_ROPE_THREADS` threads per block and `qk_norm_rope_smem_bytes(D)` of
/// dynamic shared memory, parameters validated by `lowp::qk_norm_rope`.
#[inline(always)]
unsafe fn kernel<T: Half, const D: usize, const C: usize, const NORM: bool, const ROPE: bool>(p: &QkNormRopeParams) {
    const { assert!(C <= MAX_C && C * 32 == D) };
    // SAFETY: the launch provides WARPS * D f32.
    let smem = unsafe { dynamic_smem::<f32>() };
    let heads = p.num_q_heads + p.num_kv_heads + if p.v_cache != 0 { p.num_kv_heads } else { 0 };
    let items = p.tokens * heads as u64;
    let mut item = block_idx_x() as u64 * WARPS as u64 + warp_id() as u64;
    let step = grid_dim_x() as u64 * WARPS as u64;
    // `item` is uniform over the warp, so every lane takes the same branches below.
    while item < items {
        let t = item / heads as u64;
        let h = (item % heads as u64) as u32;
        // SAFETY: forwarded launch contract; the warp is converged on (t, h).
        unsafe { head::<T, D, C, NORM, ROPE>(p, t, h, smem) };
        item += step;
    }
}

macro_rules! entries {
    ($($name:ident: $t:ty, $d:literal, $norm:literal, $rope:literal;)*) => {$(
        /// See the module documentation.
        ///
        /// # Safety
        /// Launch contract of `kernel`.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: QkNormRopeParams) {
            unsafe { kernel::<$t, $d, { $d / 32 }, $norm, $rope>(&p) }
        }
    )*};
}

entries! {
    qk_norm_rope_bf16_d64: Bf16, 64, true, true;
    qk_norm_rope_bf16_d128: Bf16, 128, true, true;
    qk_norm_rope_bf16_d256: Bf16, 256, true, true;
    qk_norm_rope_f16_d64: F16, 64, true, true;
    qk_norm_rope_f16_d128: F16, 128, true, true;
    qk_norm_rope_f16_d256: F16, 256, true, true;
    head_rmsnorm_bf16_d64: Bf16, 64, true, false;
    head_rmsnorm_bf16_d128: Bf16, 128, true, false;
    head_rmsnorm_bf16_d256: Bf16, 256, true, false;
    head_rmsnorm_f16_d64: F16, 64, true, false;
    head_rmsnorm_f16_d128: F16, 128, true, false;
    head_rmsnorm_f16_d256: F16, 256, true, false;
    rope_bf16_d64: Bf16, 64, false, true;
    rope_bf16_d128: Bf16, 128, false, true;
    rope_bf16_d256: Bf16, 256, false, true;
    rope_f16_d64: F16, 64, false, true;
    rope_f16_d128: F16, 128, false, true;
    rope_f16_d256: F16, 256, false, true;
}
