//! The PTX modules built from `kernels-gpu` by `build.rs`, embedded in the library.

/// Hopper module: every kernel, compiled with `-C target-cpu=sm_90a`. Loads only on compute
/// capability 9.0 (H100, H200, GH200).
pub const SM_90A: &str = include_str!(concat!(env!("OUT_DIR"), "/sm_90a.ptx"));

/// Portable module: kernels that need no Hopper instruction, compiled with
/// `-C target-cpu=sm_80`; the driver JIT-compiles it for any GPU of compute capability >= 8.0.
pub const SM_80: &str = include_str!(concat!(env!("OUT_DIR"), "/sm_80.ptx"));

/// Which embedded module a context runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// `sm_90a`: all kernels, Hopper instructions included.
    Sm90a,
    /// `sm_80`: the portable kernels only.
    Sm80,
}

impl Arch {
    /// The module for a device of compute capability `major.minor`, or `None` below 8.0.
    pub fn for_compute_capability(major: i32, minor: i32) -> Option<Arch> {
        match (major, minor) {
            (9, 0) => Some(Arch::Sm90a),
            (m, _) if m >= 8 => Some(Arch::Sm80),
            _ => None,
        }
    }

    pub fn ptx(self) -> &'static str {
        match self {
            Arch::Sm90a => SM_90A,
            Arch::Sm80 => SM_80,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm90a => "sm_90a",
            Arch::Sm80 => "sm_80",
        }
    }
}

/// Kernel entry points of the portable module (also compiled into the sm_90a module), one list
/// per family, each kept next to its host wrappers.
pub const PORTABLE_FAMILIES: &[&[&str]] = &[
    crate::context::KERNELS,
    crate::rmsnorm::KERNELS,
    crate::cast::KERNELS,
    crate::fp8::KERNELS,
    crate::qk_norm_rope::KERNELS,
    crate::microscaling::KERNELS,
];

/// Kernels only the sm_90a module has (wgmma/TMA).
pub const HOPPER_FAMILIES: &[&[&str]] = &[crate::grouped_gemm::KERNELS];

/// Kernels that need more than the default 48 KiB of dynamic shared memory, and how much.
pub const LARGE_SMEM: &[(&str, u32)] = &[
    ("fp8_blockwise_gemm", crate::abi::GEMM_SMEM_BYTES),
    ("bf16_gemm", crate::abi::GEMM_SMEM_BYTES),
];

/// Grid-stride kernels, one list per family: (name, threads per block, dynamic shared memory in
/// bytes, the most a launch asks for). The handle asks the driver, when it loads the module, how
/// many CTAs of each fit on one SM with these resources and the registers the kernel really
/// uses (`Lowp::resident_ctas`); their launches size the grid from that.
pub const GRID_STRIDE_FAMILIES: &[&[(&str, u32, u32)]] =
    &[crate::rmsnorm::GRID_STRIDE, crate::microscaling::GRID_STRIDE, crate::fp8::GRID_STRIDE];

/// Every portable kernel name.
pub fn portable_kernels() -> impl Iterator<Item = &'static str> {
    PORTABLE_FAMILIES.iter().flat_map(|f| f.iter().copied())
}

/// Every Hopper-only kernel name.
pub fn hopper_kernels() -> impl Iterator<Item = &'static str> {
    HOPPER_FAMILIES.iter().flat_map(|f| f.iter().copied())
}
