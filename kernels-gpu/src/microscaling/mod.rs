//! NVFP4 / MXFP4 / MXFP8 quantization with linear or 128×4-swizzled scale factors, grouped
//! (MoE) layouts, swizzle/unswizzle, dequantization and the tensor amax behind the NVFP4 global
//! scale.
//!
//! The per-block arithmetic is in `math` (no intrinsics; the host tests compile the same file and
//! compare it with the reference). This file moves the data:
//!
//! - lanes hold 8 consecutive elements each (one 16-byte load of bf16/f16, two of f32, when the
//!   host found every row aligned: `MX_FLAG_VECTORIZED`; scalar loads otherwise), `block / 8`
//!   neighbouring lanes one scale block, whose amax they combine with butterfly shuffles. Each
//!   lane takes two chunks 32 apart per turn of the grid-stride loop (two loads in flight), so a
//!   warp covers 64 consecutive chunks of the flattened `(row, chunk)` space and each of its load
//!   instructions one contiguous 512-byte span (bf16);
//! - each lane stores its 8 codes at once (4 bytes FP4, 8 bytes FP8: a warp writes 128 or 256
//!   contiguous bytes per store); one lane per block stores the scale byte at its linear or
//!   swizzled position. NVFP4 lanes split the scale computation: the even lane of a pair computes
//!   its first block's scale, the odd lane its second block's, and they swap them by shuffle;
//! - dequantization: one thread per scale block, grid-striding over the `(row, block column)`
//!   items: its 8 or 16 (FP4) or 32 (FP8) code bytes in, 16-byte bf16 stores out;
//! - the swizzled layout's padding (columns past `K / block` up to a multiple of 4, rows past the
//!   last up to a multiple of 128) is written as zeros by the kernel, after the main loop: a
//!   grid-stride pass over the rows zeroes each scale row's padding columns (bytes), another the
//!   padding rows (4-byte words);
//! - grouped launches first compute, in every CTA, the clamped group ends and the scale row offset
//!   of each group (two block-wide scans in shared memory), then look the group of each row up
//!   there. CTA 0 writes the offsets out, and sets `MX_ERR_GROUP_BOUNDS` in the error flag when an
//!   end was clamped.

pub mod math;

use crate::abi::{
    MX_ERR_GROUP_BOUNDS, MX_FLAG_ROUND_UP, MX_FLAG_SWIZZLED, MX_FLAG_VECTORIZED, MX_THREADS as THREADS, MxAmaxParams,
    MxDequantizeParams, MxGlobalScaleParams, MxQuantizeParams, MxSwizzleParams,
};
use crate::prim::convert::{Bf16, F16, F32, f16_to_f32, f32_to_e4m3fn_sat, f32x2_to_bf16x2, f32x2_to_e4m3fn_sat};
use crate::prim::mem::{Vec16, ld_global_nc_b64, ld_global_nc_v4, raise_flag, st_global_b64, st_global_v4, st_u16xn};
use crate::prim::packed::Held;
use crate::prim::soft;
use crate::prim::warp::{shfl_idx_u32, shfl_xor_f32, shfl_xor_u32, sync_warp, warp_reduce_f32};
use crate::prim::{block_dim_x, block_idx_x, dynamic_smem, grid_dim_x, lane_id, sync_threads, thread_idx_x};
use math::Fp8Encoder;

/// E4M3 through `prim::convert`: the `cvt.rn.satfinite` on sm_89+ (the sm_90a module), the soft
/// path otherwise; bit-identical to `math::SoftFp8`, which the host tests use.
struct DeviceFp8;

impl Fp8Encoder for DeviceFp8 {
    #[inline(always)]
    fn e4m3(x: f32) -> u8 {
        f32_to_e4m3fn_sat(x)
    }
    #[inline(always)]
    fn e4m3x2(lo: f32, hi: f32) -> u16 {
        f32x2_to_e4m3fn_sat(lo, hi)
    }
}

// ---------------------------------------------------------------------------------------------
// Walking the (row, block column) items

/// This thread's grid-stride position over the items of a matrix of `cols` items per row: the
/// flat index `row * cols + col` starts at the global thread index and advances by the grid size,
/// tracked as (row, col) without a division per step. 32-bit: the host keeps rows and columns
/// below 2^32 (and the grid is far smaller).
struct Walk {
    row: u32,
    col: u32,
    step_rows: u32,
    step_cols: u32,
    cols: u32,
}

impl Walk {
    /// `cols` must be positive.
    #[inline(always)]
    fn new(cols: u32) -> Walk {
        let (t, s) = grid_position();
        Walk { row: t / cols, col: t % cols, step_rows: s / cols, step_cols: s % cols, cols }
    }

    /// A walk from flat index `start` by `step` items (both below 2^32); `cols` positive.
    #[inline(always)]
    fn at(start: u32, step: u32, cols: u32) -> Walk {
        Walk { row: start / cols, col: start % cols, step_rows: step / cols, step_cols: step % cols, cols }
    }

    #[inline(always)]
    fn advance(&mut self) {
        self.col += self.step_cols;
        // saturating: a row index past u32::MAX only ever ends the loop
        self.row = self.row.saturating_add(self.step_rows);
        if self.col >= self.cols {
            self.col -= self.cols;
            self.row = self.row.saturating_add(1);
        }
    }
}

/// Global thread index and grid size in threads (a launch has fewer than 2^32 threads).
#[inline(always)]
fn grid_position() -> (u32, u32) {
    (block_idx_x() * block_dim_x() + thread_idx_x(), grid_dim_x() * block_dim_x())
}

// ---------------------------------------------------------------------------------------------
// Moving blocks

