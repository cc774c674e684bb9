//! The per-group arithmetic of the FP8 quantizers: pure f32 code with no intrinsics, compiled by
//! the device crate and by the host tests (`#[path]`), which compare it with the reference.
//!
//! For a group (1×128 of a token, or a 128×128 weight block) with `amax = max |x|`:
//! ```text
//! a     = max(amax, 1e-4)                  (NaN stays NaN; the floor keeps zero groups finite)
//! float recipe:  scale = a / 448,          mult = 448 / a
//! UE8M0 recipe:  scale = 2^⌈log2(a / 448)⌉, mult = 1 / scale   (exact: a power of two)
//! q     = e4m3_sat(x · mult)               (RNE, saturating at ±448, NaN → 0x7f)
//! x    ≈ q · scale
//! ```
//! as DeepGEMM's `per_token_cast_to_fp8` / `per_block_cast_to_fp8` (f32 ops in that order).

use super::soft::{f32_to_ue8m0_ceil, ue8m0_to_f32};

/// Largest finite E4M3FN value.
pub const E4M3_MAX: f32 = 448.0;
/// Smallest amax a scale is computed from.
pub const AMAX_FLOOR: f32 = 1e-4;

/// `(scale, mult)` of a group whose largest magnitude is `amax` (see the module doc).
#[inline(always)]
pub fn group_scale(amax: f32, ue8m0: bool) -> (f32, f32) {
    let a = if amax < AMAX_FLOOR { AMAX_FLOOR } else { amax }; // NaN compares false: kept
    if ue8m0 {
        let s = ue8m0_to_f32(f32_to_ue8m0_ceil(a / E4M3_MAX));
        (s, 1.0 / s)
    } else {
        (a / E4M3_MAX, E4M3_MAX / a)
    }
}
