//! The kernel parameter structs, the very file the device crate compiles
//! (`kernels-gpu/src/abi/`), so host and device can never disagree on a layout.

#[path = "../kernels-gpu/src/abi/mod.rs"]
mod shared;
pub use shared::*;

/// Marks `repr(C)` parameter structs as passable to kernels. Each family's host module invokes it
/// for its own structs.
macro_rules! device_repr {
    ($($t:ty),* $(,)?) => {$(
        // SAFETY: a plain-old-data `repr(C)` struct of integers and floats from the shared ABI
        // files; the driver copies its bytes into the kernel's parameter space, and its size and
        // alignment are asserted there at compile time.
        unsafe impl cudarc::driver::DeviceRepr for $t {}
    )*};
}
#[allow(unused_imports)]
pub(crate) use device_repr;

device_repr!(RmsNormParams, CastParams);
