//! Tensor maps (`cuTensorMapEncodeTiled`): validation and the simulator's own 128-byte encoding.
//!
//! A `CUtensorMap` is 128 opaque bytes that a kernel receives (as a parameter or in global
//! memory) and hands to `cp.async.bulk.tensor`. The driver's layout is undocumented; the simulator
//! writes its own: [`TensorMap::encode`] and [`TensorMap::decode`], with a magic tag and a
//! checksum so that bytes which are not a map written here are an error, not a wild copy.
//!
//! Encoding (little-endian):
//!
//! | bytes    | field                                                   |
//! |----------|---------------------------------------------------------|
//! | 0..8     | magic `LOWPTMAP`                                        |
//! | 8        | version (1)                                             |
//! | 9..15    | data type, rank, interleave, swizzle, L2 promotion, OOB fill (one byte each) |
//! | 15       | checksum: wrapping sum of every other byte              |
//! | 16..24   | global address                                          |
//! | 24..64   | global dims, 5 × u64                                    |
//! | 64..104  | global strides in bytes, 5 × u64 (`[0]` = element size) |
//! | 104..114 | box dims, 5 × u16                                       |
//! | 114..119 | element strides, 5 × u8                                 |
//! | 119..128 | zero                                                    |
//!
//! Unused dimensions (`i >= rank`) hold dim 1, box 1, element stride 1 and the stride of the
//! whole tensor, so code may iterate over 5 dimensions.

use crate::error::{Result, SimError};

/// `CUtensorMapDataType` values.
pub const DATA_TYPE_UINT8: u32 = 0;
pub const DATA_TYPE_UINT16: u32 = 1;
pub const DATA_TYPE_UINT32: u32 = 2;
pub const DATA_TYPE_INT32: u32 = 3;
pub const DATA_TYPE_UINT64: u32 = 4;
pub const DATA_TYPE_INT64: u32 = 5;
pub const DATA_TYPE_FLOAT16: u32 = 6;
pub const DATA_TYPE_FLOAT32: u32 = 7;
pub const DATA_TYPE_FLOAT64: u32 = 8;
pub const DATA_TYPE_BFLOAT16: u32 = 9;
pub const DATA_TYPE_FLOAT32_FTZ: u32 = 10;
pub const DATA_TYPE_TFLOAT32: u32 = 11;
pub const DATA_TYPE_TFLOAT32_FTZ: u32 = 12;

/// `CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA`: out-of-bounds elements read as NaN.
pub const OOB_FILL_NAN: u32 = 1;

const MAGIC: &[u8; 8] = b"LOWPTMAP";
const VERSION: u8 = 1;

/// Bytes of one element of `data_type` (a `CUtensorMapDataType`); `None` for the packed
/// sub-byte types (which the simulator does not support) and unknown values.
pub fn element_bytes(data_type: u32) -> Option<u64> {
    match data_type {
        DATA_TYPE_UINT8 => Some(1),
        DATA_TYPE_UINT16 | DATA_TYPE_FLOAT16 | DATA_TYPE_BFLOAT16 => Some(2),
        DATA_TYPE_UINT32
        | DATA_TYPE_INT32
        | DATA_TYPE_FLOAT32
        | DATA_TYPE_FLOAT32_FTZ
        | DATA_TYPE_TFLOAT32
        | DATA_TYPE_TFLOAT32_FTZ => Some(4),
        DATA_TYPE_UINT64 | DATA_TYPE_INT64 | DATA_TYPE_FLOAT64 => Some(8),
        _ => None,
    }
}

/// Whether `data_type` is a floating-point type (the only ones that may fill with NaN).
fn is_float(data_type: u32) -> bool {
    matches!(
        data_type,
        DATA_TYPE_FLOAT16
            | DATA_TYPE_FLOAT32
            | DATA_TYPE_FLOAT64
            | DATA_TYPE_BFLOAT16
            | DATA_TYPE_FLOAT32_FTZ
            | DATA_TYPE_TFLOAT32
            | DATA_TYPE_TFLOAT32_FTZ
    )
}

