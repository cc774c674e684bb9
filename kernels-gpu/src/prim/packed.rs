//! Inputs held as loaded, and their largest magnitude (`amax`) computed on packed 16-bit pairs.
//!
//! A kernel generic over its input dtype holds 8 consecutive elements (`Held::Raw`): bf16 and
//! f16 as the four 32-bit words of one 16-byte load (element `2i` in the low half of word `i`),
//! f32 as eight values. It widens them to f32 where it computes on them (`Held::widen`).
//!
//! The amax of bf16 and f16 is computed on the packed pairs, not on the widened values:
//! `and.b32 w, 0x7fff7fff` clears both halves' signs, and `max.NaN.bf16x2` / `max.NaN.f16x2`
//! (sm_80+) keeps the larger magnitude of each half, so 4 ANDs and 3 packed maxima reduce 8
//! values to one pair, which is folded and widened once. The `.NaN` form returns the canonical
//! NaN (0x7fff) for a half where either operand is NaN, so a NaN anywhere survives the reduction
//! (plain `max` would return the other operand and drop it). Without `.NaN`, ±0 would also
//! matter; here every operand is non-negative (sign cleared), and for non-negative non-NaN
//! values the packed max is exact (subnormals included: no `.ftz`). f32 takes the integer max of
//! the bits with the sign cleared: non-negative floats order like their bits, and every NaN lies
//! above +Inf.
//!
//! What the amax functions return is the f32 bits of `max |x|`, exactly, when no element is NaN
//! (Inf included), and a NaN (bits above `0x7f80_0000`) when one is; which NaN is unspecified
//! (16-bit inputs give the widened canonical NaN, f32 the largest NaN payload).
//!
//! Two groups reduced over the same lanes share their shuffles: `Held::pair` puts both groups'
//! maxima in one `Pair` (one 32-bit word for 16-bit inputs: group A's magnitude in the low half,
//! B's in the high half), so each butterfly step is one shuffle and one packed max for both.

use core::arch::asm;

use super::convert::{Bf16, F16, F32, Half, Wide, unpack_u16x2};
use super::mem::{Vec16, ld_global_nc_v4};
use super::warp::shfl_xor_u32;

/// `|x|` of both 16-bit halves of `w` (bf16 or f16): clears the two sign bits; a NaN stays a
/// NaN.
#[inline(always)]
pub const fn abs_x2(w: u32) -> u32 {
    w & 0x7fff_7fff
}

