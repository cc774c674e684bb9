//! RMSNorm and fused residual-add + RMSNorm, bf16/f16 storage, f32 math.
//!
//! ```text
//! rmsnorm:      y[r, :] = x[r, :] / sqrt(mean(x[r, :]²) + eps) * w
//! add_rmsnorm:  residual[r, :] = round(residual[r, :] + x[r, :])        (written back)
//!               y[r, :] = residual[r, :] / sqrt(mean(residual[r, :]²) + eps) * w
//! ```
//! The statistics use the rounded residual, the value stored, so `add_rmsnorm` equals `rmsnorm`
//! of the stored residual. One rounding per output element (f32 math, RNE at the store).
//!
//! Vector paths (host checks: `hidden % 8 == 0`, 16-byte aligned rows and weight): the threads of
//! a row keep their slice of it in registers as packed 16-bit values, 16-byte vectors `t, t + n,
//! ...` for thread `t` of the `n` on the row, so the row is read once and written once; every
//! load of a row (x, residual, and the weight where it is not held) is issued before the first
//! use. Three kernels by hidden size, one set of entry points each:
//!
//! | entry points          | hidden          | threads per row | vectors per thread | weight            |
//! |-----------------------|-----------------|-----------------|--------------------|-------------------|
//! | `*_warp_{bf16,f16}`   | ≤ 2048          | 32 (a warp; 8 rows per CTA) | ≤ 8    | held across rows  |
//! | `*_v4_{bf16,f16}`     | ≤ 8192          | 256 (the CTA)   | ≤ 4                | held across rows  |
//! | `*_{bf16,f16}`        | ≤ 16384         | 256             | ≤ 8                | loaded per row    |
//!
//! The first two are persistent: the host launches as many CTAs as fit at once and each walks
//! rows with a grid stride. The last also runs the scalar path (any alignment, any hidden size):
//! two sweeps over the row, the second re-reading what this same thread wrote.

use crate::abi::{
    RMSNORM_ROWS_PER_WARP_CTA as WARP_ROWS, RMSNORM_THREADS as THREADS, RMSNORM_VECS_PER_THREAD as VPT, RmsNormParams,
};
use crate::prim::block::block_sum_f32;
use crate::prim::convert::{Bf16, F16, Half, unpack_u16x2};
use crate::prim::mem::{Vec16, elem_ptr, ld_global_nc_v4, ld_global_v4, st_global_v4};
use crate::prim::warp::warp_sum_f32;
use crate::prim::{block_idx_x, dynamic_smem, grid_dim_x, lane_id, opaque_u32x4, thread_idx_x, warp_id};

const VPT_U: usize = VPT as usize;
// The vector kernels unroll over at most 8 slots (`slots!`): keep it in step with the constant.
const _: () = assert!(VPT_U == 8);

/// Repeats `$body` for the vector slots `0..V` (`V` a const generic of at most 8), the slot
/// index bound as a `const usize` so the register arrays indexed by it stay in registers.
macro_rules! slots {
    ($v:ident, $i:ident $body:block) => {
        crate::unroll!($i in [0, 1, 2, 3, 4, 5, 6, 7] {
            if $i < $v $body
        })
    };
}

/// Eight 16-bit floats of a vector, widened to f32.
#[inline(always)]
fn unpack8<T: Half>(v: Vec16) -> [f32; 8] {
    let mut f = [0.0f32; 8];
    for i in 0..4 {
        let (lo, hi) = unpack_u16x2(v.0[i]);
        f[2 * i] = T::to_f32(lo);
        f[2 * i + 1] = T::to_f32(hi);
    }
    f
}

/// Eight f32, rounded to nearest even and packed into a vector.
#[inline(always)]
fn pack8<T: Half>(f: [f32; 8]) -> Vec16 {
    let mut v = Vec16::default();
    for i in 0..4 {
        v.0[i] = T::pack2(f[2 * i], f[2 * i + 1]);
    }
    v
}

/// `1 / sqrt(mean_sq + eps)` with IEEE-rounded sqrt and division (one row, cost negligible).
#[inline(always)]
fn inv_rms(sum_sq: f32, hidden: u32, eps: f32) -> f32 {
    let ms = sum_sq / hidden as f32 + eps;
    1.0 / crate::prim::sqrt_rn(ms)
}