/// Loads `W` words (4·W bytes, little-endian), read-only: one 8-byte load for `W = 2`, 16-byte
/// loads for a multiple of 4, bytes when not `vector`.
///
/// # Safety
/// `p` is valid for `4 * W` bytes, aligned to `min(4 * W, 16)` bytes when `vector`, not written
/// during the kernel.
#[inline(always)]
unsafe fn load_words<const W: usize>(p: *const u8, vector: bool) -> [u32; W] {
    let mut w = [0u32; W];
    if vector && W == 2 {
        // SAFETY: 8 bytes, 8-byte aligned (caller).
        let v = unsafe { ld_global_nc_b64(p as *const u64) };
        w[0] = v as u32;
        w[1] = (v >> 32) as u32;
    } else if vector && W % 4 == 0 {
        for i in 0..W / 4 {
            // SAFETY: 16 bytes at 16·i < 4·W, 16-byte aligned (caller).
            let v = unsafe { ld_global_nc_v4((p as *const Vec16).add(i)) };
            for j in 0..4 {
                w[4 * i + j] = v.0[j];
            }
        }
    } else {
        crate::unroll!(k in [0, 1, 2, 3, 4, 5, 6, 7] {
            if k < W {
                for b in 0..4 {
                    // SAFETY: byte 4k + b < 4·W (caller).
                    w[k] |= (unsafe { p.add(4 * k + b).read() } as u32) << (8 * b);
                }
            }
        });
    }
    w
}

/// Rounds `N` f32 to bf16 and stores them (16-byte stores when `vector`, 2-byte otherwise).
///
/// # Safety
/// `p` is valid for `N` bf16 of writes, 16-byte aligned when `vector`; `N` is a multiple of 8.
#[inline(always)]
unsafe fn store_bf16<const N: usize>(p: *mut u16, y: &[f32; N], vector: bool) {
    for i in 0..N / 8 {
        let mut v = Vec16::default();
        for j in 0..4 {
            v.0[j] = f32x2_to_bf16x2(y[8 * i + 2 * j], y[8 * i + 2 * j + 1]);
        }
        if vector {
            // SAFETY: 16 bytes at element 8i < N, 16-byte aligned (caller).
            unsafe { st_global_v4((p as *mut Vec16).add(i), v) };
        } else {
            for j in 0..8 {
                // SAFETY: element 8i + j < N (caller).
                unsafe { p.add(8 * i + j).write((v.0[j / 2] >> (16 * (j % 2))) as u16) };
            }
        }
    }
}

/// Writes zero 4-byte words over scale rows `[first, first + n)` of a swizzled matrix with
/// `col_tiles` tiles per row band, items `t0, t0 + step, ...` of the `n * col_tiles` words.
///
/// # Safety
/// `scales` is 4-byte aligned and the swizzled matrix covers those rows.
#[inline(always)]
unsafe fn zero_swizzled_rows(scales: *mut u8, first: u32, n: u32, col_tiles: u32, t0: u32, step: u32) {
    let total = n as u64 * col_tiles as u64;
    let mut i = t0 as u64;
    while i < total {
        let (r, c) = (first + (i / col_tiles as u64) as u32, 4 * (i % col_tiles as u64) as u32);
        // SAFETY: (r, c..c+4) is inside the matrix (caller); c % 4 == 0, so the 4 bytes are one
        // aligned word of the tile.
        unsafe { (scales.add(math::swizzled_offset(r, c, col_tiles) as usize) as *mut u32).write(0) };
        i += step as u64;
    }
}

// ---------------------------------------------------------------------------------------------
// Grouped layout: the shared-memory tables

/// Inclusive scan of one u32 per thread over the block with `op` (associative), Hillis-Steele in
/// `scratch`. Returns (inclusive, exclusive — `identity` for thread 0 —, block total).
///
/// # Safety
/// Called convergently by every thread of a `THREADS`-thread block; `scratch` is shared memory
/// for `THREADS` u32 that nothing else uses during the call (it is free again on return).
#[inline(always)]
unsafe fn block_scan_u32(v: u32, scratch: *mut u32, identity: u32, op: impl Fn(u32, u32) -> u32) -> (u32, u32, u32) {
    let tid = thread_idx_x() as usize;
    let n = THREADS as usize;
    let mut acc = v;
    // SAFETY (this block): tid < THREADS, inside the scratch; every barrier is reached by every
    // thread (the loop bound is uniform).
    unsafe {
        scratch.add(tid).write_volatile(acc);
        sync_threads();
        let mut d = 1;
        while d < n {
            let other = if tid >= d { scratch.add(tid - d).read_volatile() } else { identity };
            sync_threads();
            acc = op(other, acc);
            scratch.add(tid).write_volatile(acc);
            sync_threads();
            d *= 2;
        }
        let excl = if tid > 0 { scratch.add(tid - 1).read_volatile() } else { identity };
        let total = scratch.add(n - 1).read_volatile();
        sync_threads();
        (acc, excl, total)
    }
}

/// The group tables in shared memory: `ends[g]` (clamped, non-decreasing) and `starts[g]` (first
/// scale row of group g's region, `starts[groups]` = total scale rows).
struct Groups {
    ends: *const u32,
    starts: *const u32,
    n: u32,
}

