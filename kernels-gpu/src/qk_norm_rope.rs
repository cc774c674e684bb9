//! Fused per-head RMSNorm + rotary embedding on the packed QKV buffer (Qwen3-style attention
//! prologue), with an optional FP8 E4M3 K/V cache write.
//!
//! ```text
//! qkv row t:  | q_0 | q_1 | … | q_{Hq-1} | k_0 | … | k_{Hk-1} | v_0 | … | v_{Hk-1} |   (D each)
//! q, k head:  n = x / sqrt(mean(x²) + eps) * w          (norm, f32; w → 1 + w for Gemma)
//!             y = rope(n, pos[t])                        (f32, rounded once to T)
//! NeoX:       y[i] = n[i] cos f_i − n[i+h] sin f_i,  y[i+h] = n[i+h] cos f_i + n[i] sin f_i,  h = R/2
//! GPT-J:      y[2i] = n[2i] cos f_i − n[2i+1] sin f_i,  y[2i+1] = n[2i+1] cos f_i + n[2i] sin f_i
//!             (i < R/2; elements R..D pass through; mRoPE: f_i's position from row 0, 1 or 2)
//! ```
//! One CTA per token at a time (grid-stride over tokens). Each lane holds 8 consecutive elements
//! of a head (one 16-byte access): a head spans `L = D/8` lanes and a warp holds `G = 32/L` heads
//! side by side, a "group". The token's `Hq + Hk` (+ `Hk` v heads with a V cache) heads form
//! `⌈heads/G⌉` groups, dealt round-robin to the CTA's warps. A warp keeps the loads of its next
//! `RING` groups in flight: it issues the first two before the token's barrier, and each group it
//! finishes (norm: a reduction over its `L` lanes; rotation; stores) frees a slot for the load
//! `RING` groups ahead.
//!
//! cos/sin are read or computed once per (token, frequency) by the CTA's first `R/2` threads (the
//! cache row, or the f64-reduced f32 `prim::trig::sincos_rope`) into a per-element table in
//! shared memory, `cos_e[i]`, `sin_e[i]` with the rotation's sign folded in, double-buffered so
//! one barrier per token suffices; a lane reads its 8 entries (two 16-byte shared loads each) for
//! every head. The f32 weights (`1 + w` for Gemma) sit in shared memory too, converted once per
//! CTA. The rotation partner: GPT-J `x[j ^ 1]` in the same lane; NeoX the lane `R/16` away by
//! `shfl.xor` when `R/2` is a power-of-two multiple of 8, else (the `_rows` kernels) through a
//! per-warp row of shared memory. The FP8 cache write packs a lane's 8 bytes into one 8-byte
//! store, the quotient by the scale formed through its reciprocal, bit-identical to a division
//! (`prim::kv_fp8`).
//!
//! Entry points sharing one body: `qk_norm_rope_*` (both), `head_rmsnorm_*` (norm only),
//! `rope_*` (rotation only), and `qk_norm_rope_rows_*` / `rope_rows_*` (NeoX partners through
//! shared memory), for D ∈ {64, 128, 256} and bf16/f16.

use core::f32::math::mul_add;

use crate::abi::{
    ERR_POSITION_OUT_OF_RANGE, ERR_SLOT_OUT_OF_RANGE, FLAG_CACHE_VEC8, FLAG_GPTJ, FLAG_MROPE, FLAG_POS_I64,
    FLAG_VECTORIZED, FLAG_WEIGHT_ONE_PLUS, QK_ELEMS_PER_LANE, QkNormRopeParams,
};
use crate::prim::convert::{Bf16, F16, Half};
use crate::prim::kv_fp8::{div_by_scale, f32x8_to_e4m3x8_sat};
use crate::prim::mem::{Vec16, ld_global_v4, raise_flag, st_global_b64, st_global_v4};
use crate::prim::trig::sincos_rope;
use crate::prim::warp::{shfl_xor_f32, sync_warp, warp_reduce_f32};
use crate::prim::{
    block_dim_x, block_idx_x, dynamic_smem, grid_dim_x, lane_id, sqrt_rn, sync_threads, thread_idx_x, warp_id,
};

/// Elements per lane.
const E: usize = QK_ELEMS_PER_LANE as usize;
/// Groups per warp whose loads are in flight together (the ring in `kernel`, written for 2).
const RING: u32 = 2;

/// What a lane's head in a group is.
const KIND_Q: u32 = 0;
const KIND_K: u32 = 1;
const KIND_V: u32 = 2;
const KIND_NONE: u32 = 3;