/// The held weight, made opaque to the optimizer once per row (`prim::opaque_u32x4`), so that
/// its widening to f32 (one instruction per element) stays in the row loop instead of being
/// hoisted out of it, where the f32 copies would double the registers the weight takes.
#[inline(always)]
fn opaque<const V: usize>(mut v: [Vec16; V]) -> [Vec16; V] {
    slots!(V, i {
        v[i].0 = opaque_u32x4(v[i].0);
    });
    v
}

/// This thread's weight vectors `t, t + n, ...` (`V` slots; slots past the row stay zero).
///
/// # Safety
/// `weight` holds `hidden` elements, 16-byte aligned, `hidden % 8 == 0`; never written.
#[inline(always)]
unsafe fn load_weight<const V: usize>(p: &RmsNormParams, t: u32, n: u32) -> [Vec16; V] {
    let w = p.weight as *const Vec16;
    let nvec = p.hidden / 8;
    let mut wv = [Vec16::default(); V];
    slots!(V, i {
        let v = t + i as u32 * n;
        if v < nvec {
            // SAFETY: v < hidden / 8, inside the weight (caller).
            wv[i] = unsafe { ld_global_nc_v4(w.add(v as usize)) };
        }
    });
    wv
}

/// One row, vector path: thread `t` of the `n` threads on the row holds vectors `t + i·n` for
/// the `V` slots `i`. `held`: the weight, loaded by the caller, or `None` to load it here with
/// the row. `sum` totals a value over the row's threads (a block or a warp reduction).
///
/// # Safety
/// Every thread of the row calls it (the reduction is collective); the row pointers are valid
/// for `hidden` elements, 16-byte aligned, `hidden % 8 == 0` and `hidden <= 8 · n · V`.
#[inline(always)]
unsafe fn row_vec<T: Half, const ADD: bool, const V: usize>(
    p: &RmsNormParams,
    row: u64,
    t: u32,
    n: u32,
    held: Option<&[Vec16; V]>,
    sum: impl FnOnce(f32) -> f32,
) {
    let nvec = p.hidden / 8;
    let x = elem_ptr::<u16>(p.x, row, p.x_stride, 0) as *const Vec16;
    let res = elem_ptr::<u16>(p.residual, row, p.residual_stride, 0) as *mut Vec16;
    let out = elem_ptr::<u16>(p.out, row, p.out_stride, 0) as *mut Vec16;

    // Issue every load of the row before the first use.
    let mut xv = [Vec16::default(); V];
    let mut rv = [Vec16::default(); V];
    slots!(V, i {
        let v = t + i as u32 * n;
        if v < nvec {
            // SAFETY: v < hidden / 8, inside the row; alignment checked by the host; x is
            // never written by this kernel (the host forbids aliasing through &mut borrows).
            xv[i] = unsafe { ld_global_nc_v4(x.add(v as usize)) };
            if ADD {
                // SAFETY: as above; the residual is read and written by this thread alone.
                rv[i] = unsafe { ld_global_v4(res.add(v as usize)) };
            }
        }
    });
    let wv = match held {
        Some(w) => opaque(*w),
        // SAFETY: the weight is valid per the caller's contract; issued before any store.
        None => unsafe { load_weight::<V>(p, t, n) },
    };
    let mut sum_sq = 0.0f32;
    slots!(V, i {
        let v = t + i as u32 * n;
        if v < nvec {
            if ADD {
                let a = unpack8::<T>(rv[i]);
                let b = unpack8::<T>(xv[i]);
                let mut s = [0.0f32; 8];
                for j in 0..8 {
                    s[j] = a[j] + b[j];
                }
                rv[i] = pack8::<T>(s);
                // SAFETY: same element range this thread loaded above.
                unsafe { st_global_v4(res.add(v as usize), rv[i]) };
            } else {
                rv[i] = xv[i];
            }
            let r = unpack8::<T>(rv[i]);
            for j in 0..8 {
                sum_sq += r[j] * r[j];
            }
        }
    });
    let inv = inv_rms(sum(sum_sq), p.hidden, p.eps);
    slots!(V, i {
        let v = t + i as u32 * n;
        if v < nvec {
            let wf = unpack8::<T>(wv[i]);
            let r = unpack8::<T>(rv[i]);
            let mut y = [0.0f32; 8];
            for j in 0..8 {
                y[j] = r[j] * inv * wf[j];
            }
            // SAFETY: inside the output row, 16-byte aligned.
            unsafe { st_global_v4(out.add(v as usize), pack8::<T>(y)) };
        }
    });
}

