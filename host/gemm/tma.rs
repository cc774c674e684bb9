//! Tensor maps for the tensor memory accelerator (TMA): `cuTensorMapEncodeTiled` through cudarc.
//!
//! A GEMM launch passes its maps by value, as its second kernel parameter
//! ([`GemmTensorMaps`](crate::abi::GemmTensorMaps), 128 bytes per map), and the kernel hands
//! the TMA the parameter's own address (the `__grid_constant__` form of CUDA C++). The maps are encoded on every call, on the
//! host; nothing is written to device memory for them, so nothing is kept between calls, and a
//! launch captured in a CUDA graph carries its maps in the graph's kernel node: each replay reads
//! the operands at the addresses the capture saw, whatever they hold then.

use cudarc::driver::sys;

use crate::error::{Error, Result};

/// An encoded `CUtensorMap` (128 opaque bytes).
pub(crate) type TensorMapBytes = [u8; 128];

/// The element type and shared-memory layout of a map's boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MapKind {
    /// Bytes (E4M3 or bf16 operands seen as bytes), 128-byte swizzle (the wgmma operand layout).
    U8Swizzle128,
    /// f32 (scales), no swizzle: a box row lands as it is in global memory.
    F32,
    /// bf16 (the GEMM's output, stored from shared memory), swizzled over a box row of this many
    /// bytes (32, 64 or 128).
    Bf16Swizzle(u32),
}

/// Encodes a 2-D row-major matrix `[rows, inner]` of `kind`'s elements (row stride `stride`
/// bytes) read in boxes of `box_rows × box_inner` elements; out-of-bounds elements read zeros.
///
/// The driver must be loaded (a `Lowp` exists).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_2d(
    arg: &'static str,
    kind: MapKind,
    addr: u64,
    inner: u64,
    rows: u64,
    stride: u64,
    box_inner: u32,
    box_rows: u32,
) -> Result<TensorMapBytes> {
    if addr % 16 != 0 {
        return Err(Error::Alignment { arg, required: 16, actual: addr });
    }
    if stride % 16 != 0 {
        return Err(Error::Alignment { arg, required: 16, actual: stride });
    }
    if stride >= TMA_MAX_STRIDE {
        return Err(Error::Shape {
            arg,
            expected: "a row stride below 2^40 bytes".into(),
            actual: format!("{stride} bytes"),
        });
    }
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let dims = [inner, rows];
    let strides = [stride];
    let boxes = [box_inner, box_rows];
    let elem_strides = [1u32, 1];
    let (data_type, swizzle) = match kind {
        MapKind::U8Swizzle128 => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
        ),
        MapKind::F32 => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
            sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_NONE,
        ),
        MapKind::Bf16Swizzle(span) => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            match span {
                32 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_32B,
                64 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_64B,
                _ => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
            },
        ),
    };
    // SAFETY: every pointer refers to a live local of the length the call reads (rank 2: two
    // dims, one stride, two box sizes, two element strides); the map is written, not read.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            data_type,
            2,
            addr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave_enum::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            sys::CUtensorMapL2promotion_enum::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill_enum::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    r.result().map_err(|source| Error::Cuda { op: "cuTensorMapEncodeTiled", source })?;
    let mut bytes = [0u8; 128];
    for (i, w) in map.opaque.iter().enumerate() {
        bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    Ok(bytes)
}

/// A 2-D matrix as a tensor map sees it (the arguments of [`encode_2d`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Map2d {
    pub arg: &'static str,
    pub kind: MapKind,
    pub addr: u64,
    /// Elements per row, rows, row stride in bytes.
    pub inner: u64,
    pub rows: u64,
    pub stride: u64,
    /// Box: elements per row, rows.
    pub box_inner: u32,
    pub box_rows: u32,
}

impl Map2d {
    pub(crate) fn encode(&self) -> Result<TensorMapBytes> {
        encode_2d(self.arg, self.kind, self.addr, self.inner, self.rows, self.stride, self.box_inner, self.box_rows)
    }
}

/// The TMA's bound on a global row stride: below 2^40 bytes.
pub(crate) const TMA_MAX_STRIDE: u64 = 1 << 40;
