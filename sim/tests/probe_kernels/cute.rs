//! Hopper layouts transcribed from a second source: CUTLASS's `cute` definitions (and the PTX
//! ISA where noted). Only the *definitions* are taken — bit positions, layout shapes and
//! strides, swizzle parameters — and evaluated here by a small generic layout function, so that
//! the simulator (`sim/src/exec/hopper.rs`) can be checked against data it did not produce.
//!
//! Sources (NVIDIA/cutlass, `include/cute/`):
//! - `arch/mma_sm90_desc.hpp`, `union GmmaDescriptor` (its `bitfield` struct) and
//!   `enum class GMMA::LayoutType`;
//! - `swizzle.hpp`, `template <int BBits, int MBase, int SShift> struct Swizzle` (`yyy_msk`,
//!   `apply`);
//! - `atom/mma_traits_sm90_gmma.hpp`: `GMMA::CLayout_64x128` (the f32 accumulator layout of
//!   every `SM90_64x128x*_F32*` atom), `Layout_K_SW{32,64,128}_Atom_Bits` /
//!   `Layout_K_INTER_Atom_Bits`, and the canonical K-major layouts in the comment of
//!   `make_gmma_desc<Major::K>`;
//! - `atom/copy_traits_sm90_tma_swizzle.hpp`, `get_tma_swizzle_bits`: TMA's
//!   `CU_TENSOR_MAP_SWIZZLE_{32,64,128}B` are `Swizzle<1,4,3>`, `Swizzle<2,4,3>`,
//!   `Swizzle<3,4,3>`.

/// One field of `GmmaDescriptor::bitfield`: (name, lowest bit, width).
///
/// `uint16_t start_address_ : 14, : 2;` bits [0,14); `uint16_t leading_byte_offset_ : 14, : 2;`
/// bits [16,30); `uint16_t stride_byte_offset_ : 14, : 2;` bits [32,46);
/// `uint8_t : 1, base_offset_ : 3, : 4;` bits [49,52); `uint8_t : 6, layout_type_ : 2;` bits
/// [62,64). The three byte quantities are stored without their 4 low bits.
pub const GMMA_DESC_FIELDS: [(&str, u32, u32); 5] = [
    ("start_address", 0, 14),
    ("leading_byte_offset", 16, 14),
    ("stride_byte_offset", 32, 14),
    ("base_offset", 49, 3),
    ("layout_type", 62, 2),
];

/// `GMMA::LayoutType`: `INTERLEAVE = 0, B128 = 1, B64 = 2, B32 = 3`.
pub const LAYOUT_INTERLEAVE: u64 = 0;
pub const LAYOUT_B128: u64 = 1;
pub const LAYOUT_B64: u64 = 2;
pub const LAYOUT_B32: u64 = 3;

/// A `GmmaDescriptor` from its fields (byte quantities already shifted right by 4), placed at
/// the bit positions of [`GMMA_DESC_FIELDS`].
pub fn gmma_desc(
    start_address: u64,
    leading_byte_offset: u64,
    stride_byte_offset: u64,
    base_offset: u64,
    layout_type: u64,
) -> u64 {
    let values = [start_address, leading_byte_offset, stride_byte_offset, base_offset, layout_type];
    GMMA_DESC_FIELDS.iter().zip(values).fold(0, |d, (&(name, lo, width), v)| {
        assert!(v < 1 << width, "{name} = {v} does not fit {width} bits");
        d | v << lo
    })
}

/// `cute::Swizzle<BBits, MBase, SShift>::apply` for `SShift >= 0`:
/// `yyy_msk = ((1 << BBits) - 1) << (MBase + SShift)`, result `offset ^ ((offset & yyy_msk) >> SShift)`.
pub fn swizzle(b: u32, m: u32, s: u32, offset: u64) -> u64 {
    let yyy_msk = ((1u64 << b) - 1) << (m + s);
    offset ^ ((offset & yyy_msk) >> s)
}

/// The `Swizzle<B,4,3>` of a GMMA layout type / TMA swizzle span in bytes (0: none):
/// `Layout_K_SW32_Atom_Bits` uses `Swizzle<1,4,3>`, SW64 `Swizzle<2,4,3>`, SW128 `Swizzle<3,4,3>`,
/// `Layout_K_INTER_Atom_Bits` `Swizzle<0,4,3>` (the identity).
pub fn swizzle_bits_of_span(span_bytes: u64) -> u32 {
    match span_bytes {
        0 | 16 => 0,
        32 => 1,
        64 => 2,
        128 => 3,
        _ => panic!("no swizzle spans {span_bytes} bytes"),
    }
}

