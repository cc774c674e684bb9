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

    /// The module's PTX text.
    pub fn ptx(self) -> &'static str {
        match self {
            Arch::Sm90a => SM_90A,
            Arch::Sm80 => SM_80,
        }
    }

    /// `"sm_90a"` or `"sm_80"`.
    pub fn name(self) -> &'static str {
        match self {
            Arch::Sm90a => "sm_90a",
            Arch::Sm80 => "sm_80",
        }
    }
}
