//! NVFP4 / MXFP4 / MXFP8 quantization with linear or 128×4-swizzled scale factors, grouped
//! (MoE) layouts, swizzle/unswizzle, dequantization and the tensor amax behind the NVFP4 global
//! scale.
//!
//! The per-block arithmetic is in `math` (no intrinsics; the host tests compile the same file and
//! compare it with the reference). This file moves the data:
//!
//! - one thread per scale block (16 or 32 elements), grid-striding over the `(row, block column)`
//!   items of the matrix; the thread loads its block with 16-byte loads (bf16/f16: 2 or 4, f32:
//!   4 or 8) when the host found every row 16-byte aligned (`MX_FLAG_VECTORIZED`), with scalar
//!   loads otherwise; a warp reads 32 consecutive blocks of a row, 1 to 4 KiB contiguous;
//! - codes go out in one 8-byte (NVFP4), 16-byte (MXFP4) or two 16-byte (MXFP8) stores per block,
//!   the scale byte at its linear or swizzled position;
//! - the swizzled layout's padding (columns past `K / block` up to a multiple of 4, rows past the
//!   last up to a multiple of 128) is written as zeros by the kernel: the thread of a row's last
//!   block zeroes the row's padding columns, and a second grid-stride loop the padding rows, as
//!   4-byte words;
//! - grouped launches first compute, in every CTA, the clamped group ends and the scale row offset
//!   of each group (two block-wide scans in shared memory), then look the group of each row up
//!   there. CTA 0 writes the offsets out.

pub mod math;

use crate::abi::{
    MX_FLAG_ROUND_UP, MX_FLAG_SWIZZLED, MX_FLAG_VECTORIZED, MX_THREADS as THREADS, MxAmaxParams, MxDequantizeParams,
    MxGlobalScaleParams, MxQuantizeParams, MxSwizzleParams,
};
use crate::prim::convert::{Bf16, F16, F32, Wide, f16_to_f32, f32_to_e4m3fn_sat, f32x2_to_bf16x2};
use crate::prim::mem::{Vec16, ld_global_nc_b64, ld_global_nc_v4, st_global_b64, st_global_v4};
use crate::prim::soft;
use crate::prim::warp::warp_reduce_f32;
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

/// Loads `N` (a multiple of 8) consecutive input elements as f32.
///
/// # Safety
/// `p` is valid for `N` elements of `T`, 16-byte aligned when `vector`, not written during the
/// kernel.
#[inline(always)]
unsafe fn load_block<T: Wide, const N: usize>(p: *const u8, vector: bool) -> [f32; N] {
    let mut x = [0.0f32; N];
    for i in 0..N / 8 {
        // SAFETY: elements 8i..8i+8 < N, inside the caller's range; 8 elements of T are 16 or 32
        // bytes, so the 16-byte alignment carries over.
        let v = unsafe { T::load8(p.add(8 * i * T::BYTES), vector) };
        for j in 0..8 {
            x[8 * i + j] = v[j];
        }
    }
    x
}

/// Stores `W` words (4·W bytes, little-endian): one 8-byte store for `W = 2`, 16-byte stores for
/// a multiple of 4, bytes when not `vector`.
///
/// # Safety
/// `p` is valid for `4 * W` bytes of writes, aligned to `min(4 * W, 16)` bytes when `vector`.
#[inline(always)]
unsafe fn store_words<const W: usize>(p: *mut u8, w: [u32; W], vector: bool) {
    if vector && W == 2 {
        // SAFETY: 8 bytes, 8-byte aligned (caller).
        unsafe { st_global_b64(p as *mut u64, w[0] as u64 | ((w[1] as u64) << 32)) };
    } else if vector && W % 4 == 0 {
        for i in 0..W / 4 {
            let v = Vec16([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]);
            // SAFETY: 16 bytes at 16·i < 4·W, 16-byte aligned (caller).
            unsafe { st_global_v4((p as *mut Vec16).add(i), v) };
        }
    } else {
        // W <= 8; constant word indices keep `w` in registers.
        crate::unroll!(k in [0, 1, 2, 3, 4, 5, 6, 7] {
            if k < W {
                for b in 0..4 {
                    // SAFETY: byte 4k + b < 4·W (caller).
                    unsafe { p.add(4 * k + b).write((w[k] >> (8 * b)) as u8) };
                }
            }
        });
    }
}

/// Loads `W` words (see `store_words`), read-only.
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