/// `max.NaN.bf16x2`: per half, the larger of `a` and `b`, or the canonical NaN `0x7fff` when
/// either is NaN (+0 > −0; subnormals compared as values).
#[inline(always)]
pub fn max_nan_bf16x2(a: u32, b: u32) -> u32 {
    let out: u32;
    // SAFETY: pure register arithmetic, available from sm_80 (the oldest target lowp builds for).
    unsafe {
        asm!("max.NaN.bf16x2 {o}, {a}, {b};", o = out(reg32) out, a = in(reg32) a, b = in(reg32) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `max.NaN.f16x2`: per half, the larger of `a` and `b`, or the canonical NaN `0x7fff` when
/// either is NaN (+0 > −0; subnormals compared as values: no `.ftz`).
#[inline(always)]
pub fn max_nan_f16x2(a: u32, b: u32) -> u32 {
    let out: u32;
    // SAFETY: pure register arithmetic, available from sm_80 (the oldest target lowp builds for).
    unsafe {
        asm!("max.NaN.f16x2 {o}, {a}, {b};", o = out(reg32) out, a = in(reg32) a, b = in(reg32) b,
             options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// `prmt.b32 d, a, b, sel`: the bytes of `d` chosen from `b:a` (bytes 0..4 of `a`, 4..8 of
/// `b`) by the four selector nibbles of `SEL`.
#[inline(always)]
fn prmt<const SEL: u32>(a: u32, b: u32) -> u32 {
    let out: u32;
    // SAFETY: pure register arithmetic.
    unsafe {
        asm!("prmt.b32 {o}, {a}, {b}, {s};", o = out(reg32) out, a = in(reg32) a, b = in(reg32) b,
             s = const SEL, options(pure, nomem, nostack, preserves_flags));
    }
    out
}

/// A 16-bit float with a packed `max.NaN`.
pub trait HalfMax: Half {
    /// `max.NaN` on both halves.
    fn max_nan_x2(a: u32, b: u32) -> u32;
}

impl HalfMax for Bf16 {
    #[inline(always)]
    fn max_nan_x2(a: u32, b: u32) -> u32 {
        max_nan_bf16x2(a, b)
    }
}

impl HalfMax for F16 {
    #[inline(always)]
    fn max_nan_x2(a: u32, b: u32) -> u32 {
        max_nan_f16x2(a, b)
    }
}

/// Per half, the largest magnitude among the 4 words' halves (NaN: 0x7fff).
#[inline(always)]
pub fn amax_x2<T: HalfMax>(w: &[u32; 4]) -> u32 {
    let lo = T::max_nan_x2(abs_x2(w[0]), abs_x2(w[1]));
    let hi = T::max_nan_x2(abs_x2(w[2]), abs_x2(w[3]));
    T::max_nan_x2(lo, hi)
}

/// The f32 bits of the larger of the two non-negative halves of `p`.
#[inline(always)]
fn fold_x2<T: HalfMax>(p: u32) -> u32 {
    T::to_f32(T::max_nan_x2(p, p >> 16) as u16).to_bits()
}

/// The f32 bits of the two non-negative halves of `p` (low, high).
#[inline(always)]
fn widen_x2<T: Half>(p: u32) -> (u32, u32) {
    let (lo, hi) = unpack_u16x2(p);
    (T::to_f32(lo).to_bits(), T::to_f32(hi).to_bits())
}

/// An input dtype held as loaded, 8 elements at a time, with its amax (see the module docs).
pub trait Held: Wide {
    /// 8 elements as loaded.
    type Raw: Copy + Default;
    /// Two groups' partial amaxes, reduced together across lanes.
    type Pair: Copy;
    /// Loads 8 elements (as `Wide::load8`).
    ///
    /// # Safety
    /// As `Wide::load8`.
    unsafe fn load_raw(p: *const u8, vector: bool) -> Self::Raw;
    /// The 8 elements as f32 (exact).
    fn widen(r: Self::Raw) -> [f32; 8];
    /// `r` made opaque to the optimizer (`prim::opaque_u32x4` for the packed types), so a
    /// second widening is not merged with the first (which would keep the f32 values alive in
    /// between).
    fn opaque(r: Self::Raw) -> Self::Raw;
    /// The amax of the 8 elements as an accumulator (16-bit types: a packed pair, each half the
    /// amax of 4 of them; f32: the bits of the amax).
    fn amax8(r: &Self::Raw) -> u32;
    /// Two accumulators of the same group combined.
    fn amax_merge(a: u32, b: u32) -> u32;
    /// The f32 bits of an accumulator's amax.
    fn amax_bits(acc: u32) -> u32;
    /// The accumulators of groups A and B in one `Pair`.
    fn pair(a: u32, b: u32) -> Self::Pair;
    /// Two `Pair`s combined (group by group).
    fn pair_merge(p: Self::Pair, q: Self::Pair) -> Self::Pair;
    /// `__shfl_xor_sync(0xffffffff, p, lane_mask)`.
    ///
    /// # Safety
    /// All 32 lanes of the warp execute it convergently.
    unsafe fn pair_shfl_xor(p: Self::Pair, lane_mask: u32) -> Self::Pair;
    /// The f32 bits of groups A's and B's amaxes.
    fn pair_bits(p: Self::Pair) -> (u32, u32);
}

/// The 8 16-bit values at `p`, packed in pairs (element `2i` in the low half of word `i`).
///
/// # Safety
/// As `Wide::load8` for a 16-bit type.
#[inline(always)]
unsafe fn load_half_raw(p: *const u8, vector: bool) -> [u32; 4] {
    if vector {
        // SAFETY: 16-byte aligned and valid for 16 bytes (caller).
        unsafe { ld_global_nc_v4(p as *const Vec16) }.0
    } else {
        let mut w = [0u32; 4];
        for (i, v) in w.iter_mut().enumerate() {
            // SAFETY: elements 2i, 2i + 1 < 8 (caller).
            *v = unsafe {
                (p as *const u16).add(2 * i).read() as u32 | ((p as *const u16).add(2 * i + 1).read() as u32) << 16
            };
        }
        w
    }
}

/// Widens 8 packed 16-bit values of `T`.
#[inline(always)]
fn widen_half<T: Half>(w: [u32; 4]) -> [f32; 8] {
    let mut f = [0.0f32; 8];
    for i in 0..4 {
        let (lo, hi) = unpack_u16x2(w[i]);
        f[2 * i] = T::to_f32(lo);
        f[2 * i + 1] = T::to_f32(hi);
    }
    f
}

macro_rules! held_half {
    ($($t:ty),*) => {$(
        impl Held for $t {
            type Raw = [u32; 4];
            type Pair = u32;
            #[inline(always)]
            unsafe fn load_raw(p: *const u8, vector: bool) -> [u32; 4] {
                // SAFETY: forwarded.
                unsafe { load_half_raw(p, vector) }
            }
            #[inline(always)]
            fn widen(r: [u32; 4]) -> [f32; 8] {
                widen_half::<$t>(r)
            }
            #[inline(always)]
            fn opaque(r: [u32; 4]) -> [u32; 4] {
                super::opaque_u32x4(r)
            }
            #[inline(always)]
            fn amax8(r: &[u32; 4]) -> u32 {
                amax_x2::<$t>(r)
            }
            #[inline(always)]
            fn amax_merge(a: u32, b: u32) -> u32 {
                <$t as HalfMax>::max_nan_x2(a, b)
            }
            #[inline(always)]
            fn amax_bits(acc: u32) -> u32 {
                fold_x2::<$t>(acc)
            }
            /// Low half: the larger half of `a`; high half: the larger half of `b` (two byte
            /// permutes and one packed max).
            #[inline(always)]
            fn pair(a: u32, b: u32) -> u32 {
                <$t as HalfMax>::max_nan_x2(prmt::<0x5410>(a, b), prmt::<0x7632>(a, b))
            }
            #[inline(always)]
            fn pair_merge(p: u32, q: u32) -> u32 {
                <$t as HalfMax>::max_nan_x2(p, q)
            }
            #[inline(always)]
            unsafe fn pair_shfl_xor(p: u32, lane_mask: u32) -> u32 {
                // SAFETY: forwarded.
                unsafe { shfl_xor_u32(p, lane_mask) }
            }
            #[inline(always)]
            fn pair_bits(p: u32) -> (u32, u32) {
                widen_x2::<$t>(p)
            }
        }
    )*};
}
held_half!(Bf16, F16);

/// The bits of the larger of two non-negative f32 bit patterns (NaNs above +Inf).
#[inline(always)]
fn max_bits(a: u32, b: u32) -> u32 {
    if a > b { a } else { b }
}

impl Held for F32 {
    type Raw = [f32; 8];
    type Pair = (u32, u32);
    #[inline(always)]
    unsafe fn load_raw(p: *const u8, vector: bool) -> [f32; 8] {
        // SAFETY: forwarded.
        unsafe { F32::load8(p, vector) }
    }
    #[inline(always)]
    fn widen(r: [f32; 8]) -> [f32; 8] {
        r
    }
    #[inline(always)]
    fn opaque(r: [f32; 8]) -> [f32; 8] {
        r
    }
    #[inline(always)]
    fn amax8(r: &[f32; 8]) -> u32 {
        let mut m = 0u32;
        for v in r {
            m = max_bits(m, v.to_bits() & 0x7fff_ffff);
        }
        m
    }
    #[inline(always)]
    fn amax_merge(a: u32, b: u32) -> u32 {
        max_bits(a, b)
    }
    #[inline(always)]
    fn amax_bits(acc: u32) -> u32 {
        acc
    }
    #[inline(always)]
    fn pair(a: u32, b: u32) -> (u32, u32) {
        (a, b)
    }
    #[inline(always)]
    fn pair_merge(p: (u32, u32), q: (u32, u32)) -> (u32, u32) {
        (max_bits(p.0, q.0), max_bits(p.1, q.1))
    }
    #[inline(always)]
    unsafe fn pair_shfl_xor(p: (u32, u32), lane_mask: u32) -> (u32, u32) {
        // SAFETY: forwarded.
        unsafe { (shfl_xor_u32(p.0, lane_mask), shfl_xor_u32(p.1, lane_mask)) }
    }
    #[inline(always)]
    fn pair_bits(p: (u32, u32)) -> (u32, u32) {
        p
    }
}