/// Builds the tables (every CTA; CTA 0 also writes `scale_offsets` and raises
/// `MX_ERR_GROUP_BOUNDS` when it clamped an end).
///
/// # Safety
/// Called convergently by every thread of the block; launched with
/// `mx_grouped_smem_bytes(groups)` of dynamic shared memory; `group_ends` holds `groups` i32 and
/// `scale_offsets` `groups + 1`; `error_flag` is 0 or a valid u32; `1 <= groups`,
/// `rows <= i32::MAX`.
#[inline(always)]
unsafe fn group_tables(p: &MxQuantizeParams) -> Groups {
    let e = p.groups as usize;
    let rows = p.rows as u32;
    let tid = thread_idx_x() as usize;
    // SAFETY: the launch provides (2e + 1 + THREADS) u32 of dynamic shared memory.
    let smem = unsafe { dynamic_smem::<u32>() };
    let (ends, starts) = (smem, smem.wrapping_add(e));
    let scratch = smem.wrapping_add(2 * e + 1);
    let offs = p.group_ends as *const i32;
    let chunk = e.div_ceil(THREADS as usize);
    let lo = (tid * chunk).min(e);
    let hi = (lo + chunk).min(e);
    // SAFETY (this block): j in lo..hi < e indexes the `groups` offsets and the tables; the scans
    // are reached by every thread.
    unsafe {
        // Clamped ends: a running max of clamp(offs, 0, rows), scanned across the threads' chunks.
        let mut m = 0u32;
        for j in lo..hi {
            m = math::clamp_group_end(m, offs.add(j).read(), rows);
        }
        let (_, before, _) = block_scan_u32(m, scratch, 0, |a, b| if a > b { a } else { b });
        let mut run = before;
        let mut clamped = false;
        for j in lo..hi {
            let raw = offs.add(j).read();
            run = math::clamp_group_end(run, raw, rows);
            // run <= rows <= i32::MAX: it differs from raw exactly when raw was out of range
            clamped |= run as i32 != raw;
            ends.add(j).write_volatile(run);
        }
        if clamped && block_idx_x() == 0 {
            // error_flag is null or a valid u32 (host contract).
            raise_flag(p.error_flag as *mut u32, MX_ERR_GROUP_BOUNDS);
        }
        sync_threads();
        // Region starts: an exclusive sum of the padded group sizes.
        let size = |j: usize| {
            let start = if j == 0 { 0 } else { ends.add(j - 1).read_volatile() };
            math::group_scale_rows(start, ends.add(j).read_volatile())
        };
        let mut s = 0u32;
        for j in lo..hi {
            s += size(j);
        }
        let (_, before, total) = block_scan_u32(s, scratch, 0, |a, b| a + b);
        let mut run = before;
        for j in lo..hi {
            starts.add(j).write_volatile(run);
            run += size(j);
        }
        if tid == 0 {
            starts.add(e).write_volatile(total);
        }
        sync_threads();
        if block_idx_x() == 0 {
            let out = p.scale_offsets as *mut i32;
            let mut j = tid;
            while j <= e {
                // host: rows + 127·groups <= i32::MAX, so every offset fits
                out.add(j).write(starts.add(j).read_volatile() as i32);
                j += THREADS as usize;
            }
        }
    }
    Groups { ends, starts, n: e as u32 }
}

impl Groups {
    /// Rows that belong to a group: `[0, ends[n - 1])`.
    #[inline(always)]
    fn covered(&self) -> u32 {
        // SAFETY: n >= 1 and the table was built before (group_tables' last barrier).
        unsafe { self.ends.add(self.n as usize - 1).read_volatile() }
    }

    /// The scale row of input row `row < covered()`, updating the cursor `g` (this thread's rows
    /// only increase, so the group of the previous row is a lower bound).
    #[inline(always)]
    fn scale_row(&self, row: u32, g: &mut u32) -> u32 {
        // SAFETY: every index below is < n (row < covered = ends[n - 1], so a later group
        // contains it); the tables are complete.
        unsafe {
            let end = |j: u32| self.ends.add(j as usize).read_volatile();
            if end(*g) <= row {
                let (mut lo, mut hi) = (*g + 1, self.n - 1);
                while lo < hi {
                    let mid = (lo + hi) / 2;
                    if end(mid) > row { hi = mid } else { lo = mid + 1 }
                }
                *g = lo;
            }
            let start = if *g == 0 { 0 } else { end(*g - 1) };
            self.starts.add(*g as usize).read_volatile() + (row - start)
        }
    }