/// `CUtensorMapInterleave`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interleave {
    None = 0,
    B16 = 1,
    B32 = 2,
}

impl Interleave {
    pub fn from_raw(v: u32) -> Option<Interleave> {
        [Interleave::None, Interleave::B16, Interleave::B32].get(v as usize).copied()
    }
}

/// `CUtensorMapSwizzle`: how 16-byte (or larger) chunks of a box row are permuted in shared
/// memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swizzle {
    None = 0,
    /// 16-byte chunks within a 32-byte span.
    B32 = 1,
    /// 16-byte chunks within a 64-byte span.
    B64 = 2,
    /// 16-byte chunks within a 128-byte span.
    B128 = 3,
    /// 32-byte chunks within a 128-byte span.
    B128Atom32 = 4,
    /// 32-byte chunks within a 128-byte span, 8-byte halves swapped on alternate rows.
    B128Atom32Flip8 = 5,
    /// 64-byte chunks within a 128-byte span.
    B128Atom64 = 6,
}

impl Swizzle {
    pub fn from_raw(v: u32) -> Option<Swizzle> {
        use Swizzle::*;
        [None, B32, B64, B128, B128Atom32, B128Atom32Flip8, B128Atom64].get(v as usize).copied()
    }
    /// The swizzle span in bytes (0 for none): a box's inner dimension may not exceed it.
    pub fn span_bytes(self) -> u64 {
        match self {
            Swizzle::None => 0,
            Swizzle::B32 => 32,
            Swizzle::B64 => 64,
            _ => 128,
        }
    }
}

/// A tiled tensor map, decoded. Dimension 0 is the innermost (contiguous) one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorMap {
    /// `CUtensorMapDataType` value (see [`element_bytes`]).
    pub data_type: u32,
    /// 1 to 5.
    pub rank: u32,
    pub global_address: u64,
    /// Elements along each dimension.
    pub global_dim: [u64; 5],
    /// Bytes between consecutive elements along each dimension: `[0]` is the element size,
    /// `[1..rank]` are the strides the caller gave.
    pub global_strides: [u64; 5],
    /// Elements of the box (tile) along each dimension.
    pub box_dim: [u32; 5],
    /// Traversal step along each dimension (`[0]` ignored without interleave, as on the GPU).
    pub element_strides: [u32; 5],
    pub interleave: Interleave,
    pub swizzle: Swizzle,
    /// `CUtensorMapL2promotion` value (0..=3; no effect in the simulator).
    pub l2_promotion: u32,
    /// `CUtensorMapFloatOOBfill` value: 0 fills out-of-bounds elements with zeros,
    /// [`OOB_FILL_NAN`] with NaN.
    pub oob_fill: u32,
}

