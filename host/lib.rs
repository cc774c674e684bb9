//! # lowp
//!
//! Low-precision LLM inference kernels for NVIDIA GPUs, written in Rust: the device code
//! (`kernels-gpu/`, `#![no_std]`) is compiled to PTX at build time by rustc's NVPTX backend and
//! embedded here; this crate loads it through [`cudarc`]'s driver API and launches it with typed,
//! validated arguments.
//!
//! - Streams are explicit and nothing synchronizes behind your back (only [`Matrix::to_host`],
//!   [`Scales::to_host_raw`] and [`ErrorFlag::read`] wait, and say so).
//! - Bad shapes, strides, scale layouts, alignments and devices are typed [`Error`]s naming the
//!   argument; a wrong element type does not compile.
//! - No CUDA toolkit is needed to build, and no GPU to run the CPU tests: the driver is loaded at
//!   run time and its absence is [`Error::NoDriver`].
//!
//! ```
//! use half::bf16;
//! use lowp::{Lowp, Matrix};
//!
//! # fn main() -> lowp::Result<()> {
//! # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
//! let lowp = Lowp::new(0)?;                       // device 0; kernels load on first use
//! let stream = lowp.new_stream()?;
//! let (rows, hidden) = (4, 4096);
//! let host: Vec<bf16> = (0..rows * hidden).map(|i| bf16::from_f32((i % 7) as f32 - 3.0)).collect();
//! let x = Matrix::from_host(&stream, &host, rows, hidden)?;
//! let weight = stream.clone_htod(&vec![bf16::ONE; hidden])?; // cudarc errors convert with `?`
//! let mut out = Matrix::<bf16>::zeros(&stream, rows, hidden)?;
//! // every op: inputs (x, weight), then settings (eps), then outputs (out)
//! lowp::rmsnorm::rmsnorm(&lowp, &stream, &x, &weight, 1e-6, &mut out)?;
//! let out_host = out.to_host(&stream)?;          // waits for the stream (the ops only enqueue)
//! assert_eq!(out_host.len(), rows * hidden);
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

#[allow(dead_code)] // the device side uses every constant; the host some
mod abi;

pub mod cast;
mod context;
mod dtype;
mod error;
mod flag;
pub mod fp8;
pub mod gemm;
mod matrix;
pub mod microscaling;
mod ptx;
pub mod qk_norm_rope;
pub mod reference;
pub mod rmsnorm;
mod scale;
mod validate;

pub use context::{Lowp, device_count, driver_available};
pub use dtype::{DType, Element, F4E2M1x2, F8E4M3, F8E5M2, Float, Half, Ue8m0};
pub use error::{Error, Result};
pub use flag::ErrorFlag;
pub use matrix::{Matrix, MatrixBatch, Scales};
pub use ptx::Arch;
pub use scale::{ScaleLayout, ScaleRounding, m_major_ld};

#[cfg(test)]
#[path = "tests/modules.rs"]
mod module_tests;

/// The README's example, compiled as a doc-test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// Re-exported so callers use the same cudarc as lowp.
pub use cudarc;
pub use float8;
pub use half;
