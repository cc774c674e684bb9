//! Parameters of `cast`.

/// Parameters of the element-wise casts (`cast_*`): `n` elements from `src` to `dst`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CastParams {
    pub src: u64,
    pub dst: u64,
    pub n: u64,
}
const _: () = assert!(core::mem::size_of::<CastParams>() == 24);
const _: () = assert!(core::mem::align_of::<CastParams>() == 8);

/// Threads per block of the cast kernels.
pub const CAST_THREADS: u32 = 256;