/// 16 bytes of shared memory, so that reads of 4 f32 become one `ld.shared.v4`.
#[repr(C, align(16))]
#[derive(Clone, Copy)]
struct F4([f32; 4]);

/// Position `row` (0 unless mRoPE) of token `t`.
///
/// # Safety
/// `p.positions` holds `tokens` (or `3 · tokens` with mRoPE) integers of the flagged width;
/// `t < tokens`, `row < 3` (0 without mRoPE).
#[inline(always)]
unsafe fn position(p: &QkNormRopeParams, row: u32, t: u64) -> i64 {
    let i = (row as u64 * p.tokens + t) as usize;
    // SAFETY: i < tokens · rows (caller).
    unsafe {
        if p.flags & FLAG_POS_I64 != 0 {
            *(p.positions as *const i64).add(i)
        } else {
            *(p.positions as *const i32).add(i) as i64
        }
    }
}

/// The cache row of token `t`, or -1 when it is not cached (negative mapping: a padding token;
/// past the end of the cache: flagged by `report` threads).
#[inline(always)]
fn cache_slot(p: &QkNormRopeParams, t: u64, report: bool) -> i64 {
    // SAFETY: slot_mapping, when given, holds `tokens` i64 and t < tokens.
    let slot = if p.slot_mapping != 0 { unsafe { *(p.slot_mapping as *const i64).add(t as usize) } } else { t as i64 };
    if slot >= 0 && slot as u64 >= p.cache_rows {
        if report {
            // SAFETY: error_flag is null or a valid u32 (host contract).
            unsafe { raise_flag(p.error_flag as *mut u32, ERR_SLOT_OUT_OF_RANGE) };
        }
        return -1;
    }
    slot
}

/// Writes token `t`'s cos/sin table: for each frequency `f < R/2` (one per thread, striding by
/// the block), `cos_e`/`sin_e` of the two elements it rotates, the sign of the rotation folded
/// into `sin_e`. Thread 0 flags positions outside a cache.
///
/// # Safety
/// `tab` is this token's buffer of `2 · D` f32 in shared memory, not read by any thread until the
/// next barrier; `t < tokens`; launch contract.
#[inline(always)]
unsafe fn build_table<const D: usize>(p: &QkNormRopeParams, t: u64, tab: *mut f32) {
    let tid = thread_idx_x();
    let half = p.rotary_dim / 2;
    let mrope = p.flags & FLAG_MROPE != 0;
    let cached = p.cos_sin != 0;
    if tid == 0 && cached {
        let rows = if mrope { 3 } else { 1 };
        for row in 0..rows {
            // SAFETY: t < tokens, row < rows of positions.
            let pos = unsafe { position(p, row, t) };
            if pos < 0 || pos as u64 >= p.max_pos {
                // SAFETY: error_flag is null or a valid u32 (host contract).
                unsafe { raise_flag(p.error_flag as *mut u32, ERR_POSITION_OUT_OF_RANGE) };
            }
        }
    }
    let mut f = tid;
    while f < half {
        let row = if !mrope {
            0
        } else if f < p.mrope_end0 {
            0
        } else if f < p.mrope_end1 {
            1
        } else {
            2
        };
        // SAFETY: as above.
        let pos = unsafe { position(p, row, t) };
        let (c, s) = if cached {
            let pos = pos.clamp(0, p.max_pos as i64 - 1) as usize;
            let r = (p.cos_sin as *const f32).wrapping_add(pos * p.rotary_dim as usize);
            // SAFETY: pos < max_pos, f < R/2: both inside row `pos` of the cache.
            unsafe { (*r.add(f as usize), *r.add((half + f) as usize)) }
        } else {
            // SAFETY: f < R/2 entries of inv_freq.
            let w = unsafe { *(p.inv_freq as *const f64).add(f as usize) };
            let (s, c) = sincos_rope(pos as f64 * w);
            (c * p.attention_factor, s * p.attention_factor)
        };
        let (i0, i1) = if p.flags & FLAG_GPTJ != 0 { (2 * f, 2 * f + 1) } else { (f, f + half) };
        // SAFETY: i0, i1 < R <= D: inside the 2·D f32 of `tab`.
        unsafe {
            tab.add(i0 as usize).write(c);
            tab.add(D + i0 as usize).write(-s);
            tab.add(i1 as usize).write(c);
            tab.add(D + i1 as usize).write(s);
        }
        f += block_dim_x();
    }
}