/// Evaluates a (flat) cute layout `Shape:Stride` at a linear index: the index is split
/// colexicographically over the shape (first mode fastest) and dotted with the strides.
pub fn layout(shape: &[u64], stride: &[u64], mut index: u64) -> u64 {
    let mut offset = 0;
    for (&n, &d) in shape.iter().zip(stride) {
        offset += (index % n) * d;
        index /= n;
    }
    assert_eq!(index, 0, "index outside the layout");
    offset
}

/// `GMMA::CLayout_64xN` (for `N` = 128: `CLayout_64x128`), a (thread, value) → (m, n) layout of
/// the 64×N accumulator tile, column-major (offset = m + 64·n):
///
/// `Layout<Shape <Shape <  _4,_8, _4>,Shape < _2,_2,Int<N/8>>>,`
/// `       Stride<Stride<_128,_1,_16>,Stride<_64,_8,  _512>>>`
///
/// Value `v` of thread `t` is the `v`-th accumulator register of the instruction's `d` list
/// (cute's `fma` passes the fragment in this order). Returns (row m, column n).
pub fn c_layout_64xn(n: u64, thread: u64, value: u64) -> (u64, u64) {
    assert!(thread < 128 && value < n / 2);
    let offset = layout(&[4, 8, 4], &[128, 1, 16], thread) + layout(&[2, 2, n / 8], &[64, 8, 512], value);
    (offset % 64, offset / 64)
}

/// Byte offset of byte `kbyte` of row `row` of a K-major GMMA operand tile, before the swizzle,
/// from the canonical K-major layouts in the comment of `make_gmma_desc<Major::K>` (units of
/// `uint128_t`, 16 bytes; `W` = 1, 2, 4, 8 for INTERLEAVE, B32, B64, B128):
///
/// - `INTERLEAVE : Swizzle<0,4,3> o smem_ptr o ((8,n),2):((1,SBO),LBO)`
/// - `B32        : Swizzle<1,4,3> o smem_ptr o ((8,n),2):((2,SBO),1)`
/// - `B64        : Swizzle<2,4,3> o smem_ptr o ((8,n),2):((4,SBO),1)`
/// - `B128       : Swizzle<3,4,3> o smem_ptr o ((8,n),2):((8,SBO),1)`
///
/// generalised from the two 16-byte units of one instruction's K to `span / 16` units (the
/// `Layout_K_SW*_Atom_Bits` row: 8 rows of 128, 256, 512, 1024 bits). `lbo` and `sbo` in bytes.
pub fn k_major_offset(layout_type: u64, row: u64, kbyte: u64, lbo: u64, sbo: u64) -> u64 {
    let w = match layout_type {
        LAYOUT_INTERLEAVE => 1,
        LAYOUT_B32 => 2,
        LAYOUT_B64 => 4,
        LAYOUT_B128 => 8,
        _ => unreachable!(),
    };
    let unit = kbyte / 16;
    let units = if layout_type == LAYOUT_INTERLEAVE {
        layout(&[8, 64], &[1, sbo / 16], row) + unit * (lbo / 16)
    } else {
        assert!(unit < w, "K byte {kbyte} beyond the {}-byte swizzle row", 16 * w);
        layout(&[8, 64], &[w, sbo / 16], row) + unit
    };
    16 * units + kbyte % 16
}

/// The shared address of byte `kbyte` of row `row` of a K-major operand whose descriptor has
/// start address `start` (bytes): the canonical layout at `start`, then the layout type's
/// `Swizzle<B,4,3>` on the address (`smem_ptr` swizzles the pointer itself, which is why the
/// tiles sit at 1024-byte boundaries).
pub fn k_major_addr(layout_type: u64, start: u64, row: u64, kbyte: u64, lbo: u64, sbo: u64) -> u64 {
    let b = match layout_type {
        LAYOUT_INTERLEAVE => 0,
        LAYOUT_B32 => 1,
        LAYOUT_B64 => 2,
        _ => 3,
    };
    swizzle(b, 4, 3, start + k_major_offset(layout_type, row, kbyte, lbo, sbo))
}

/// Bytes of an OCP FP8 E4M3 value 2^e (sign 0, 4 exponent bits with bias 7, 3 mantissa bits
/// zero), for the normal range −6 ≤ e ≤ 8.
pub fn e4m3_pow2(e: i32) -> u8 {
    assert!((-6..=8).contains(&e));
    ((e + 7) as u8) << 3
}

/// Bits of a bfloat16 value `mantissa · 2^e` (`mantissa` < 256, exact; the upper 16 bits of the
/// IEEE binary32 value).
pub fn bf16_of(mantissa: u32, e: i32) -> u16 {
    let v = mantissa as f32 * (e as f32).exp2();
    let bits = v.to_bits();
    assert_eq!(bits & 0xffff, 0, "{v} is not a bfloat16");
    (bits >> 16) as u16
}