/// One row, scalar path (any alignment, any hidden size).
///
/// # Safety
/// Called by every thread of the block; the row pointers are valid for `hidden` elements;
/// `smem` holds `THREADS / 32` f32.
#[inline(always)]
unsafe fn row_scalar<T: Half, const ADD: bool>(p: &RmsNormParams, row: u64, smem: *mut f32) {
    let tid = thread_idx_x();
    let x = elem_ptr::<u16>(p.x, row, p.x_stride, 0) as *const u16;
    let res = elem_ptr::<u16>(p.residual, row, p.residual_stride, 0);
    let out = elem_ptr::<u16>(p.out, row, p.out_stride, 0);
    let w = p.weight as *const u16;
    let src: *const u16 = if ADD { res } else { x };

    let mut sum_sq = 0.0f32;
    let mut c = tid;
    while c < p.hidden {
        // SAFETY: c < hidden, inside the row.
        let r = unsafe {
            if ADD {
                let s = T::from_f32(T::to_f32(*res.add(c as usize)) + T::to_f32(*x.add(c as usize)));
                *res.add(c as usize) = s;
                s
            } else {
                *x.add(c as usize)
            }
        };
        let f = T::to_f32(r);
        sum_sq += f * f;
        c += THREADS;
    }
    // SAFETY: reached by every thread of the block; smem per the launch contract.
    let total = unsafe { block_sum_f32(sum_sq, smem, THREADS) };
    let inv = inv_rms(total, p.hidden, p.eps);
    let mut c = tid;
    while c < p.hidden {
        // SAFETY: c < hidden; `src[c]` was written (ADD) by this same thread in the sweep above.
        unsafe {
            let r = T::to_f32(*src.add(c as usize));
            *out.add(c as usize) = T::from_f32(r * inv * T::to_f32(*w.add(c as usize)));
        }
        c += THREADS;
    }
}

/// The general kernel: one CTA per row (grid-striding past the grid), `VPT` vectors per thread
/// at most, or the scalar path.
///
/// # Safety
/// Launched with `THREADS` threads per block and `RMSNORM_SMEM_BYTES` of dynamic shared memory,
/// with parameters validated by the host (`lowp::rmsnorm`).
#[inline(always)]
unsafe fn rmsnorm_kernel<T: Half, const ADD: bool>(p: &RmsNormParams) {
    // SAFETY: the launch provides RMSNORM_SMEM_BYTES (one f32 per warp).
    let smem = unsafe { dynamic_smem::<f32>() };
    let mut row = block_idx_x() as u64;
    // The loop bound is uniform over the block, so the barriers inside stay convergent.
    while row < p.rows as u64 {
        // SAFETY: forwarded launch contract; the path was chosen by the host from alignment.
        unsafe {
            if p.vectorized != 0 {
                // SAFETY (closure): every thread of the block reduces (the call is not under a
                // per-thread branch); smem holds THREADS / 32 f32.
                row_vec::<T, ADD, VPT_U>(p, row, thread_idx_x(), THREADS, None, |s| block_sum_f32(s, smem, THREADS));
            } else {
                row_scalar::<T, ADD>(p, row, smem);
            }
        }
        row += grid_dim_x() as u64;
    }
}

/// Block per row, at most 4 vectors per thread (hidden ≤ 8192), the weight held in registers
/// across the rows a persistent CTA walks.
///
/// # Safety
/// As `rmsnorm_kernel`, vector path only (`hidden <= 8192`).
#[inline(always)]
unsafe fn rmsnorm_v4_kernel<T: Half, const ADD: bool>(p: &RmsNormParams) {
    // SAFETY: the launch provides RMSNORM_SMEM_BYTES (one f32 per warp).
    let smem = unsafe { dynamic_smem::<f32>() };
    let t = thread_idx_x();
    let mut row = block_idx_x() as u64;
    if row >= p.rows as u64 {
        return;
    }
    // SAFETY: launch contract (vector path).
    let w = unsafe { load_weight::<4>(p, t, THREADS) };
    // Uniform over the block: the barriers inside stay convergent.
    while row < p.rows as u64 {
        // SAFETY: forwarded launch contract; the reduction is reached by every thread.
        unsafe { row_vec::<T, ADD, 4>(p, row, t, THREADS, Some(&w), |s| block_sum_f32(s, smem, THREADS)) };
        row += grid_dim_x() as u64;
    }
}