/// Loads a lane's 8 elements packed in 4 words (element 2i in the low half of word i): one
/// 16-byte access when `vector`, else 8 two-byte ones.
///
/// # Safety
/// `src` valid for 8 u16, 16-byte aligned when `vector`.
#[inline(always)]
unsafe fn load8(src: *const u16, vector: bool) -> [u32; 4] {
    if vector {
        // SAFETY: aligned and valid (caller).
        return unsafe { ld_global_v4(src as *const Vec16) }.0;
    }
    let mut w = [0u32; 4];
    for (j, word) in w.iter_mut().enumerate() {
        // SAFETY: 2j + 1 < 8, inside the caller's range.
        *word = unsafe { src.add(2 * j).read() as u32 | (src.add(2 * j + 1).read() as u32) << 16 };
    }
    w
}

/// Element `j` of 8 packed 16-bit values.
#[inline(always)]
fn elem(w: [u32; 4], j: usize) -> u16 {
    (w[j / 2] >> (16 * (j % 2))) as u16
}

/// Stores 8 elements packed in 4 words (element 2i in the low half of word i).
///
/// # Safety
/// `dst` valid for 8 u16 of writes, 16-byte aligned when `vector`.
#[inline(always)]
unsafe fn store8(dst: *mut u16, w: [u32; 4], vector: bool) {
    if vector {
        // SAFETY: aligned and valid (caller).
        unsafe { st_global_v4(dst as *mut Vec16, Vec16(w)) };
    } else {
        for (j, &word) in w.iter().enumerate() {
            // SAFETY: 2j + 1 < 8, inside the caller's range.
            unsafe {
                dst.add(2 * j).write(word as u16);
                dst.add(2 * j + 1).write((word >> 16) as u16);
            }
        }
    }
}

/// Where a lane's elements sit: its head slot in a group (`0..G`) and first element (`0..D`, a
/// multiple of 8).
#[derive(Clone, Copy)]
struct Lane {
    slot: u32,
    e: u32,
}

/// Shared memory of a CTA, as f32 offsets from the base: the f32 weights (`wq | wk`, D each), two
/// cos/sin tables (`cos_e | sin_e`, D each), the rotation mask (D u32: all ones where an element
/// rotates), then the NeoX rows (256 per warp).
struct Smem {
    base: *mut f32,
}

impl Smem {
    fn weights(&self) -> *mut f32 {
        self.base
    }
    fn table<const D: usize>(&self, turn: usize) -> *mut f32 {
        self.base.wrapping_add(2 * D + (turn & 1) * 2 * D)
    }
    fn mask<const D: usize>(&self) -> *mut u32 {
        self.base.wrapping_add(6 * D) as *mut u32
    }
    fn rows<const D: usize>(&self) -> *mut f32 {
        self.base.wrapping_add(7 * D)
    }
}

/// Eight f32 of shared memory at a 32-byte-aligned address, as two `ld.shared.v4`.
///
/// # Safety
/// `p` is 32-byte aligned, inside the launch's shared memory for 8 f32, written before the last
/// barrier that orders it for this thread.
#[inline(always)]
unsafe fn lds8(p: *const f32) -> [f32; E] {
    let p = p as *const F4;
    // SAFETY: caller's contract.
    let (a, b) = unsafe { (p.read().0, p.add(1).read().0) };
    [a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3]]
}