    /// The padding rows of group `g`'s region: (first scale row, count).
    #[inline(always)]
    fn padding(&self, g: u32) -> (u32, u32) {
        // SAFETY: g < n; starts has n + 1 entries.
        unsafe {
            let start = if g == 0 { 0 } else { self.ends.add(g as usize - 1).read_volatile() };
            let size = self.ends.add(g as usize).read_volatile() - start;
            let first = self.starts.add(g as usize).read_volatile() + size;
            let next = self.starts.add(g as usize + 1).read_volatile();
            (first, next - first)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Quantize

/// 8-element chunks each lane handles per turn of the grid-stride loop: two, so two loads are in
/// flight per thread, each one 16 bytes of a 512-byte contiguous span per warp (bf16/f16).
const CHUNKS: u32 = 2;

/// A lane's position over the 8-element chunks of the matrix, `cols` chunks per row: the first of
/// its `CHUNKS` chunks, or the second (32 chunks further).
#[inline(always)]
fn lane_walks(cols: u32) -> (Walk, Walk, u64, u32) {
    let warp = (block_idx_x() * block_dim_x() + thread_idx_x()) >> 5;
    let turn = 32 * CHUNKS;
    let step = (grid_dim_x() * block_dim_x() >> 5) * turn;
    let first = warp * turn + lane_id();
    (Walk::at(first, step, cols), Walk::at(first + 32, step, cols), (warp * turn) as u64, step)
}

/// A microscaling format as the quantize kernel sees it: lanes hold 8 consecutive elements each,
/// `N / 8` lanes one scale block.
trait Format: Copy {
    /// Elements per scale block.
    const N: u32;
    /// Code words per 8 elements: 1 (FP4) or 2 (FP8).
    const W: usize;
    /// What the codes of a block need from its amax.
    type Block: Copy;
    /// Blocks A and B of this lane (the lane's two chunks) from their amaxes. Called by all 32
    /// lanes convergently (an implementation may shuffle).
    ///
    /// # Safety
    /// Convergent over the full warp.
    unsafe fn blocks(&self, amax_a: u32, amax_b: u32) -> (Self::Block, Self::Block);
    /// The scale byte of a block.
    fn scale(b: &Self::Block) -> u8;
    /// Codes of 8 elements of the block (all zero for a block without codes).
    fn codes(&self, b: &Self::Block, x: &[f32; 8]) -> [u32; 2];
}

#[derive(Clone, Copy)]
struct Nvfp4 {
    g: f32,
    /// `math::recip_table_entry(lane)`: lane l holds entry `l % 8` of the scale-reciprocal table,
    /// which `blocks` reads with a shuffle.
    recip_table: u32,
}

#[derive(Clone, Copy)]
struct Nvfp4Block {
    scale: u32,
    s: f32,
    r: f32,
}

impl Format for Nvfp4 {
    const N: u32 = 16;
    const W: usize = 1;
    type Block = Nvfp4Block;

    /// Each lane of a pair (2k, 2k + 1) holds halves of blocks A and B: the even lane computes
    /// A's scale, the odd lane B's, and they swap (scale, s, 1/s) with three shuffles. The scale
    /// (a division, an E4M3 conversion, a reciprocal: a fourth shuffle reads it from the table)
    /// costs more than the shuffles.
    #[inline(always)]
    unsafe fn blocks(&self, amax_a: u32, amax_b: u32) -> (Nvfp4Block, Nvfp4Block) {
        let odd = lane_id() & 1 != 0;
        let scale = math::nvfp4_scale::<DeviceFp8>(if odd { amax_b } else { amax_a }, self.g);
        // SAFETY: the whole warp is converged here (caller's contract).
        let (s, r, _) = math::nvfp4_scale_params(scale, |i| unsafe { shfl_idx_u32(self.recip_table, i) });
        let mine = Nvfp4Block { scale: scale as u32, s, r };
        // SAFETY: the whole warp is converged here (caller's contract).
        let other =
            unsafe { Nvfp4Block { scale: shfl_xor_u32(mine.scale, 1), s: shfl_xor_f32(s, 1), r: shfl_xor_f32(r, 1) } };
        if odd { (other, mine) } else { (mine, other) }
    }

    #[inline(always)]
    fn scale(b: &Nvfp4Block) -> u8 {
        b.scale as u8
    }

    #[inline(always)]
    fn codes(&self, b: &Nvfp4Block, x: &[f32; 8]) -> [u32; 2] {
        let c = math::nvfp4_codes8(x, self.g, b.s, b.r, 6.0 * b.s);
        [if math::nvfp4_has_codes(b.scale as u8) { c } else { 0 }, 0]
    }
}

#[derive(Clone, Copy)]
struct Mx<const FP8: bool> {
    round_up: bool,
}

#[derive(Clone, Copy)]
struct MxBlock {
    scale: u8,
    /// `mx_multiplier(scale)`, or 0 for a block without codes (every code then 0: `x · 0` is
    /// ±0, the encoders' code 0 or 0x80 would keep the sign, so codes are cleared explicitly).
    m: f32,
    codes: bool,
}

impl<const FP8: bool> Mx<FP8> {
    #[inline(always)]
    fn block(&self, amax: u32) -> MxBlock {
        let (emax, max) = if FP8 { (8, math::E4M3_MAX) } else { (2, math::E2M1_MAX) };
        let scale = math::mx_scale(amax, emax, max, self.round_up);
        let codes = math::mx_has_codes(scale, amax);
        MxBlock { scale, m: math::mx_multiplier(if codes { scale } else { 127 }), codes }
    }
}

impl<const FP8: bool> Format for Mx<FP8> {
    const N: u32 = 32;
    const W: usize = if FP8 { 2 } else { 1 };
    type Block = MxBlock;

    /// Both scales in every lane: a few integer operations each (OCP), cheaper than shuffles.
    #[inline(always)]
    unsafe fn blocks(&self, amax_a: u32, amax_b: u32) -> (MxBlock, MxBlock) {
        (self.block(amax_a), self.block(amax_b))
    }

    #[inline(always)]
    fn scale(b: &MxBlock) -> u8 {
        b.scale
    }

    #[inline(always)]
    fn codes(&self, b: &MxBlock, x: &[f32; 8]) -> [u32; 2] {
        let c = if FP8 { math::mxfp8_codes8::<DeviceFp8>(x, b.m) } else { [math::mxfp4_codes8(x, b.m), 0] };
        if b.codes { c } else { [0, 0] }
    }
}

/// Loads chunk (row, c) of the input: elements `8c..8c + 8` of the row, as loaded (packed pairs
/// for bf16/f16).
///
/// # Safety
/// The chunk is inside the matrix; rows 16-byte aligned when `VECTOR`.
#[inline(always)]
unsafe fn load_chunk<T: Held, const VECTOR: bool>(p: &MxQuantizeParams, row: u32, c: u32) -> T::Raw {
    let o = (row as u64 * p.x_stride + 8 * c as u64) * T::BYTES as u64;
    // SAFETY: caller's contract; 8 elements from a multiple of 8 keep the row's alignment.
    unsafe { T::load_raw((p.x as *const u8).add(o as usize), VECTOR) }
}

/// Stores the codes of chunk (row, c): `W` = 1 word (FP4) or 2 (FP8) at byte `4 · W · c` of the
/// code row (`W` a constant after inlining).
///
/// # Safety
/// The chunk is inside the matrix; code rows 4-byte (FP4) or 8-byte (FP8) aligned when `VECTOR`.
#[inline(always)]
unsafe fn store_chunk_codes<const VECTOR: bool>(p: &MxQuantizeParams, nw: usize, row: u32, c: u32, w: [u32; 2]) {
    let o = row as u64 * p.codes_stride + 4 * nw as u64 * c as u64;
    let q = (p.codes as *mut u8).wrapping_add(o as usize);
    // SAFETY: 4·W bytes inside the code row (caller), aligned when VECTOR.
    unsafe {
        if VECTOR && nw == 2 {
            st_global_b64(q as *mut u64, w[0] as u64 | ((w[1] as u64) << 32));
        } else if VECTOR {
            st_u16xn::<2>(q as *mut u16, [w[0] as u16, (w[0] >> 16) as u16], true);
        } else {
            for k in 0..nw {
                for b in 0..4 {
                    q.add(4 * k + b).write((w[k] >> (8 * b)) as u8);
                }
            }
        }
    }
}

/// The quantize kernels' body. Lanes hold 8 consecutive elements (one 16-byte load of bf16/f16),
/// `F::N / 8` neighbouring lanes a scale block, whose amax they combine with butterfly shuffles;
/// each lane handles `CHUNKS` chunks 32 apart per turn, so a warp covers 64 consecutive chunks of
/// the flattened (row, chunk) space and every load and store instruction of a warp touches one
/// contiguous span. The lane at position 0 (1) of its block's lanes stores the scale of its first
/// (second) chunk's block, so each block's scale is stored once and a warp stores 32 per turn. `VECTOR`: the host found every input row 16-byte aligned and every code
/// row 4-byte (FP4) or 8-byte (FP8) aligned; a separate instantiation, so the hot loop carries no
/// scalar path.
///
/// # Safety
/// Launched with `THREADS` threads per block (grouped: and `mx_grouped_smem_bytes(groups)` of
/// dynamic shared memory), with parameters validated by the host (`lowp::microscaling`): every
/// buffer covers its matrix, outputs overlap nothing, `VECTOR` only with the alignments it needs,
/// rows and chunks per row (`K / 8`) below 2^32, fewer than 2^32 swizzled tiles.
#[inline(always)]
unsafe fn quantize<T: Held, F: Format, const GROUPED: bool, const VECTOR: bool>(p: &MxQuantizeParams, f: F) {
    let nb = p.blocks_per_row;
    let swizzled = GROUPED || p.flags & MX_FLAG_SWIZZLED != 0;
    let col_tiles = nb.div_ceil(4);
    let scales = p.scales as *mut u8;
    let rows = p.rows as u32;
    // SAFETY: forwarded launch contract (grouped launches only).
    let groups = if GROUPED { Some(unsafe { group_tables(p) }) } else { None };
    let covered = match &groups {
        Some(g) => g.covered(),
        None => rows,
    };
    let lanes = F::N / 8; // lanes per block
    let q = lane_id() & (lanes - 1); // this lane's eighth of the block
    // The scale row of input row `row < covered` (the group cursor `cursor` of a walk whose rows
    // only increase).
    let scale_row = |row: u32, cursor: &mut u32| match &groups {
        Some(g) => g.scale_row(row, cursor),
        None => row,
    };
    // Stores the scale of the block holding chunk (row, c).
    let store_scale = |row: u32, c: u32, s: u8, cursor: &mut u32| {
        let col = c / lanes;
        // SAFETY (this block): (row, col) is a block of the matrix; the scales cover it.
        unsafe {
            if swizzled {
                let srow = scale_row(row, cursor);
                scales.add(math::swizzled_offset(srow, col, col_tiles) as usize).write(s);
            } else {
                scales.add((row as u64 * p.scale_stride + col as u64) as usize).write(s);
            }
        }
    };
    if nb > 0 {
        let cols = nb * lanes;
        let (mut a, mut b, mut base, step) = lane_walks(cols);
        let total = covered as u64 * cols as u64;
        // the group cursor of the rows whose scales this lane stores (one walk's: they only grow)
        let mut cursor = 0u32;
        // `base` (the warp's first chunk) is uniform over the warp: the shuffles see all lanes.
        while base < total {
            let (on_a, on_b) = (a.row < covered, b.row < covered);
            // A chunk past the end loads chunk (0, 0) instead, unconditionally (no branch, no
            // zeroing): a block's chunks are all on or all off, so those values only reach the
            // amax and codes of an off block, which nothing stores.
            let at = |w: &Walk, on: bool| if on { (w.row, w.col) } else { (0, 0) };
            let ((ra, ca), (rb, cb)) = (at(&a, on_a), at(&b, on_b));
            // SAFETY: chunks of the matrix (`row < covered <= rows`, or chunk (0, 0) of a
            // non-empty matrix: the loop runs only when `total > 0`).
            let (xa, xb) = unsafe { (load_chunk::<T, VECTOR>(p, ra, ca), load_chunk::<T, VECTOR>(p, rb, cb)) };
            // Both blocks' amaxes on the values as loaded (packed pairs for bf16/f16), reduced
            // together over the block's lanes (one shuffle per step for both: `prim::packed`),
            // then as f32 bits (`math::amax_bits`'s value: any NaN above +Inf).
            let mut pair = T::pair(T::amax8(&xa), T::amax8(&xb));
            let mut m = 1;
            while m < lanes {
                // SAFETY: every lane of the warp is here (uniform loop, no branch around it).
                pair = T::pair_merge(pair, unsafe { T::pair_shfl_xor(pair, m) });
                m <<= 1;
            }
            let (ma, mb) = T::pair_bits(pair);
            let (xa, xb) = (T::widen(xa), T::widen(xb));
            // SAFETY: convergent, as above.
            let (ba, bb) = unsafe { f.blocks(ma, mb) };
            if on_a {
                // SAFETY: chunk a is inside the matrix; alignment per VECTOR.
                unsafe { store_chunk_codes::<VECTOR>(p, F::W, a.row, a.col, f.codes(&ba, &xa)) };
            }
            if on_b {
                // SAFETY: as above.
                unsafe { store_chunk_codes::<VECTOR>(p, F::W, b.row, b.col, f.codes(&bb, &xb)) };
            }
            // One scale store per block, by lane 0 (first chunk) or 1 (second chunk) of the
            // block's lanes: one pass for the warp, each storing lane following one walk.
            let (row, c, s, on) =
                if q == 0 { (a.row, a.col, F::scale(&ba), on_a) } else { (b.row, b.col, F::scale(&bb), on_b) };
            if q < 2 && on {
                store_scale(row, c, s, &mut cursor);
            }
            // Rejoin the lanes after the branches above before the next turn's loads.
            // SAFETY: every lane reaches it (uniform loop).
            unsafe { sync_warp() };
            a.advance();
            b.advance();
            base += step as u64;
        }
    }
    // Padding columns of the swizzled layout (past the last block of each scale row that holds a
    // row's scales, up to a multiple of 4), as bytes: the rest of their word holds scales other
    // threads store. A pass of its own, rather than a check at every scale store.
    if swizzled && nb % 4 != 0 {
        let (t, step) = grid_position();
        let (mut row, mut cursor) = (t as u64, 0u32);
        while row < covered as u64 {
            let srow = scale_row(row as u32, &mut cursor);
            for pc in nb..4 * col_tiles {
                // SAFETY: (srow, pc) is inside the swizzled matrix (its padded columns).
                unsafe { scales.add(math::swizzled_offset(srow, pc, col_tiles) as usize).write(0) };
            }
            row += step as u64;
        }
    }
    // Padding rows of the swizzled layout, as zero words.
    if col_tiles > 0 {
        match &groups {
            Some(g) => {
                let mut gi = block_idx_x();
                while gi < g.n {
                    let (first, n) = g.padding(gi);
                    // SAFETY: the region of group gi lies inside the worst-case buffer.
                    unsafe { zero_swizzled_rows(scales, first, n, col_tiles, thread_idx_x(), THREADS) };
                    gi += grid_dim_x();
                }
            }
            None if swizzled => {
                let (t, step) = grid_position();
                let n = (math::swizzled_rows(p.rows) - p.rows) as u32;
                // SAFETY: the buffer holds swizzled_rows(rows) rows.
                unsafe { zero_swizzled_rows(scales, rows, n, col_tiles, t, step) };
            }
            None => {}
        }
    }
}

/// The NVFP4 global encode scale of a launch: the device value (sanitized) or the host's.
///
/// # Safety
/// `global_scale` is 0 or a valid `f32*`.
#[inline(always)]
unsafe fn global_scale(ptr: u64, g: f32) -> f32 {
    if ptr == 0 {
        g
    } else {
        // SAFETY: a valid, aligned f32 (launch contract), only read.
        math::sanitize_global_scale(unsafe { (ptr as *const f32).read() })
    }
}

/// Runs `quantize` with the vector or the scalar instantiation.
///
/// # Safety
/// Launch contract of `quantize`.
#[inline(always)]
unsafe fn quantize_dispatch<T: Held, F: Format, const GROUPED: bool>(p: &MxQuantizeParams, f: F) {
    // SAFETY: forwarded; the vector instantiation only where the host set the flag.
    unsafe {
        if p.flags & MX_FLAG_VECTORIZED != 0 {
            quantize::<T, F, GROUPED, true>(p, f)
        } else {
            quantize::<T, F, GROUPED, false>(p, f)
        }
    }
}

macro_rules! quantize_kernels {
    ($($name:ident, $t:ty, $grouped:literal, $fmt:ident;)*) => {$(
        /// Quantize kernel (see the module docs and `lowp::microscaling`).
        ///
        /// # Safety
        /// Launch contract of `quantize`.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: MxQuantizeParams) {
            quantize_kernels!(@body $fmt, p, $t, $grouped);
        }
    )*};
    (@body nvfp4, $p:ident, $t:ty, $grouped:literal) => {{
        // SAFETY: launch contract.
        let g = unsafe { global_scale($p.global_scale, $p.g) };
        let recip_table = math::recip_table_entry(lane_id());
        // SAFETY: launch contract.
        unsafe { quantize_dispatch::<$t, _, $grouped>(&$p, Nvfp4 { g, recip_table }) }
    }};
    (@body mxfp4, $p:ident, $t:ty, $grouped:literal) => {{
        let round_up = $p.flags & MX_FLAG_ROUND_UP != 0;
        // SAFETY: launch contract.
        unsafe { quantize_dispatch::<$t, _, $grouped>(&$p, Mx::<false> { round_up }) }
    }};
    (@body mxfp8, $p:ident, $t:ty, $grouped:literal) => {{
        let round_up = $p.flags & MX_FLAG_ROUND_UP != 0;
        // SAFETY: launch contract.
        unsafe { quantize_dispatch::<$t, _, $grouped>(&$p, Mx::<true> { round_up }) }
    }};
}

quantize_kernels! {
    nvfp4_quantize_bf16, Bf16, false, nvfp4;
    nvfp4_quantize_f16, F16, false, nvfp4;
    nvfp4_quantize_f32, F32, false, nvfp4;
    nvfp4_quantize_grouped_bf16, Bf16, true, nvfp4;
    nvfp4_quantize_grouped_f16, F16, true, nvfp4;
    nvfp4_quantize_grouped_f32, F32, true, nvfp4;
    mxfp4_quantize_bf16, Bf16, false, mxfp4;
    mxfp4_quantize_f16, F16, false, mxfp4;
    mxfp4_quantize_f32, F32, false, mxfp4;
    mxfp4_quantize_grouped_bf16, Bf16, true, mxfp4;
    mxfp4_quantize_grouped_f16, F16, true, mxfp4;
    mxfp4_quantize_grouped_f32, F32, true, mxfp4;
    mxfp8_quantize_bf16, Bf16, false, mxfp8;
    mxfp8_quantize_f16, F16, false, mxfp8;
    mxfp8_quantize_f32, F32, false, mxfp8;
    mxfp8_quantize_grouped_bf16, Bf16, true, mxfp8;
    mxfp8_quantize_grouped_f16, F16, true, mxfp8;
    mxfp8_quantize_grouped_f32, F32, true, mxfp8;
}

// ---------------------------------------------------------------------------------------------
// Dequantize

/// The dequantize kernels' body: `block` turns (`W` words of codes, scale byte) into `N` f32,
/// rounded to bf16 on the store. `VECTOR` as in `quantize`.
///
/// # Safety
/// Launched with `THREADS` threads per block, parameters validated by the host.
#[inline(always)]
unsafe fn dequantize<const N: usize, const W: usize, const VECTOR: bool>(
    p: &MxDequantizeParams,
    block: impl Fn([u32; W], u8) -> [f32; N],
) {
    let nb = p.blocks_per_row;
    if nb == 0 {
        return;
    }
    let swizzled = p.flags & MX_FLAG_SWIZZLED != 0;
    let col_tiles = nb.div_ceil(4);
    let rows = p.rows as u32;
    let mut w = Walk::new(nb);
    while w.row < rows {
        let (row, col) = (w.row, w.col);
        // SAFETY: (row, col) is a block of the codes, scales and output (host-validated shapes);
        // alignments per VECTOR; inputs are never written by this kernel.
        unsafe {
            let co = row as u64 * p.codes_stride + col as u64 * 4 * W as u64;
            let codes = load_words::<W>((p.codes as *const u8).add(co as usize), VECTOR);
            let so = if swizzled {
                math::swizzled_offset(row, col, col_tiles)
            } else {
                row as u64 * p.scale_stride + col as u64
            };
            let s = (p.scales as *const u8).add(so as usize).read();
            let y = block(codes, s);
            let oo = row as u64 * p.out_stride + col as u64 * N as u64;
            store_bf16::<N>((p.out as *mut u16).add(oo as usize), &y, VECTOR);
        }
        w.advance();
    }
}

/// Runs `dequantize` with the vector or the scalar instantiation.
///
/// # Safety
/// Launch contract of `dequantize`.
#[inline(always)]
unsafe fn dequantize_dispatch<const N: usize, const W: usize>(
    p: &MxDequantizeParams,
    block: impl Fn([u32; W], u8) -> [f32; N] + Copy,
) {
    // SAFETY: forwarded; the vector instantiation only where the host set the flag.
    unsafe {
        if p.flags & MX_FLAG_VECTORIZED != 0 {
            dequantize::<N, W, true>(p, block)
        } else {
            dequantize::<N, W, false>(p, block)
        }
    }
}

/// FP4 codes + E4M3 scales (+ g) → bf16.
///
/// # Safety
/// Launch contract of `dequantize`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn nvfp4_dequantize_bf16(p: MxDequantizeParams) {
    // SAFETY: launch contract.
    let g = unsafe { global_scale(p.global_scale, p.g) };
    unsafe { dequantize_dispatch::<16, 2>(&p, move |c, s| math::nvfp4_dequant_block(c, s, g)) }
}

/// FP4 codes + UE8M0 scales → bf16.
///
/// # Safety
/// Launch contract of `dequantize`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn mxfp4_dequantize_bf16(p: MxDequantizeParams) {
    // SAFETY: launch contract.
    unsafe { dequantize_dispatch::<32, 4>(&p, math::mxfp4_dequant_block) }
}