impl TensorMap {
    /// Validates the arguments of `cuTensorMapEncodeTiled` as the driver documents them and
    /// builds the map. `global_strides` has `rank - 1` entries (bytes), the others `rank`.
    #[allow(clippy::too_many_arguments)]
    pub fn tiled(
        data_type: u32,
        rank: u32,
        global_address: u64,
        global_dim: &[u64],
        global_strides: &[u64],
        box_dim: &[u32],
        element_strides: &[u32],
        interleave: u32,
        swizzle: u32,
        l2_promotion: u32,
        oob_fill: u32,
    ) -> Result<TensorMap> {
        let bad = |arg: &str, why: String| Err(SimError::invalid(format!("cuTensorMapEncodeTiled: {arg}: {why}")));
        let Some(elem) = element_bytes(data_type) else {
            return bad(
                "tensorDataType",
                format!("{data_type} is not a supported CUtensorMapDataType (packed sub-byte types are not simulated)"),
            );
        };
        if !(1..=5).contains(&rank) {
            return bad("tensorRank", format!("{rank} is not in 1..=5"));
        }
        let r = rank as usize;
        if global_dim.len() < r || global_strides.len() < r - 1 || box_dim.len() < r || element_strides.len() < r {
            return bad("globalDim/globalStrides/boxDim/elementStrides", "fewer entries than the rank".into());
        }
        let Some(il) = Interleave::from_raw(interleave) else {
            return bad("interleave", format!("{interleave} is not a CUtensorMapInterleave"));
        };
        let Some(sw) = Swizzle::from_raw(swizzle) else {
            return bad("swizzle", format!("{swizzle} is not a CUtensorMapSwizzle"));
        };
        if l2_promotion > 3 {
            return bad("l2Promotion", format!("{l2_promotion} is not a CUtensorMapL2promotion"));
        }
        if oob_fill > 1 {
            return bad("oobFill", format!("{oob_fill} is not a CUtensorMapFloatOOBfill"));
        }
        if oob_fill == OOB_FILL_NAN && !is_float(data_type) {
            return bad("oobFill", "NaN fill needs a floating-point tensorDataType".into());
        }
        if il != Interleave::None && rank < 3 {
            return bad("tensorRank", format!("{rank}: an interleaved layout needs rank 3 or more"));
        }
        let addr_align = if il == Interleave::B32 { 32 } else { 16 };
        if global_address % addr_align != 0 {
            return bad("globalAddress", format!("0x{global_address:x} is not {addr_align}-byte aligned"));
        }
        for (i, &d) in global_dim[..r].iter().enumerate() {
            if d == 0 || d > 1 << 32 {
                return bad("globalDim", format!("globalDim[{i}] = {d} is not in 1..=2^32"));
            }
        }
        let stride_align = if il == Interleave::B32 { 32 } else { 16 };
        for (i, &s) in global_strides[..r - 1].iter().enumerate() {
            if s % stride_align != 0 || s >= 1 << 40 {
                return bad(
                    "globalStrides",
                    format!("globalStrides[{i}] = {s} is not a multiple of {stride_align} below 2^40"),
                );
            }
        }
        for (i, &b) in box_dim[..r].iter().enumerate() {
            if b == 0 || b > 256 {
                return bad("boxDim", format!("boxDim[{i}] = {b} is not in 1..=256"));
            }
        }
        let inner_bytes = box_dim[0] as u64 * elem;
        if il == Interleave::None && inner_bytes % 16 != 0 {
            return bad("boxDim", format!("boxDim[0] × element size = {inner_bytes} bytes is not a multiple of 16"));
        }
        for (i, &e) in element_strides[..r].iter().enumerate() {
            if e == 0 || e > 8 {
                return bad("elementStrides", format!("elementStrides[{i}] = {e} is not in 1..=8"));
            }
        }
        if il == Interleave::B32 && sw != Swizzle::B32 {
            return bad("swizzle", "CU_TENSOR_MAP_INTERLEAVE_32B needs CU_TENSOR_MAP_SWIZZLE_32B".into());
        }
        if il == Interleave::None && sw != Swizzle::None && inner_bytes > sw.span_bytes() {
            return bad(
                "boxDim",
                format!(
                    "the box's inner dimension is {inner_bytes} bytes, more than the {}-byte swizzle span",
                    sw.span_bytes()
                ),
            );
        }
        let mut map = TensorMap {
            data_type,
            rank,
            global_address,
            global_dim: [1; 5],
            global_strides: [0; 5],
            box_dim: [1; 5],
            element_strides: [1; 5],
            interleave: il,
            swizzle: sw,
            l2_promotion,
            oob_fill,
        };
        map.global_dim[..r].copy_from_slice(&global_dim[..r]);
        map.global_strides[0] = elem;
        map.global_strides[1..r].copy_from_slice(&global_strides[..r - 1]);
        let whole = map.global_strides[r - 1].saturating_mul(map.global_dim[r - 1]);
        map.global_strides[r..].fill(whole);
        map.box_dim[..r].copy_from_slice(&box_dim[..r]);
        map.element_strides[..r].copy_from_slice(&element_strides[..r]);
        Ok(map)
    }

    /// Element size in bytes.
    pub fn element_bytes(&self) -> u64 {
        self.global_strides[0]
    }