/// Normalizes, rotates and stores one group's head for this lane, and writes the FP8 cache.
///
/// # Safety
/// The whole warp calls it convergently (same `t`, group); `raw` holds this lane's elements of
/// head `h` of kind `kind`; `tab` is token `t`'s cos/sin table, complete (after the barrier);
/// `out_rows` point at this lane's first element of token `t`'s q and k output rows; launch
/// contract.
#[inline(always)]
unsafe fn finish_head<T: Half, const D: usize, const NORM: bool, const ROPE: bool, const ROWS: bool>(
    p: &QkNormRopeParams,
    ln: Lane,
    sm: &Smem,
    tab: *const f32,
    h: u32,
    kind: u32,
    raw: [u32; 4],
    slot: i64,
    out_rows: (*mut u16, *mut u16),
) {
    let l = (D / E) as u32;
    let vector = p.flags & FLAG_VECTORIZED != 0;
    let mut x = [0.0f32; E];
    for j in 0..E {
        x[j] = T::to_f32(elem(raw, j));
    }
    if NORM {
        let mut ss = 0.0f32;
        for j in 0..E {
            ss = mul_add(x[j], x[j], ss);
        }
        // SAFETY: the whole warp is here; segments of `l` lanes hold one head each.
        let total = unsafe { warp_reduce_f32(ss, l, |a, b| a + b) };
        let inv = 1.0 / sqrt_rn(total / D as f32 + p.eps);
        let w = sm.weights().wrapping_add(if kind == KIND_Q { 0 } else { D } + ln.e as usize);
        // SAFETY: the lane's 8 weights, written before the first barrier.
        let w = unsafe { lds8(w) };
        for j in 0..E {
            x[j] = x[j] * inv * w[j];
        }
    }
    let mut y = x;
    if ROPE {
        let mut partner = [0.0f32; E];
        if p.flags & FLAG_GPTJ != 0 {
            for j in 0..E {
                partner[j] = x[j ^ 1];
            }
        } else if !ROWS {
            let m = p.rotary_dim / (2 * QK_ELEMS_PER_LANE);
            for j in 0..E {
                // SAFETY: whole warp converged; m < l keeps the partner inside the head's lanes.
                partner[j] = unsafe { shfl_xor_f32(x[j], m) };
            }
        } else {
            // NeoX partners R/2 apart at any R: through this warp's row of shared memory.
            let row = sm.rows::<D>().wrapping_add(warp_id() as usize * 32 * E);
            let lane = lane_id() as usize;
            for j in 0..E {
                // SAFETY: this warp's 256 f32 (launch contract), lane·8 + j < 256.
                unsafe { row.add(lane * E + j).write(x[j]) };
            }
            // SAFETY: whole warp converged.
            unsafe { sync_warp() };
            let head = row.wrapping_add(ln.slot as usize * D);
            let (r, half) = (p.rotary_dim, p.rotary_dim / 2);
            for j in 0..E {
                let i = ln.e + j as u32;
                if i < r {
                    let k = if i < half { i + half } else { i - half };
                    // SAFETY: k < r <= D: inside this head's D floats of the row, written before
                    // the sync.
                    partner[j] = unsafe { head.add(k as usize).read() };
                }
            }
            // The row is rewritten for the next head: every lane must have read it first.
            // SAFETY: whole warp converged.
            unsafe { sync_warp() };
        }
        let e = ln.e as usize;
        // SAFETY: the lane's 8 entries of each half of the table, complete since the barrier.
        let (cs, sn) = unsafe { (lds8(tab.wrapping_add(e)), lds8(tab.wrapping_add(D + e))) };
        if p.rotary_dim as usize != D {
            // Past R: cs = 1, sn = -0 and the partner masked to +0 give x·1 + (+0)·(-0) = x
            // exactly (-0 included); a mask in memory rather than a comparison keeps the compiler
            // from holding eight predicates per lane across the loop.
            // SAFETY: the lane's 8 mask entries, written before the first barrier.
            let keep = unsafe { lds8(sm.mask::<D>().wrapping_add(e) as *const f32) };
            for j in 0..E {
                partner[j] = f32::from_bits(partner[j].to_bits() & keep[j].to_bits());
            }
        }
        for j in 0..E {
            y[j] = mul_add(partner[j], sn[j], x[j] * cs[j]);
        }
    }

    let mut out = [0u32; 4];
    for i in 0..4 {
        out[i] = T::pack2(y[2 * i], y[2 * i + 1]);
    }
    let (hq, hk) = (p.num_q_heads, p.num_kv_heads);
    if kind == KIND_Q || kind == KIND_K {
        let (row, hh) = if kind == KIND_Q { (out_rows.0, h) } else { (out_rows.1, h - hq) };
        let dst = row.wrapping_add(hh as usize * D);
        // SAFETY: inside row t of the output, head hh; alignment per FLAG_VECTORIZED. In place,
        // every lane of the warp read its elements (and the partners) before this store.
        unsafe { store8(dst, out, vector) };
    }
    if slot >= 0 && (kind == KIND_K || kind == KIND_V) && p.k_cache != 0 {
        // k: the stored (rounded) value; v: the input.
        let is_v = kind == KIND_V;
        let (scale, recip) = if is_v { (p.v_scale, p.v_recip) } else { (p.k_scale, p.k_recip) };
        let src = if is_v { raw } else { out };
        let mut q = [0.0f32; E];
        for j in 0..E {
            q[j] = T::to_f32(elem(src, j));
        }
        if recip != 0.0 {
            for v in q.iter_mut() {
                *v = div_by_scale(*v, scale, recip);
            }
        } else {
            for v in q.iter_mut() {
                *v /= scale;
            }
        }
        let bytes = f32x8_to_e4m3x8_sat(q);
        let (cache, kvh) = if is_v { (p.v_cache, h - hq - hk) } else { (p.k_cache, h - hq) };
        let dst =
            (cache as *mut u8).wrapping_add(slot as usize * p.cache_stride as usize + kvh as usize * D + ln.e as usize);
        if p.flags & FLAG_CACHE_VEC8 != 0 {
            // SAFETY: inside cache row `slot` (host-validated capacity), head kvh; 8-byte aligned
            // per FLAG_CACHE_VEC8 (e and D are multiples of 8).
            unsafe { st_global_b64(dst as *mut u64, bytes) };
        } else {
            for j in 0..E {
                // SAFETY: as above, byte by byte.
                unsafe { dst.add(j).write((bytes >> (8 * j)) as u8) };
            }
        }
    }
}

