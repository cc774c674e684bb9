//! Loading the simulator's shared library in place of the driver.
//!
//! The shared library `liblowp_sim.so` has the SONAME `libcuda.so`. Once it is loaded by its full
//! path (`RTLD_NOW | RTLD_GLOBAL`), the dynamic loader answers a later `dlopen("libcuda.so")`, the
//! first name cudarc tries, with it. **[`install`] or [`select_device`] must therefore run before
//! the process's first cudarc call** (cudarc loads the driver once, on its first call, and keeps
//! it).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where CUDA calls go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Device {
    /// The NVIDIA driver (`libcuda.so.1`).
    Gpu,
    /// The simulator, loaded from this path.
    Sim(PathBuf),
}

const RTLD_NOW: c_int = 2;
const RTLD_GLOBAL: c_int = 0x100;

unsafe extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    fn dlerror() -> *mut c_char;
}

/// `dlopen(name, RTLD_NOW | RTLD_GLOBAL)`; the handle is never closed.
fn open(name: &str) -> Result<*mut c_void, String> {
    let c = CString::new(name).map_err(|_| format!("{name}: a NUL in the path"))?;
    // SAFETY: a NUL-terminated path; dlopen has no other precondition.
    let handle = unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) };
    if handle.is_null() {
        // SAFETY: dlerror returns null or a NUL-terminated message owned by the loader, read at
        // once.
        let why = unsafe {
            let e = dlerror();
            if e.is_null() { "unknown error".to_string() } else { CStr::from_ptr(e).to_string_lossy().into_owned() }
        };
        return Err(format!("dlopen {name}: {why}"));
    }
    Ok(handle)
}

fn has_symbol(handle: *mut c_void, symbol: &CStr) -> bool {
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    !unsafe { dlsym(handle, symbol.as_ptr()) }.is_null()
}

const LIB_NAME: &str = "liblowp_sim.so";

/// Where to look for the shared library: `LOWP_SIM_LIB` if set; else next to the running
/// executable and in the `deps/` folders cargo uses (tests and benches run from
/// `target/<profile>/deps/`, examples from `target/<profile>/examples/`), then the `deps/` folder
/// of the build that compiled this crate (doc tests run from a temporary folder).
fn candidates() -> Result<Vec<PathBuf>, String> {
    if let Some(p) = std::env::var_os("LOWP_SIM_LIB").filter(|p| !p.is_empty()) {
        return Ok(vec![PathBuf::from(p)]);
    }
    let exe = std::env::current_exe().map_err(|e| format!("the running executable's path: {e}"))?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let mut dirs = vec![dir.to_path_buf(), dir.join("deps")];
    if let Some(up) = dir.parent() {
        dirs.push(up.join("deps"));
        dirs.push(up.to_path_buf());
    }
    if let Some(deps) = option_env!("LOWP_SIM_BUILD_DEPS") {
        dirs.push(PathBuf::from(deps));
    }
    Ok(dirs.into_iter().map(|d| d.join(LIB_NAME)).collect())
}

/// Finds and loads the simulator's shared library, once per process; returns its path.
pub fn install() -> Result<PathBuf, String> {
    static INSTALLED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let tried = candidates()?;
            let Some(path) = tried.iter().find(|p| p.is_file()) else {
                let list = tried.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
                return Err(format!(
                    "lowp-sim: {LIB_NAME} not found (looked at {list}); build it (`cargo build -p lowp-sim`) or set LOWP_SIM_LIB to its path"
                ));
            };
            let path = path.canonicalize().unwrap_or_else(|_| path.clone());
            let handle = open(&path.to_string_lossy()).map_err(|e| format!("lowp-sim: {e}"))?;
            if !has_symbol(handle, c"lowp_sim_version") || !has_symbol(handle, c"cuInit") {
                return Err(format!("lowp-sim: {} is not the simulator's library", path.display()));
            }
            Ok(path)
        })
        .clone()
}

/// Whether the NVIDIA driver loads: `libcuda.so.1` or `libcuda.so` that exports `cuInit` and is
/// not the simulator.
fn real_driver() -> Result<(), String> {
    let mut why = Vec::new();
    for name in ["libcuda.so.1", "libcuda.so"] {
        match open(name) {
            Ok(h) if has_symbol(h, c"lowp_sim_version") => why.push(format!("{name} is the simulator")),
            Ok(h) if has_symbol(h, c"cuInit") => return Ok(()),
            Ok(_) => why.push(format!("{name} does not export cuInit")),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

/// Chooses where CUDA calls go, from `LOWP_DEVICE`, once per process (later calls return the
/// same answer):
///
/// - `gpu`: the NVIDIA driver, which must load (else an error);
/// - `sim`: the simulator ([`install`]);
/// - unset or empty: the driver if it loads, else the simulator.
///
/// Must run before the process's first cudarc call (see the module documentation).
pub fn select_device() -> Result<Device, String> {
    static CHOSEN: OnceLock<Result<Device, String>> = OnceLock::new();
    CHOSEN
        .get_or_init(|| {
            let choice = std::env::var("LOWP_DEVICE").unwrap_or_default();
            match choice.trim() {
                "gpu" => {
                    real_driver().map(|()| Device::Gpu).map_err(|e| format!("LOWP_DEVICE=gpu but the NVIDIA driver does not load: {e}"))
                }
                "sim" => install().map(Device::Sim),
                "" => match real_driver() {
                    Ok(()) => Ok(Device::Gpu),
                    Err(_) => install().map(Device::Sim),
                },
                other => {
                    Err(format!("LOWP_DEVICE={other:?}: expected `gpu`, `sim` or nothing (the driver if present, else the simulator)"))
                }
            }
        })
        .clone()
}
