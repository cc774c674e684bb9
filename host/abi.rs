//! The kernel parameter structs, the very file the device crate compiles
//! (`kernels-gpu/src/abi.rs`), so host and device can never disagree on a layout.

#[path = "../kernels-gpu/src/abi.rs"]
mod shared;
pub use shared::*;

// SAFETY: plain-old-data `repr(C)` structs of integers and floats; the driver copies their bytes
// into the kernel's parameter space, and their size and alignment are asserted in the shared file.
unsafe impl cudarc::driver::DeviceRepr for RmsNormParams {}
// SAFETY: as above.
unsafe impl cudarc::driver::DeviceRepr for CastParams {}
