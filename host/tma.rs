//! Tensor maps for the tensor memory accelerator (TMA): `cuTensorMapEncodeTiled` through cudarc.

use cudarc::driver::sys;

use crate::error::{Error, Result};

/// An encoded `CUtensorMap` (128 opaque bytes; the kernels read it from global memory).
pub(crate) type TensorMapBytes = [u8; 128];

/// Encodes a 2-D row-major byte matrix `[rows, inner]` (row stride `stride` bytes) read in boxes
/// of `box_rows × box_inner` bytes with 128-byte swizzling; out-of-bounds boxes read zeros.
///
/// The driver must be loaded (a `Lowp` exists).
pub(crate) fn encode_2d_u8_sw128(arg: &'static str, addr: u64, inner: u64, rows: u64, stride: u64, box_inner: u32, box_rows: u32) -> Result<TensorMapBytes> {
    if addr % 16 != 0 {
        return Err(Error::Alignment { arg, required: 16, actual: addr });
    }
    if stride % 16 != 0 || stride >= 1 << 40 {
        return Err(Error::Alignment { arg, required: 16, actual: stride });
    }
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let dims = [inner, rows];
    let strides = [stride];
    let boxes = [box_inner, box_rows];
    let elem_strides = [1u32, 1];
    // SAFETY: every pointer refers to a live local of the length the call reads (rank 2: two
    // dims, one stride, two box sizes, two element strides); the map is written, not read.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            2,
            addr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave_enum::CU_TENSOR_MAP_INTERLEAVE_NONE,
            sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
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