    /// The map as 128 bytes (the layout is in the module documentation).
    pub fn encode(&self) -> [u8; 128] {
        let mut b = [0u8; 128];
        b[..8].copy_from_slice(MAGIC);
        b[8] = VERSION;
        b[9] = self.data_type as u8;
        b[10] = self.rank as u8;
        b[11] = self.interleave as u8;
        b[12] = self.swizzle as u8;
        b[13] = self.l2_promotion as u8;
        b[14] = self.oob_fill as u8;
        b[16..24].copy_from_slice(&self.global_address.to_le_bytes());
        for i in 0..5 {
            b[24 + 8 * i..32 + 8 * i].copy_from_slice(&self.global_dim[i].to_le_bytes());
            b[64 + 8 * i..72 + 8 * i].copy_from_slice(&self.global_strides[i].to_le_bytes());
            b[104 + 2 * i..106 + 2 * i].copy_from_slice(&(self.box_dim[i] as u16).to_le_bytes());
            b[114 + i] = self.element_strides[i] as u8;
        }
        b[15] = checksum(&b);
        b
    }

    /// Reads a map written by [`TensorMap::encode`]; anything else (a map from the real driver,
    /// uninitialised or corrupted bytes) is an error.
    pub fn decode(b: &[u8; 128]) -> Result<TensorMap> {
        let bad = |why: &str| Err(SimError::invalid(format!("tensor map: {why}")));
        if &b[..8] != MAGIC {
            return bad("not a tensor map encoded by cuTensorMapEncodeTiled (no magic tag)");
        }
        if b[8] != VERSION {
            return bad("unknown encoding version");
        }
        if b[15] != checksum(b) || b[119..].iter().any(|&x| x != 0) {
            return bad("the 128 bytes were modified after encoding (checksum mismatch)");
        }
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let (Some(interleave), Some(swizzle)) = (Interleave::from_raw(b[11] as u32), Swizzle::from_raw(b[12] as u32))
        else {
            return bad("bad interleave or swizzle");
        };
        let map = TensorMap {
            data_type: b[9] as u32,
            rank: b[10] as u32,
            global_address: u64_at(16),
            global_dim: std::array::from_fn(|i| u64_at(24 + 8 * i)),
            global_strides: std::array::from_fn(|i| u64_at(64 + 8 * i)),
            box_dim: std::array::from_fn(|i| u16::from_le_bytes([b[104 + 2 * i], b[105 + 2 * i]]) as u32),
            element_strides: std::array::from_fn(|i| b[114 + i] as u32),
            interleave,
            swizzle,
            l2_promotion: b[13] as u32,
            oob_fill: b[14] as u32,
        };
        if element_bytes(map.data_type) != Some(map.global_strides[0]) || !(1..=5).contains(&map.rank) {
            return bad("inconsistent fields");
        }
        Ok(map)
    }
}

