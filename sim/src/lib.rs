//! # lowp-sim
//!
//! A CPU simulator that runs PTX behind the CUDA driver API. Built as a shared library whose
//! SONAME is `libcuda.so`, it is what a driver-API client such as `cudarc` loads in place of the
//! NVIDIA driver: `cargo test` then runs every kernel on any machine, and checks what a GPU does
//! not (out-of-bounds and misaligned accesses, use after free, reads of bytes never written,
//! races between CTAs, and between the warps and lanes of a CTA in shared memory, barrier misuse),
//! each reported with the kernel, CTA, thread, PTX line and address.
//!
//! - [`Sim`] is the simulator as a Rust API: device memory, modules, launches.
//! - The `cu*` entry points (module `capi`) wrap one process-wide [`Sim`] with the driver's C ABI.
//! - [`install`] loads the shared library so that a later `dlopen("libcuda.so")` returns it.
//!
//! See `docs/simulator.md` in the repository for what it models and what it does not.

pub mod capi;
pub mod device;
pub mod error;
pub mod exec;
pub mod install;
pub mod ir;
pub mod mem;
pub mod num;
pub mod parse;
pub mod profile;
pub mod tma;

pub use device::{Config, Kernel, LaunchConfig, Sim};
pub use error::{ErrorKind, SimError};
pub use install::{Device, install, select_device};
pub use profile::LaunchStats;