/// FP8 E4M3 codes + UE8M0 scales → bf16.
///
/// # Safety
/// Launch contract of `dequantize`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn mxfp8_dequantize_bf16(p: MxDequantizeParams) {
    // SAFETY: launch contract.
    unsafe { dequantize_dispatch::<32, 8>(&p, math::mxfp8_dequant_block) }
}

// ---------------------------------------------------------------------------------------------
// Tensor amax and the NVFP4 global scale

/// `max |x|` over the matrix, folded into `*out` with one atomic max per warp.
///
/// # Safety
/// Launched with `THREADS` threads per block; `x` covers `rows × cols` at `x_stride` (16-byte
/// aligned rows when vectorized, which the host only sets with `cols % 8 == 0`); `out` is a valid
/// u32 holding 0 or an earlier partial result.
#[inline(always)]
unsafe fn amax<T: Input>(p: &MxAmaxParams) {
    let mut m = 0u32;
    let (cols, rows) = (p.cols, p.rows as u32);
    let at = |row: u32, col: u32| (row as u64 * p.x_stride + col as u64) * T::BYTES as u64;
    if cols % 8 == 0 && cols > 0 {
        let vector = p.flags & MX_FLAG_VECTORIZED != 0;
        let mut w = Walk::new(cols / 8);
        // the amax on the values as loaded (`prim::packed`), widened once
        let mut acc = 0u32;
        while w.row < rows {
            // SAFETY: 8 elements of row w.row inside the matrix; alignment per the flag.
            let v = unsafe { T::load_raw((p.x as *const u8).add(at(w.row, 8 * w.col) as usize), vector) };
            acc = T::amax_merge(acc, T::amax8(&v));
            w.advance();
        }
        m = T::amax_bits(acc);
    } else if cols > 0 {
        let mut w = Walk::new(cols);
        while w.row < rows {
            // SAFETY: one element inside the matrix.
            let v = unsafe { T::load_one((p.x as *const u8).add(at(w.row, w.col) as usize)) };
            m = m.max(v.to_bits() & 0x7fff_ffff);
            w.advance();
        }
    }
    // Every thread reaches the reduction (the loops above end for all).
    // SAFETY: the whole warp is converged here; the shuffles move bits, never compute on them.
    let r = unsafe { warp_reduce_f32(f32::from_bits(m), 32, |a, b| f32::from_bits(a.to_bits().max(b.to_bits()))) };
    if lane_id() == 0 && r.to_bits() != 0 {
        // SAFETY: `out` is a valid, aligned u32 (launch contract); atomic, so concurrent warps
        // do not race. Non-negative floats order like their bits, NaNs above +Inf.
        unsafe {
            core::sync::atomic::AtomicU32::from_ptr(p.out as *mut u32)
                .fetch_max(r.to_bits(), core::sync::atomic::Ordering::Relaxed)
        };
    }
}

