//! lowp device kernels.
//!
//! `#![no_std]` Rust for `nvptx64-nvidia-cuda`, built to PTX by lowp's `build.rs` twice: once with
//! `-C target-cpu=sm_90a` (Hopper: every kernel, wgmma/TMA ones included) and once with
//! `-C target-cpu=sm_80` (the portable module: kernels that need no Hopper instruction).
//!
//! Layout: `prim` holds the small device primitives (indices, barriers, shared memory, warp and
//! block reductions, vector memory access, numeric conversions), with every piece of inline PTX in
//! one place; each kernel family has one module named like its host counterpart (`rmsnorm`, ...).
//! `abi` holds the `repr(C)` parameter structs, shared verbatim with the host crate.
#![no_std]
#![feature(abi_ptx, stdarch_nvptx, asm_experimental_arch, core_intrinsics, gpu_intrinsics)]
#![feature(gpu_launch_sized_workgroup_mem, core_float_math)]
#![allow(internal_features)]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod abi;
pub mod prim;

pub mod cast;
pub mod fp8;
#[cfg(target_feature = "sm_90a")]
pub mod gemm;
pub mod microscaling;
pub mod qk_norm_rope;
pub mod rmsnorm;

/// A device panic (an out-of-bounds index, an overflow check) aborts the kernel with `trap`: the
/// launch fails with `CUDA_ERROR_LAUNCH_FAILED` / illegal instruction, never hangs.
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    prim::trap()
}

/// Does nothing: the host launches it to measure launch latency next to small kernels.
#[unsafe(no_mangle)]
pub extern "ptx-kernel" fn lowp_empty() {}
