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
//! One block of `RMSNORM_THREADS` threads per row, grid-striding over rows. Vector path (host
//! checks: `hidden % 8 == 0`, 16-byte aligned rows and weight): each thread keeps its slice of
//! the row in registers as packed 16-bit values, `RMSNORM_VECS_PER_THREAD` 16-byte vectors at
//! most, so the row is read once and written once. Scalar path otherwise: two sweeps over the
//! row, the second re-reading what this same thread wrote.

use crate::abi::{RMSNORM_THREADS as THREADS, RMSNORM_VECS_PER_THREAD as VPT, RmsNormParams};
use crate::prim::block::block_sum_f32;
use crate::prim::convert::{Bf16, F16, Half, unpack_u16x2};
use crate::prim::mem::{Vec16, elem_ptr, ld_global_nc_v4, ld_global_v4, st_global_v4};
use crate::prim::{block_idx_x, dynamic_smem, grid_dim_x, thread_idx_x};

const VPT_U: usize = VPT as usize;
// `row_vectorized` unrolls over the vector slots by hand: keep it in step with the constant.
const _: () = assert!(VPT_U == 8);

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

/// One row, vector path.
///
/// # Safety
/// Called by every thread of the block; the row pointers are valid for `hidden` elements, 16-byte
/// aligned, `hidden % 8 == 0` and `hidden <= 8 * THREADS * VPT`; `smem` holds `THREADS / 32` f32.
#[inline(always)]
unsafe fn row_vectorized<T: Half, const ADD: bool>(
    p: &RmsNormParams,
    row: u64,
    smem: *mut f32,
) {
    let tid = thread_idx_x();
    let nvec = p.hidden / 8;
    let x = elem_ptr::<u16>(p.x, row, p.x_stride, 0) as *const Vec16;
    let res = elem_ptr::<u16>(p.residual, row, p.residual_stride, 0) as *mut Vec16;
    let out = elem_ptr::<u16>(p.out, row, p.out_stride, 0) as *mut Vec16;
    let w = p.weight as *const Vec16;

    // Issue every load of the row before the first use.
    let mut xv = [Vec16::default(); VPT_U];
    let mut rv = [Vec16::default(); VPT_U];
    crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7] {
        let v = tid + i as u32 * THREADS;
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
    let mut sum_sq = 0.0f32;
    crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7] {
        let v = tid + i as u32 * THREADS;
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
    // SAFETY: every thread of the block reaches this call (the branch above is per element,
    // the call is not under it); smem holds THREADS / 32 f32 (launch contract).
    let total = unsafe { block_sum_f32(sum_sq, smem, THREADS) };
    let inv = inv_rms(total, p.hidden, p.eps);
    crate::unroll!(i in [0, 1, 2, 3, 4, 5, 6, 7] {
        let v = tid + i as u32 * THREADS;
        if v < nvec {
            // SAFETY: weight has `hidden` elements, 16-byte aligned, read-only.
            let wv = unpack8::<T>(unsafe { ld_global_nc_v4(w.add(v as usize)) });
            let r = unpack8::<T>(rv[i]);
            let mut y = [0.0f32; 8];
            for j in 0..8 {
                y[j] = r[j] * inv * wv[j];
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

/// Kernel body shared by the four entry points.
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
                row_vectorized::<T, ADD>(p, row, smem);
            } else {
                row_scalar::<T, ADD>(p, row, smem);
            }
        }
        row += grid_dim_x() as u64;
    }
}

macro_rules! entries {
    ($($(#[$doc:meta])* $name:ident: $t:ty, $add:literal;)*) => {$(
        $(#[$doc])*
        ///
        /// # Safety
        /// Launch contract of `rmsnorm_kernel`.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: RmsNormParams) {
            unsafe { rmsnorm_kernel::<$t, $add>(&p) }
        }
    )*};
}

entries! {
    /// `y = rmsnorm(x) * w`, bf16.
    rmsnorm_bf16: Bf16, false;
    /// `y = rmsnorm(x) * w`, f16.
    rmsnorm_f16: F16, false;
    /// `residual += x; y = rmsnorm(residual) * w`, bf16.
    add_rmsnorm_bf16: Bf16, true;
    /// `residual += x; y = rmsnorm(residual) * w`, f16.
    add_rmsnorm_f16: F16, true;
}
