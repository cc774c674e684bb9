//! Numeric conversions on the device: the PTX `cvt` where the target has one, the integer
//! software path of `soft` otherwise. Both give the same bits (the host tests check `soft` against
//! PyTorch/ml_dtypes; the GPU tests check the device casts against the host reference).
//!
//! | format  | to f32        | from f32 (RNE, satfinite)                        |
//! |---------|---------------|--------------------------------------------------|
//! | bf16    | shift         | `cvt.rn.bf16.f32` (sm_80)                        |
//! | f16     | `cvt.f32.f16` | `cvt.rn.f16.f32`                                 |
//! | e4m3fn  | soft          | `cvt.rn.satfinite.e4m3x2.f32` (sm_89+), else soft |
//! | e5m2    | soft          | `cvt.rn.satfinite.e5m2x2.f32` (sm_89+), else soft |
//! | e2m1    | soft          | soft (the native cvt needs sm_100a)              |
//! | ue8m0   | soft          | soft                                             |

use core::arch::asm;

pub use super::soft::{
    bf16_bits_to_f32 as bf16_to_f32, e2m1_to_f32, e4m3fn_to_f32, e5m2_to_f32, f32_to_e2m1_sat, f32_to_ue8m0_ceil,
    f32_to_ue8m0_floor, ue8m0_to_f32,
};