/// Input types with a one-element load besides `Held::load_raw` (the amax of a matrix whose
/// columns are not a multiple of 8).
trait Input: Held {
    /// One element as f32.
    ///
    /// # Safety
    /// `p` is valid for one element.
    unsafe fn load_one(p: *const u8) -> f32;
}

impl Input for Bf16 {
    #[inline(always)]
    unsafe fn load_one(p: *const u8) -> f32 {
        // SAFETY: caller.
        soft::bf16_bits_to_f32(unsafe { (p as *const u16).read() })
    }
}

impl Input for F16 {
    #[inline(always)]
    unsafe fn load_one(p: *const u8) -> f32 {
        // SAFETY: caller.
        f16_to_f32(unsafe { (p as *const u16).read() })
    }
}

impl Input for F32 {
    #[inline(always)]
    unsafe fn load_one(p: *const u8) -> f32 {
        // SAFETY: caller.
        unsafe { (p as *const f32).read() }
    }
}

macro_rules! amax_kernels {
    ($($name:ident, $t:ty;)*) => {$(
        /// `max |x|` into `*out` (atomic; `out` zeroed by the host first).
        ///
        /// # Safety
        /// Launch contract of `amax`.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: MxAmaxParams) {
            // SAFETY: launch contract.
            unsafe { amax::<$t>(&p) }
        }
    )*};
}