/// The grid-stride loop of CTAs over tokens.
///
/// # Safety
/// Launched with `32 · warps` threads (`warps` in 1..=8) and `qk_norm_rope_smem_bytes(D, warps,
/// ROPE, NeoX rows)` of dynamic shared memory, parameters validated by `lowp::qk_norm_rope`.
#[inline(always)]
unsafe fn kernel<T: Half, const D: usize, const NORM: bool, const ROPE: bool, const ROWS: bool>(p: &QkNormRopeParams) {
    const { assert!(D == 64 || D == 128 || D == 256) };
    let l = (D / E) as u32;
    let g_heads = 32 / l;
    let (lane, tid) = (lane_id(), thread_idx_x());
    let (warp, warps) = (warp_id(), block_dim_x() / 32);
    let vector = p.flags & FLAG_VECTORIZED != 0;
    let (hq, hk) = (p.num_q_heads, p.num_kv_heads);
    let heads = hq + hk + if p.v_cache != 0 { hk } else { 0 };
    let groups = heads.div_ceil(g_heads);
    let ln = Lane { slot: lane / l, e: (lane % l) * QK_ELEMS_PER_LANE };
    // SAFETY: the launch provides the weights, the tables and the NeoX rows (launch contract).
    let sm = Smem { base: unsafe { dynamic_smem::<F4>() } as *mut f32 };

    // Once per CTA: the weights in f32 (1 + w for Gemma), and the table entries of elements past
    // R, which never rotate (the kernel keeps x there) but are read with the rest.
    let mut i = tid as usize;
    while i < D {
        if NORM {
            // SAFETY: each weight has D elements, i < D.
            let (q, k) = unsafe { (*(p.q_weight as *const u16).add(i), *(p.k_weight as *const u16).add(i)) };
            let (q, k) = (T::to_f32(q), T::to_f32(k));
            let (q, k) = if p.flags & FLAG_WEIGHT_ONE_PLUS != 0 { (1.0 + q, 1.0 + k) } else { (q, k) };
            // SAFETY: inside the 2·D f32 of the weights.
            unsafe {
                sm.weights().add(i).write(q);
                sm.weights().add(D + i).write(k);
            }
        }
        if ROPE {
            let rotates = i < p.rotary_dim as usize;
            // SAFETY: inside the D u32 of the mask.
            unsafe { sm.mask::<D>().add(i).write(if rotates { u32::MAX } else { 0 }) };
            if !rotates {
                for turn in 0..2 {
                    // SAFETY: inside the 2·D f32 of each table.
                    unsafe {
                        sm.table::<D>(turn).add(i).write(1.0);
                        sm.table::<D>(turn).add(D + i).write(-0.0);
                    }
                }
            }
        }
        i += block_dim_x() as usize;
    }
    if !ROPE {
        // The weights are read after it (with ROPE, the first token's barrier orders them).
        // SAFETY: every thread of the CTA reaches it.
        unsafe { sync_threads() };
    }

    let mut t = block_idx_x() as u64;
    let mut turn = 0usize;
    // `t` is uniform over the CTA, so every thread takes the same trips and barriers.
    while t < p.tokens {
        let kv_slot = if p.k_cache != 0 { cache_slot(p, t, tid == 0) } else { -1 };
        let row = (p.qkv as *const u16).wrapping_add((t * p.qkv_stride) as usize + ln.e as usize);
        let tab = sm.table::<D>(turn);
        let out_rows = (
            (p.q_out as *mut u16).wrapping_add((t * p.q_out_stride) as usize + ln.e as usize),
            (p.k_out as *mut u16).wrapping_add((t * p.k_out_stride) as usize + ln.e as usize),
        );
        // The warp's groups g = warp + warps · k, k = 0, 1, …, through a ring of RING loads in
        // flight: group k is finished while group k+1 is loading, then group k+RING's load takes
        // its slot. Slot 0 is always the next to finish (the ring rotates; constant indices keep
        // it in registers).
        let head_kind = |k: u32| {
            let g = warp + warps * k;
            let h = g * g_heads + ln.slot;
            let kind = if g >= groups || h >= heads {
                KIND_NONE
            } else if h < hq {
                KIND_Q
            } else if h < hq + hk {
                KIND_K
            } else {
                KIND_V
            };
            (h, kind)
        };
        let load = |k: u32| {
            let (h, kind) = head_kind(k);
            if kind == KIND_NONE {
                [0; 4]
            } else {
                // SAFETY: head h of row t lies inside qkv (host-validated shape).
                unsafe { load8(row.wrapping_add(h as usize * D), vector) }
            }
        };
        let mut ring = [load(0), load(1)];
        if ROPE {
            // SAFETY: this token's buffer; the previous token's readers of it passed the barrier
            // before the last one (double buffering).
            unsafe { build_table::<D>(p, t, tab) };
            // SAFETY: every thread of the CTA reaches it (uniform loop).
            unsafe { sync_threads() };
        }
        let mut k = 0;
        // Uniform over the warp: whole groups only.
        while warp + warps * k < groups {
            let (h, kind) = head_kind(k);
            // SAFETY: the warp is converged on this group; launch contract.
            unsafe { finish_head::<T, D, NORM, ROPE, ROWS>(p, ln, &sm, tab, h, kind, ring[0], kv_slot, out_rows) };
            ring = [ring[1], load(k + RING)];
            k += 1;
        }
        t += grid_dim_x() as u64;
        turn += 1;
    }
}