/// Builds the tables (every CTA; CTA 0 also writes `scale_offsets`).
///
/// # Safety
/// Called convergently by every thread of the block; launched with
/// `mx_grouped_smem_bytes(groups)` of dynamic shared memory; `group_ends` holds `groups` i32 and
/// `scale_offsets` `groups + 1`; `1 <= groups`, `rows <= i32::MAX`.
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
        for j in lo..hi {
            run = math::clamp_group_end(run, offs.add(j).read(), rows);
            ends.add(j).write_volatile(run);
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

/// The quantize kernels' body: `block` turns `N` inputs into (scale, `W` words of codes).
/// `VECTOR`: 16-byte loads and 8/16-byte stores (the host found every row aligned); a separate
/// instantiation, so the hot loop carries no predicated scalar path.
///
/// # Safety
/// Launched with `THREADS` threads per block (grouped: and `mx_grouped_smem_bytes(groups)` of
/// dynamic shared memory), with parameters validated by the host (`lowp::microscaling`): every
/// buffer covers its matrix, outputs overlap nothing, `VECTOR` only with the alignments it needs,
/// rows and block columns below 2^32, fewer than 2^32 swizzled tiles.
#[inline(always)]
unsafe fn quantize<T: Wide, const N: usize, const W: usize, const GROUPED: bool, const VECTOR: bool>(
    p: &MxQuantizeParams,
    block: impl Fn(&[f32; N]) -> (u8, [u32; W]),
) {
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
    if nb > 0 {
        let mut w = Walk::new(nb);
        let mut cursor = 0u32;
        while w.row < covered {
            let (row, col) = (w.row, w.col);
            // SAFETY (this block): (row, col) is a block of the [rows, K] input, of the codes and of
            // the scales (host-validated shapes); alignments per VECTOR.
            unsafe {
                let xo = (row as u64 * p.x_stride + col as u64 * N as u64) * T::BYTES as u64;
                let (s, codes) = block(&load_block::<T, N>((p.x as *const u8).add(xo as usize), VECTOR));
                let co = row as u64 * p.codes_stride + col as u64 * 4 * W as u64;
                store_words::<W>((p.codes as *mut u8).add(co as usize), codes, VECTOR);
                if swizzled {
                    let srow = match &groups {
                        Some(g) => g.scale_row(row, &mut cursor),
                        None => row,
                    };
                    scales.add(math::swizzled_offset(srow, col, col_tiles) as usize).write(s);
                    if col == nb - 1 {
                        for pc in nb..4 * col_tiles {
                            scales.add(math::swizzled_offset(srow, pc, col_tiles) as usize).write(0);
                        }
                    }
                } else {
                    scales.add((row as u64 * p.scale_stride + col as u64) as usize).write(s);
                }
            }
            w.advance();
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
        quantize_kernels!(@dispatch $p, $t, 16, 2, $grouped, move |x: &[f32; 16]| math::nvfp4_block::<DeviceFp8>(x, g))
    }};
    (@body mxfp4, $p:ident, $t:ty, $grouped:literal) => {{
        let up = $p.flags & MX_FLAG_ROUND_UP != 0;
        quantize_kernels!(@dispatch $p, $t, 32, 4, $grouped, move |x: &[f32; 32]| math::mxfp4_block(x, up))
    }};
    (@body mxfp8, $p:ident, $t:ty, $grouped:literal) => {{
        let up = $p.flags & MX_FLAG_ROUND_UP != 0;
        quantize_kernels!(@dispatch $p, $t, 32, 8, $grouped, move |x: &[f32; 32]| math::mxfp8_block::<DeviceFp8>(x, up))
    }};
    (@dispatch $p:ident, $t:ty, $n:literal, $w:literal, $grouped:literal, $block:expr) => {{
        let block = $block;
        // SAFETY: launch contract; the vector instantiation only where the host set the flag.
        unsafe {
            if $p.flags & MX_FLAG_VECTORIZED != 0 {
                quantize::<$t, $n, $w, $grouped, true>(&$p, block)
            } else {
                quantize::<$t, $n, $w, $grouped, false>(&$p, block)
            }
        }
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
        while w.row < rows {
            // SAFETY: 8 elements of row w.row inside the matrix; alignment per the flag.
            let v = unsafe { T::load8((p.x as *const u8).add(at(w.row, 8 * w.col) as usize), vector) };
            m = m.max(math::amax_bits(&v));
            w.advance();
        }
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

/// Input types with a one-element load besides `Wide::load8` (the amax of a matrix whose
/// columns are not a multiple of 8).
trait Input: Wide {
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