amax_kernels! {
    tensor_amax_bf16, Bf16;
    tensor_amax_f16, F16;
    tensor_amax_f32, F32;
}

/// `*g = nvfp4_global_scale(*amax)` (one thread; `amax` and `g` may be the same word).
///
/// # Safety
/// `amax` and `g` are valid, 4-byte aligned addresses.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn nvfp4_global_scale(p: MxGlobalScaleParams) {
    if block_idx_x() == 0 && thread_idx_x() == 0 {
        // SAFETY: launch contract; one thread reads then writes.
        unsafe {
            let a = f32::from_bits((p.amax as *const u32).read());
            (p.g as *mut f32).write(math::nvfp4_global_scale(a));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Swizzle and unswizzle

/// Linear `[rows, cols]` scale bytes → the swizzled layout, every byte of it (padding zero), one
/// 4-byte word per item.
///
/// # Safety
/// `linear` covers the matrix at `linear_stride`; `swizzled` is 4-byte aligned and holds
/// `pad128(rows) * pad4(cols)` bytes, disjoint from `linear`.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn swizzle_scales(p: MxSwizzleParams) {
    let cols = p.cols as u64;
    let col_tiles = cols.div_ceil(4);
    let words = math::swizzled_rows(p.rows) * col_tiles;
    let (i0, step) = grid_position();
    let mut i = i0 as u64;
    while i < words {
        let (row, c0) = math::swizzled_word_position(4 * i, col_tiles);
        let mut w = 0u32;
        if row < p.rows {
            for j in 0..4 {
                if c0 + j < cols {
                    // SAFETY: (row, c0 + j) is inside the linear matrix.
                    let b = unsafe { (p.linear as *const u8).add((row * p.linear_stride + c0 + j) as usize).read() };
                    w |= (b as u32) << (8 * j);
                }
            }
        }
        // SAFETY: word i < words, inside the swizzled buffer, aligned.
        unsafe { (p.swizzled as *mut u32).add(i as usize).write(w) };
        i += step as u64;
    }
}

/// The swizzled layout → linear `[rows, cols]` scale bytes (padding is not read), one 4-column
/// group per item.
///
/// # Safety
/// As `swizzle_scales`, with `linear` written.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn unswizzle_scales(p: MxSwizzleParams) {
    let cols = p.cols;
    let col_tiles = cols.div_ceil(4);
    if col_tiles == 0 {
        return;
    }
    let rows = p.rows as u32;
    let mut w = Walk::new(col_tiles);
    while w.row < rows {
        let c0 = 4 * w.col;
        // SAFETY: (row, c0..c0+4) is a word of the swizzled buffer (aligned); the bytes written
        // are inside the linear matrix.
        unsafe {
            let v = (p.swizzled as *const u32).add((math::swizzled_offset(w.row, c0, col_tiles) / 4) as usize).read();
            for j in 0..4 {
                if c0 + j < cols {
                    let o = w.row as u64 * p.linear_stride + (c0 + j) as u64;
                    (p.linear as *mut u8).add(o as usize).write((v >> (8 * j)) as u8);
                }
            }
        }
        w.advance();
    }
}