macro_rules! entries {
    ($($name:ident: $t:ty, $d:literal, $norm:literal, $rope:literal, $rows:literal;)*) => {$(
        /// See the module documentation.
        ///
        /// # Safety
        /// Launch contract of `kernel`.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: QkNormRopeParams) {
            unsafe { kernel::<$t, $d, $norm, $rope, $rows>(&p) }
        }
    )*};
}

entries! {
    qk_norm_rope_bf16_d64: Bf16, 64, true, true, false;
    qk_norm_rope_bf16_d128: Bf16, 128, true, true, false;
    qk_norm_rope_bf16_d256: Bf16, 256, true, true, false;
    qk_norm_rope_f16_d64: F16, 64, true, true, false;
    qk_norm_rope_f16_d128: F16, 128, true, true, false;
    qk_norm_rope_f16_d256: F16, 256, true, true, false;
    head_rmsnorm_bf16_d64: Bf16, 64, true, false, false;
    head_rmsnorm_bf16_d128: Bf16, 128, true, false, false;
    head_rmsnorm_bf16_d256: Bf16, 256, true, false, false;
    head_rmsnorm_f16_d64: F16, 64, true, false, false;
    head_rmsnorm_f16_d128: F16, 128, true, false, false;
    head_rmsnorm_f16_d256: F16, 256, true, false, false;
    rope_bf16_d64: Bf16, 64, false, true, false;
    rope_bf16_d128: Bf16, 128, false, true, false;
    rope_bf16_d256: Bf16, 256, false, true, false;
    rope_f16_d64: F16, 64, false, true, false;
    rope_f16_d128: F16, 128, false, true, false;
    rope_f16_d256: F16, 256, false, true, false;
    // NeoX with R/2 not a power-of-two multiple of 8: partners through shared memory
    qk_norm_rope_rows_bf16_d64: Bf16, 64, true, true, true;
    qk_norm_rope_rows_bf16_d128: Bf16, 128, true, true, true;
    qk_norm_rope_rows_bf16_d256: Bf16, 256, true, true, true;
    qk_norm_rope_rows_f16_d64: F16, 64, true, true, true;
    qk_norm_rope_rows_f16_d128: F16, 128, true, true, true;
    qk_norm_rope_rows_f16_d256: F16, 256, true, true, true;
    rope_rows_bf16_d64: Bf16, 64, false, true, true;
    rope_rows_bf16_d128: Bf16, 128, false, true, true;
    rope_rows_bf16_d256: Bf16, 256, false, true, true;
    rope_rows_f16_d64: F16, 64, false, true, true;
    rope_rows_f16_d128: F16, 128, false, true, true;
    rope_rows_f16_d256: F16, 256, false, true, true;
}
