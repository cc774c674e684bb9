//! Kernel parameter structs, shared verbatim by the device crate and the host crate.
//!
//! The host includes this very file (`#[path]`), so a field added here changes both sides at once.
//! Kernels take one of these by value (`.param .align 8 .b8 p[N]` in PTX); cudarc pushes a pointer
//! to the host copy, and the driver copies `size_of::<T>()` bytes. Slices are never kernel
//! parameters: rustc would pass them as 16-byte aggregates. Device pointers travel as `u64`.
//! Sizes and alignments are asserted at compile time on both sides. One file per kernel family.

mod cast;
mod fp8;
mod gemm;
mod microscaling;
mod qk_norm_rope;
mod rmsnorm;

pub use cast::*;
pub use fp8::*;
pub use gemm::*;
#[allow(unused_imports)]
pub use microscaling::*;
#[allow(unused_imports)]
pub use qk_norm_rope::*;
pub use rmsnorm::*;
