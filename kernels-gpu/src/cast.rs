//! Element-wise casts from f32 to the storage formats, with the conversions of `prim::convert`.
//! They exist so the device conversions can be checked bit for bit against the host reference,
//! and for callers that need a plain cast (`lowp::cast`).
//!
//! One thread per element, grid-striding; FP4 writes one byte per two elements (element 2i in the
//! low nibble), so its kernel runs one thread per output byte.

use crate::abi::CastParams;
use crate::prim::convert::{
    f32_to_bf16, f32_to_e2m1_sat, f32_to_e4m3fn_sat, f32_to_e5m2_sat, f32_to_f16, f32_to_ue8m0_ceil, f32_to_ue8m0_floor,
};
use crate::prim::{block_dim_x, block_idx_x, grid_dim_x, thread_idx_x};

/// Runs `f(i)` for every `i < n` over the grid.
#[inline(always)]
fn grid_stride(n: u64, mut f: impl FnMut(usize)) {
    let mut i = block_idx_x() as u64 * block_dim_x() as u64 + thread_idx_x() as u64;
    let step = grid_dim_x() as u64 * block_dim_x() as u64;
    while i < n {
        f(i as usize);
        i += step;
    }
}

macro_rules! cast_kernel {
    ($(#[$doc:meta])* $name:ident, $out:ty, $conv:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// `src` holds `n` f32 and `dst` `n` outputs, valid device memory that does not overlap.
        #[unsafe(no_mangle)]
        pub unsafe extern "ptx-kernel" fn $name(p: CastParams) {
            let src = p.src as *const f32;
            let dst = p.dst as *mut $out;
            grid_stride(p.n, |i| {
                // SAFETY: i < n, inside both buffers (kernel contract).
                unsafe { *dst.add(i) = $conv(*src.add(i)) };
            });
        }
    };
}

cast_kernel!(/// f32 → bf16, RNE.
    cast_f32_to_bf16, u16, f32_to_bf16);
cast_kernel!(/// f32 → f16, RNE.
    cast_f32_to_f16, u16, f32_to_f16);
cast_kernel!(/// f32 → FP8 E4M3FN, RNE, saturating.
    cast_f32_to_e4m3fn, u8, f32_to_e4m3fn_sat);
cast_kernel!(/// f32 → FP8 E5M2, RNE, saturating.
    cast_f32_to_e5m2, u8, f32_to_e5m2_sat);
cast_kernel!(/// f32 → UE8M0 rounding down (2^⌊log2 x⌋).
    cast_f32_to_ue8m0_floor, u8, f32_to_ue8m0_floor);
cast_kernel!(/// f32 → UE8M0 rounding up (2^⌈log2 x⌉).
    cast_f32_to_ue8m0_ceil, u8, f32_to_ue8m0_ceil);

/// f32 → packed FP4 E2M1x2, RNE, saturating: `n` inputs (even), `n / 2` output bytes, element
/// `2i` in the low nibble.
///
/// # Safety
/// `src` holds `n` f32 and `dst` `n / 2` bytes, `n` even, valid and non-overlapping.
#[unsafe(no_mangle)]
pub unsafe extern "ptx-kernel" fn cast_f32_to_e2m1x2(p: CastParams) {
    let src = p.src as *const f32;
    let dst = p.dst as *mut u8;
    grid_stride(p.n / 2, |i| {
        // SAFETY: i < n / 2, so 2i + 1 < n and i is inside dst.
        unsafe {
            let lo = f32_to_e2m1_sat(*src.add(2 * i));
            let hi = f32_to_e2m1_sat(*src.add(2 * i + 1));
            *dst.add(i) = lo | (hi << 4);
        }
    });
}