/// A warp per row, `WARP_ROWS` rows per CTA (hidden ≤ 2048: 8 vectors per lane at most), the
/// reduction by shuffles, no barrier. Persistent: each warp walks rows with a grid stride,
/// holding its slice of the weight in registers.
///
/// # Safety
/// Launched with `THREADS` threads per block, parameters validated by the host, vector path
/// only (`hidden <= 2048`).
#[inline(always)]
unsafe fn rmsnorm_warp_kernel<T: Half, const ADD: bool>(p: &RmsNormParams) {
    let mut row = block_idx_x() as u64 * WARP_ROWS as u64 + warp_id() as u64;
    let step = grid_dim_x() as u64 * WARP_ROWS as u64;
    if row >= p.rows as u64 {
        return;
    }
    // SAFETY: launch contract (vector path).
    let w = unsafe { load_weight::<VPT_U>(p, lane_id(), 32) };
    // `row` is uniform over the warp: the shuffles see all 32 lanes.
    while row < p.rows as u64 {
        // SAFETY: forwarded launch contract; the reduction is reached by the whole warp.
        unsafe { row_vec::<T, ADD, VPT_U>(p, row, lane_id(), 32, Some(&w), |s| warp_sum_f32(s)) };
        row += step;
    }
}

macro_rules! entries {
    ($($(#[$doc:meta])* $name:ident: $kernel:ident, $t:ty, $add:literal;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("Launch contract of `", stringify!($kernel), "`.")]
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: RmsNormParams) {
            unsafe { $kernel::<$t, $add>(&p) }
        }
    )*};
}

entries! {
    /// `y = rmsnorm(x) * w`, bf16.
    rmsnorm_bf16: rmsnorm_kernel, Bf16, false;
    /// `y = rmsnorm(x) * w`, f16.
    rmsnorm_f16: rmsnorm_kernel, F16, false;
    /// `residual += x; y = rmsnorm(residual) * w`, bf16.
    add_rmsnorm_bf16: rmsnorm_kernel, Bf16, true;
    /// `residual += x; y = rmsnorm(residual) * w`, f16.
    add_rmsnorm_f16: rmsnorm_kernel, F16, true;
    /// `y = rmsnorm(x) * w`, bf16, hidden ≤ 8192.
    rmsnorm_v4_bf16: rmsnorm_v4_kernel, Bf16, false;
    /// `y = rmsnorm(x) * w`, f16, hidden ≤ 8192.
    rmsnorm_v4_f16: rmsnorm_v4_kernel, F16, false;
    /// `residual += x; y = rmsnorm(residual) * w`, bf16, hidden ≤ 8192.
    add_rmsnorm_v4_bf16: rmsnorm_v4_kernel, Bf16, true;
    /// `residual += x; y = rmsnorm(residual) * w`, f16, hidden ≤ 8192.
    add_rmsnorm_v4_f16: rmsnorm_v4_kernel, F16, true;
    /// `y = rmsnorm(x) * w`, bf16, hidden ≤ 2048, a warp per row.
    rmsnorm_warp_bf16: rmsnorm_warp_kernel, Bf16, false;
    /// `y = rmsnorm(x) * w`, f16, hidden ≤ 2048, a warp per row.
    rmsnorm_warp_f16: rmsnorm_warp_kernel, F16, false;
    /// `residual += x; y = rmsnorm(residual) * w`, bf16, hidden ≤ 2048, a warp per row.
    add_rmsnorm_warp_bf16: rmsnorm_warp_kernel, Bf16, true;
    /// `residual += x; y = rmsnorm(residual) * w`, f16, hidden ≤ 2048, a warp per row.
    add_rmsnorm_warp_f16: rmsnorm_warp_kernel, F16, true;
}