/// Wrapping sum of every byte but the checksum byte (15).
fn checksum(b: &[u8; 128]) -> u8 {
    b.iter().enumerate().filter(|&(i, _)| i != 15).fold(0x5a, |s: u8, (_, &x)| s.wrapping_mul(31).wrapping_add(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_2d(inner: u32, swizzle: u32) -> Result<TensorMap> {
        TensorMap::tiled(DATA_TYPE_UINT8, 2, 0x1000, &[256, 64], &[256], &[inner, 32], &[1, 1], 0, swizzle, 3, 0)
    }

    #[test]
    fn round_trip() {
        let m = map_2d(128, Swizzle::B128 as u32).unwrap();
        assert_eq!(m.global_strides, [1, 256, 256 * 64, 256 * 64, 256 * 64]);
        assert_eq!(m.box_dim, [128, 32, 1, 1, 1]);
        assert_eq!(TensorMap::decode(&m.encode()).unwrap(), m);
        let m5 = TensorMap::tiled(
            DATA_TYPE_BFLOAT16,
            5,
            0x2000,
            &[8, 3, 4, 5, 6],
            &[16, 48, 192, 960],
            &[8, 2, 3, 4, 5],
            &[1, 2, 3, 4, 8],
            0,
            0,
            0,
            OOB_FILL_NAN,
        )
        .unwrap();
        assert_eq!(TensorMap::decode(&m5.encode()).unwrap(), m5);
    }

    #[test]
    fn decode_rejects_garbage() {
        assert!(TensorMap::decode(&[0u8; 128]).is_err());
        let mut b = map_2d(64, 0).unwrap().encode();
        b[30] ^= 1;
        assert!(TensorMap::decode(&b).unwrap_err().message.contains("checksum"));
    }

    #[test]
    fn validation() {
        let err = |r: Result<TensorMap>, arg: &str| {
            let e = r.unwrap_err();
            assert!(e.message.contains(arg), "{} should name {arg}", e.message);
        };
        // Inner box bytes over the swizzle span, and not a multiple of 16.
        err(map_2d(256, Swizzle::B128 as u32), "boxDim");
        err(map_2d(64, Swizzle::B32 as u32), "boxDim");
        err(map_2d(8, 0), "boxDim");
        assert!(map_2d(32, Swizzle::B32 as u32).is_ok());
        assert!(map_2d(256, 0).is_ok());
        let t = |addr, dims: &[u64], strides: &[u64], boxes: &[u32], es: &[u32], il, sw| {
            TensorMap::tiled(DATA_TYPE_UINT8, dims.len() as u32, addr, dims, strides, boxes, es, il, sw, 0, 0)
        };
        err(t(0x1008, &[64, 2], &[64], &[16, 1], &[1, 1], 0, 0), "globalAddress");
        err(t(0x1000, &[0, 2], &[64], &[16, 1], &[1, 1], 0, 0), "globalDim");
        err(t(0x1000, &[(1 << 32) + 1, 2], &[1 << 33], &[16, 1], &[1, 1], 0, 0), "globalDim");
        err(t(0x1000, &[64, 2], &[72], &[16, 1], &[1, 1], 0, 0), "globalStrides");
        err(t(0x1000, &[64, 2], &[1 << 40], &[16, 1], &[1, 1], 0, 0), "globalStrides");
        err(t(0x1000, &[64, 2], &[64], &[16, 257], &[1, 1], 0, 0), "boxDim");
        err(t(0x1000, &[64, 2], &[64], &[16, 1], &[1, 9], 0, 0), "elementStrides");
        err(t(0x1000, &[64, 2], &[64], &[16, 1], &[1, 0], 0, 0), "elementStrides");
        err(t(0x1000, &[64, 2], &[64], &[16, 1], &[1, 1], 0, 7), "swizzle");
        err(t(0x1000, &[64, 2], &[64], &[16, 1], &[1, 1], 3, 0), "interleave");
        err(t(0x1000, &[64, 2], &[64], &[16, 1], &[1, 1], 1, 0), "tensorRank");
        err(t(0x1000, &[], &[], &[], &[], 0, 0), "tensorRank");
        // Interleave 32B: 32-byte address and strides, 32B swizzle.
        err(t(0x1010, &[32, 2, 2], &[32, 64], &[32, 1, 1], &[1, 1, 1], 2, 1), "globalAddress");
        err(t(0x1000, &[32, 2, 2], &[48, 96], &[32, 1, 1], &[1, 1, 1], 2, 1), "globalStrides");
        err(t(0x1000, &[32, 2, 2], &[32, 64], &[32, 1, 1], &[1, 1, 1], 2, 0), "swizzle");
        assert!(t(0x1000, &[32, 2, 2], &[32, 64], &[32, 1, 1], &[1, 1, 1], 2, 1).is_ok());
        err(TensorMap::tiled(13, 1, 0x1000, &[128], &[], &[128], &[1], 0, 0, 0, 0), "tensorDataType");
        err(TensorMap::tiled(DATA_TYPE_UINT8, 1, 0x1000, &[128], &[], &[128], &[1], 0, 0, 0, OOB_FILL_NAN), "oobFill");
    }
}
