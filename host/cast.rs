//! Element-wise casts from f32 to lowp's storage formats on the device (device side:
//! `kernels-gpu/src/cast.rs`). Same rounding as `crate::reference::convert`: nearest-even,
//! saturating, NaN kept where the format has one (FP8: 0x7f whatever its sign).

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, LaunchConfig, PushKernelArg};

use crate::abi::{CAST_THREADS, CastParams};
use crate::context::Lowp;
use crate::dtype::{DType, Element};
use crate::error::{CudaResultExt, Error, Result};

/// Kernel entry points of this family (`kernels-gpu/src/cast.rs`).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "cast_f32_to_bf16",
    "cast_f32_to_f16",
    "cast_f32_to_e4m3fn",
    "cast_f32_to_e5m2",
    "cast_f32_to_e2m1x2",
    "cast_f32_to_ue8m0_floor",
    "cast_f32_to_ue8m0_ceil",
];

/// Rounding of an f32 → UE8M0 cast.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ue8m0Rounding {
    /// 2^⌊log2 x⌋.
    Floor,
    /// 2^⌈log2 x⌉.
    Ceil,
}

fn kernel_for(dst: DType, rounding: Ue8m0Rounding) -> &'static str {
    match dst {
        DType::Bf16 => "cast_f32_to_bf16",
        DType::F16 => "cast_f32_to_f16",
        DType::E4M3 => "cast_f32_to_e4m3fn",
        DType::E5M2 => "cast_f32_to_e5m2",
        DType::E2M1x2 => "cast_f32_to_e2m1x2",
        DType::Ue8m0 if rounding == Ue8m0Rounding::Floor => "cast_f32_to_ue8m0_floor",
        DType::Ue8m0 => "cast_f32_to_ue8m0_ceil",
        DType::F32 => "",
    }
}

/// Casts `src` (f32) into `dst` on `stream` (asynchronous). `dst` holds as many elements as `src`
/// (for packed FP4: half as many bytes, and `src.len()` even). `rounding` applies to UE8M0 only.
pub fn cast_f32<D, S, O>(lowp: &Lowp, stream: &Arc<CudaStream>, src: &S, dst: &mut O, rounding: Ue8m0Rounding) -> Result<()>
where
    D: Element,
    S: DevicePtr<f32>,
    O: DevicePtrMut<D>,
{
    lowp.check_stream(stream)?;
    lowp.check_buffer("src", src)?;
    lowp.check_buffer("dst", dst)?;
    let kernel = kernel_for(D::DTYPE, rounding);
    if kernel.is_empty() {
        return Err(Error::DType { arg: "dst", expected: DType::Bf16, actual: D::DTYPE });
    }
    let n = src.len();
    let per = D::DTYPE.elems_per_unit();
    if n % per != 0 {
        return Err(Error::Shape { arg: "src", expected: format!("a multiple of {per} elements for {}", D::DTYPE), actual: n.to_string() });
    }
    if dst.len() != n / per {
        return Err(Error::Shape {
            arg: "dst",
            expected: format!("{} elements of {} for {n} inputs", n / per, D::DTYPE),
            actual: dst.len().to_string(),
        });
    }
    let f = lowp.function("cast_f32", kernel, "compute capability 8.0")?;
    if n == 0 {
        return Ok(());
    }
    let (s, _gs) = src.device_ptr(stream);
    let (d, _gd) = dst.device_ptr_mut(stream);
    let p = CastParams { src: s, dst: d, n: n as u64 };
    let threads_needed = (n / per).div_ceil(CAST_THREADS as usize);
    let cfg = LaunchConfig {
        grid_dim: (threads_needed.min(65_535 * 4) as u32, 1, 1),
        block_dim: (CAST_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut b = stream.launch_builder(&f);
    b.arg(&p);
    // SAFETY: src holds n f32 and dst n / per units (checked above), both on this context; the
    // kernel grid-strides over exactly that many.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    Ok(())
}
