//! The public types of the microscaling ops besides the core's ([`Scales`](crate::Scales),
//! [`ScaleRounding`](crate::ScaleRounding)): the NVFP4 global scale and the scale element types.

use cudarc::driver::DevicePtr;

use crate::dtype::{Element, F8E4M3, Ue8m0};

/// One-byte scale elements: [`F8E4M3`] (NVFP4 block scales) and [`Ue8m0`] (MX block scales).
/// Sealed: the two types the kernels know.
pub trait ScaleElement: Element + sealed::Sealed {}
impl ScaleElement for F8E4M3 {}
impl ScaleElement for Ue8m0 {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::dtype::F8E4M3 {}
    impl Sealed for crate::dtype::Ue8m0 {}
}

/// The NVFP4 global encode scale `g`: a host value, or one f32 the kernel reads from device
/// memory (any buffer: a `CudaSlice<f32>`, a `CudaView`, a `CudaViewMut`, by reference).
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator");
/// use lowp::microscaling::{GlobalScale, nvfp4_global_scale_from_amax};
/// let lowp = lowp::Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let on_host = GlobalScale::Value(nvfp4_global_scale_from_amax(12.0)); // 448 · 6 / 12 = 224
/// let g_buf = stream.clone_htod(&[224.0f32])?;
/// let on_device = GlobalScale::Device(&g_buf);
/// assert!(matches!(on_host, GlobalScale::Value(224.0)));
/// assert!(matches!(on_device, GlobalScale::Device(_)));
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub enum GlobalScale<'a> {
    /// A host value: finite and > 0 (`InvalidValue { arg: "global_scale" }` otherwise).
    Value(f32),
    /// Exactly one f32 in device memory, read by the kernel when it runs (for example written by
    /// [`nvfp4_global_scale`](super::nvfp4_global_scale) earlier on the stream). A value that
    /// is not finite and > 0 is used as 1.
    Device(&'a dyn DevicePtr<f32>),
}

impl std::fmt::Debug for GlobalScale<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GlobalScale::Value(v) => f.debug_tuple("Value").field(v).finish(),
            GlobalScale::Device(b) => write!(f, "Device([f32; {}])", b.len()),
        }
    }
}
