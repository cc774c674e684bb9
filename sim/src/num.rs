//! Bit-exact numerics of the PTX instructions: canonical NaNs, `min`/`max`, and every conversion
//! `cvt` performs. Values are raw bits; each function states the PTX ISA rule it follows.

use crate::ir::Rnd;

/// PTX's canonical f32 NaN.
pub const NAN_F32: u32 = 0x7fff_ffff;

pub fn canon_f32(bits: u32) -> u32 { todo!() }
pub fn canon_f64(bits: u64) -> u64 { todo!() }
pub fn min_f32(a: u32, b: u32) -> u32 { todo!() }
pub fn max_f32(a: u32, b: u32) -> u32 { todo!() }
pub fn min_f64(a: u64, b: u64) -> u64 { todo!() }
pub fn max_f64(a: u64, b: u64) -> u64 { todo!() }
pub fn f32_to_f16(x: u32, rnd: Rnd, sat: bool) -> u16 { todo!() }
pub fn f32_to_bf16(x: u32, rnd: Rnd, sat: bool) -> u16 { todo!() }
pub fn f16_to_f32(h: u16) -> u32 { todo!() }
pub fn bf16_to_f32(h: u16) -> u32 { todo!() }
pub fn f32_to_e4m3_satfinite(x: u32) -> u8 { todo!() }
pub fn f32_to_e5m2_satfinite(x: u32) -> u8 { todo!() }
pub fn e4m3_to_f16(x: u8) -> u16 { todo!() }
pub fn e5m2_to_f16(x: u8) -> u16 { todo!() }
pub fn f64_to_f32(x: u64, rnd: Rnd, sat: bool) -> u32 { todo!() }
pub fn f32_to_f64(x: u32) -> u64 { todo!() }
pub fn float_to_int(x: u64, from_f64: bool, rnd: Rnd, signed: bool, bits: u32) -> u64 { todo!() }
pub fn int_to_float(v: u64, signed: bool, bits: u32, to_f64: bool, rnd: Rnd) -> u64 { todo!() }
pub fn sat_f32(x: u32) -> u32 { todo!() }
pub fn sat_f64(x: u64) -> u64 { todo!() }