/// f32 → bf16 bits, round to nearest even.
#[inline(always)]
pub fn f32_to_bf16(x: f32) -> u16 {
    let out: u16;
    // SAFETY: pure register conversion (sm_80+, the oldest target lowp builds for).
    unsafe {
        asm!("cvt.rn.bf16.f32 {o}, {x};", o = out(reg16) out, x = in(reg32) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// Two f32 → packed bf16x2 (`lo` in bits 0..16, `hi` in 16..32), round to nearest even.
#[inline(always)]
pub fn f32x2_to_bf16x2(lo: f32, hi: f32) -> u32 {
    let out: u32;
    // SAFETY: pure register conversion; PTX packs its first source into the upper half.
    unsafe {
        asm!("cvt.rn.bf16x2.f32 {o}, {hi}, {lo};", o = out(reg32) out, hi = in(reg32) hi,
             lo = in(reg32) lo, options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// f16 bits → f32 (exact).
#[inline(always)]
pub fn f16_to_f32(h: u16) -> f32 {
    let out: f32;
    // SAFETY: pure register conversion.
    unsafe {
        asm!("cvt.f32.f16 {o}, {h};", o = out(reg32) out, h = in(reg16) h,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// f32 → f16 bits, round to nearest even (overflow gives ±Inf, as IEEE).
#[inline(always)]
pub fn f32_to_f16(x: f32) -> u16 {
    let out: u16;
    // SAFETY: pure register conversion.
    unsafe {
        asm!("cvt.rn.f16.f32 {o}, {x};", o = out(reg16) out, x = in(reg32) x,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// Two f32 → packed f16x2 (`lo` in bits 0..16), round to nearest even.
#[inline(always)]
pub fn f32x2_to_f16x2(lo: f32, hi: f32) -> u32 {
    let out: u32;
    // SAFETY: pure register conversion; PTX packs its first source into the upper half.
    unsafe {
        asm!("cvt.rn.f16x2.f32 {o}, {hi}, {lo};", o = out(reg32) out, hi = in(reg32) hi,
             lo = in(reg32) lo, options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// f32 → FP8 E4M3FN, RNE, saturating at ±448; NaN → 0x7f whatever its sign (as the `cvt`).
#[inline(always)]
pub fn f32_to_e4m3fn_sat(x: f32) -> u8 {
    #[cfg(target_feature = "sm_89")]
    {
        let out: u16;
        // SAFETY: pure register conversion, available from sm_89 (checked by the cfg).
        unsafe {
            asm!("cvt.rn.satfinite.e4m3x2.f32 {o}, 0f00000000, {x};", o = out(reg16) out,
                 x = in(reg32) x, options(pure, nomem, nostack, preserves_flags));
        }
        out as u8
    }
    #[cfg(not(target_feature = "sm_89"))]
    {
        super::soft::f32_to_e4m3fn_sat(x)
    }
}

/// Two f32 → packed FP8 E4M3FN (`lo` in bits 0..8, `hi` in 8..16), each as `f32_to_e4m3fn_sat`:
/// one `cvt` for both on sm_89+.
#[inline(always)]
pub fn f32x2_to_e4m3fn_sat(lo: f32, hi: f32) -> u16 {
    #[cfg(target_feature = "sm_89")]
    {
        let out: u16;
        // SAFETY: pure register conversion, available from sm_89 (checked by the cfg); PTX packs
        // its first source into the upper byte.
        unsafe {
            asm!("cvt.rn.satfinite.e4m3x2.f32 {o}, {hi}, {lo};", o = out(reg16) out, hi = in(reg32) hi,
                 lo = in(reg32) lo, options(pure, nomem, nostack, preserves_flags));
        }
        out
    }
    #[cfg(not(target_feature = "sm_89"))]
    {
        super::soft::f32_to_e4m3fn_sat(lo) as u16 | (super::soft::f32_to_e4m3fn_sat(hi) as u16) << 8
    }
}

/// f32 → FP8 E5M2, RNE, saturating at ±57344; NaN → 0x7f whatever its sign (as the `cvt`).
#[inline(always)]
pub fn f32_to_e5m2_sat(x: f32) -> u8 {
    #[cfg(target_feature = "sm_89")]
    {
        let out: u16;
        // SAFETY: pure register conversion, available from sm_89 (checked by the cfg).
        unsafe {
            asm!("cvt.rn.satfinite.e5m2x2.f32 {o}, 0f00000000, {x};", o = out(reg16) out,
                 x = in(reg32) x, options(pure, nomem, nostack, preserves_flags));
        }
        out as u8
    }
    #[cfg(not(target_feature = "sm_89"))]
    {
        super::soft::f32_to_e5m2_sat(x)
    }
}

/// The two 16-bit halves of a 32-bit word, low first.
#[inline(always)]
pub const fn unpack_u16x2(w: u32) -> (u16, u16) {
    (w as u16, (w >> 16) as u16)
}

/// A 16-bit storage float computed in f32: bf16 or f16. Kernels are generic over it and
/// monomorphized once per dtype (`_bf16`, `_f16` entry points).
pub trait Half: Copy {
    fn to_f32(bits: u16) -> f32;
    fn from_f32(x: f32) -> u16;
    /// Packs two f32 as `lo | hi << 16`, each rounded to nearest even.
    fn pack2(lo: f32, hi: f32) -> u32;
}

#[derive(Clone, Copy)]
pub struct Bf16;
#[derive(Clone, Copy)]
pub struct F16;

impl Half for Bf16 {
    #[inline(always)]
    fn to_f32(bits: u16) -> f32 {
        bf16_to_f32(bits)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> u16 {
        f32_to_bf16(x)
    }
    #[inline(always)]
    fn pack2(lo: f32, hi: f32) -> u32 {
        f32x2_to_bf16x2(lo, hi)
    }
}

impl Half for F16 {
    #[inline(always)]
    fn to_f32(bits: u16) -> f32 {
        f16_to_f32(bits)
    }
    #[inline(always)]
    fn from_f32(x: f32) -> u16 {
        f32_to_f16(x)
    }
    #[inline(always)]
    fn pack2(lo: f32, hi: f32) -> u32 {
        f32x2_to_f16x2(lo, hi)
    }
}

#[derive(Clone, Copy)]
pub struct F32;

/// A high-precision input type (bf16, f16, f32) read 8 elements at a time as f32, for kernels
/// generic over their input dtype.
pub trait Wide: Copy {
    /// Bytes per element.
    const BYTES: usize;
    /// Loads elements `p[0..8]` (read-only memory): one 16-byte access per 16 bytes when
    /// `vector`, scalar loads otherwise.
    ///
    /// # Safety
    /// `p` is a global address valid for 8 elements, 16-byte aligned when `vector`, and not
    /// written during the kernel.
    unsafe fn load8(p: *const u8, vector: bool) -> [f32; 8];
}

/// 8 16-bit floats of `T`, widened.
///
/// # Safety
/// As `Wide::load8`.
#[inline(always)]
unsafe fn load8_half<T: Half>(p: *const u8, vector: bool) -> [f32; 8] {
    let mut f = [0.0f32; 8];
    if vector {
        // SAFETY: 16-byte aligned and valid for 16 bytes (caller).
        let v = unsafe { super::mem::ld_global_nc_v4(p as *const super::mem::Vec16) };
        for i in 0..4 {
            let (lo, hi) = unpack_u16x2(v.0[i]);
            f[2 * i] = T::to_f32(lo);
            f[2 * i + 1] = T::to_f32(hi);
        }
    } else {
        for (i, x) in f.iter_mut().enumerate() {
            // SAFETY: i < 8 elements (caller).
            *x = T::to_f32(unsafe { (p as *const u16).add(i).read() });
        }
    }
    f
}

impl Wide for Bf16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8, vector: bool) -> [f32; 8] {
        // SAFETY: forwarded.
        unsafe { load8_half::<Bf16>(p, vector) }
    }
}

impl Wide for F16 {
    const BYTES: usize = 2;
    #[inline(always)]
    unsafe fn load8(p: *const u8, vector: bool) -> [f32; 8] {
        // SAFETY: forwarded.
        unsafe { load8_half::<F16>(p, vector) }
    }
}

impl Wide for F32 {
    const BYTES: usize = 4;
    #[inline(always)]
    unsafe fn load8(p: *const u8, vector: bool) -> [f32; 8] {
        let mut f = [0.0f32; 8];
        if vector {
            for h in 0..2 {
                // SAFETY: 16-byte aligned, valid for 32 bytes (caller).
                let v = unsafe { super::mem::ld_global_nc_v4((p as *const super::mem::Vec16).add(h)) };
                for i in 0..4 {
                    f[4 * h + i] = f32::from_bits(v.0[i]);
                }
            }
        } else {
            for (i, x) in f.iter_mut().enumerate() {
                // SAFETY: i < 8 elements (caller).
                *x = unsafe { (p as *const f32).add(i).read() };
            }
        }
        f
    }
}
