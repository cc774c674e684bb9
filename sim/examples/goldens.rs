//! The hardware goldens probe: runs the probe kernels of `sim/tests/probe_kernels` (wgmma
//! fragment mappings, TMA swizzles with out-of-bounds boxes, mbarrier parity sequences, edge-value
//! conversions and arithmetic, a cluster's multicast and its distributed shared memory) through
//! the CUDA driver API and writes their raw outputs, one `<probe>.bin` file each, plus a
//! `MANIFEST` naming the device and each file's size and input fingerprint.
//!
//! ```text
//! cargo run --release -p lowp-sim --example goldens -- --out DIR
//! ```
//!
//! The device is chosen by `lowp_sim::select_device` (`LOWP_DEVICE=gpu|sim`; unset: the GPU if
//! the driver loads, else the simulator). On a Hopper GPU (sm_90a: the kernels use wgmma and
//! TMA), the outputs are the hardware goldens: write them with `--out tests/data/goldens` (from
//! the repository root) and commit them; `sim/tests/goldens.rs` then compares the simulator with
//! them bit for bit. The simulator refuses to write into a `tests/data/goldens` directory, so
//! that its own outputs never pose as hardware results.

#[path = "../tests/probe_kernels/mod.rs"]
mod probe_kernels;

use std::ffi::{CString, c_void};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use cudarc::driver::{result, sys};
use probe_kernels::{Gpu, MapSpec};

/// The probes' device through the driver API (the NVIDIA driver or the simulator's library).
struct CudaGpu;

fn cuda<T>(what: &str, r: Result<T, result::DriverError>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e:?}"))
}

impl CudaGpu {
    /// Initialises the driver and makes device 0's primary context current; returns the
    /// device's description for the manifest.
    fn new() -> Result<(CudaGpu, String), String> {
        cuda("cuInit", result::init())?;
        let dev = cuda("cuDeviceGet", result::device::get(0))?;
        // SAFETY: `dev` came from cuDeviceGet; the context stays retained for the process.
        unsafe {
            let ctx = cuda("cuDevicePrimaryCtxRetain", result::primary_ctx::retain(dev))?;
            cuda("cuCtxSetCurrent", result::ctx::set_current(ctx))?;
        }
        let name = cuda("cuDeviceGetName", result::device::get_name(dev))?;
        let attr = |a| {
            // SAFETY: a device from cuDeviceGet and a valid attribute.
            cuda("cuDeviceGetAttribute", unsafe { result::device::get_attribute(dev, a) })
        };
        let major = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
        let minor = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
        let mut version = 0;
        // SAFETY: a valid output slot.
        cuda("cuDriverGetVersion", unsafe { sys::cuDriverGetVersion(&mut version) }.result())?;
        Ok((CudaGpu, format!("device: {name}\ncompute-capability: {major}.{minor}\ndriver-version: {version}")))
    }
}

impl Gpu for CudaGpu {
    fn upload(&mut self, data: &[u8]) -> Result<u64, String> {
        // SAFETY: a fresh allocation of data.len() bytes (at least 1), filled from the slice.
        unsafe {
            let p = cuda("cuMemAlloc", result::malloc_sync(data.len().max(1)))?;
            cuda("cuMemcpyHtoD", result::memcpy_htod_sync(p, data))?;
            Ok(p)
        }
    }

    fn download(&mut self, ptr: u64, bytes: usize) -> Result<Vec<u8>, String> {
        let mut v = vec![0u8; bytes];
        // SAFETY: `ptr` is an allocation of at least `bytes` bytes made by `upload`.
        cuda("cuMemcpyDtoH", unsafe { result::memcpy_dtoh_sync(&mut v, ptr) })?;
        Ok(v)
    }

    fn launch(
        &mut self,
        ptx: &str,
        kernel: &str,
        grid: u32,
        block: u32,
        smem: u32,
        params: &[u64],
    ) -> Result<(), String> {
        let image = CString::new(ptx).map_err(|_| "a NUL in the PTX".to_string())?;
        let name = CString::new(kernel).map_err(|_| "a NUL in the kernel name".to_string())?;
        // SAFETY: a NUL-terminated PTX image; the function handle is used while its module is
        // loaded; one pointer per kernel parameter, each to a u64 (every probe parameter is 8
        // bytes); the launch completes (cuCtxSynchronize) before `params` is dropped.
        unsafe {
            let module = cuda("cuModuleLoadData", result::module::load_data(image.as_ptr() as *const c_void))?;
            let f = cuda("cuModuleGetFunction", result::module::get_function(module, name))?;
            if smem > 48 << 10 {
                let attr = sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES;
                cuda("cuFuncSetAttribute", result::function::set_function_attribute(f, attr, smem as i32))?;
            }
            let mut args: Vec<*mut c_void> = params.iter().map(|p| p as *const u64 as *mut c_void).collect();
            let launched = result::launch_kernel(f, (grid, 1, 1), (block, 1, 1), smem, std::ptr::null_mut(), &mut args);
            cuda(&format!("cuLaunchKernel({kernel})"), launched)?;
            cuda(&format!("{kernel}: cuCtxSynchronize"), result::ctx::synchronize())?;
            cuda("cuModuleUnload", result::module::unload(module))?;
        }
        Ok(())
    }

    fn tensor_map(&mut self, s: &MapSpec) -> Result<[u8; 128], String> {
        use sys::CUtensorMapSwizzle_enum as Sw;
        let data_type = match s.data_type {
            0 => sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            1 => sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_UINT16,
            t => return Err(format!("tensor map data type {t}")),
        };
        let swizzle = match s.swizzle {
            0 => Sw::CU_TENSOR_MAP_SWIZZLE_NONE,
            1 => Sw::CU_TENSOR_MAP_SWIZZLE_32B,
            2 => Sw::CU_TENSOR_MAP_SWIZZLE_64B,
            3 => Sw::CU_TENSOR_MAP_SWIZZLE_128B,
            w => return Err(format!("tensor map swizzle {w}")),
        };
        let mut map = sys::CUtensorMap { opaque: [0; 16] };
        let strides = [s.row_stride];
        let elem_strides = [1u32, 1];
        // SAFETY: every pointer refers to a live local of the length a rank-2 map reads (two
        // dims, one stride, two box sizes, two element strides); the map is written, not read.
        let r = unsafe {
            sys::cuTensorMapEncodeTiled(
                &mut map,
                data_type,
                2,
                s.addr as *mut c_void,
                s.dims.as_ptr(),
                strides.as_ptr(),
                s.box_dims.as_ptr(),
                elem_strides.as_ptr(),
                sys::CUtensorMapInterleave_enum::CU_TENSOR_MAP_INTERLEAVE_NONE,
                swizzle,
                sys::CUtensorMapL2promotion_enum::CU_TENSOR_MAP_L2_PROMOTION_NONE,
                sys::CUtensorMapFloatOOBfill_enum::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
            )
        };
        cuda("cuTensorMapEncodeTiled", r.result())?;
        let mut bytes = [0u8; 128];
        for (i, w) in map.opaque.iter().enumerate() {
            bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
        }
        Ok(bytes)
    }
}

const USAGE: &str = "usage: goldens --out DIR\n\
    Runs the probe kernels of sim/tests/probe_kernels on the device lowp_sim::select_device picks\n\
    (LOWP_DEVICE=gpu|sim) and writes DIR/<probe>.bin and DIR/MANIFEST.\n\
    On a Hopper GPU, from the repository root: LOWP_DEVICE=gpu goldens --out tests/data/goldens";

fn run() -> Result<bool, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match &args[..] {
        [flag, dir] if flag == "--out" => PathBuf::from(dir),
        _ => return Err(USAGE.to_string()),
    };
    // Before the first cudarc call: which library answers it.
    let device = lowp_sim::select_device()?;
    let source = match &device {
        lowp_sim::Device::Gpu => "hardware".to_string(),
        lowp_sim::Device::Sim(path) => {
            if is_goldens_dir(&out) {
                return Err(format!(
                    "{}: the simulator does not write hardware goldens (run on a GPU, or pick another directory)",
                    out.display()
                ));
            }
            format!("simulator ({})", path.display())
        }
    };
    let (mut gpu, description) = CudaGpu::new()?;
    println!("{description}\nsource: {source}");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let mut manifest = format!(
        "# Raw outputs of the probe kernels of sim/tests/probe_kernels, written by sim/examples/goldens.rs.\n\
         # <file> <bytes> <input fingerprint>\n{description}\nsource: {source}\n"
    );
    let mut all_ok = true;
    for (name, r) in probe_kernels::run_all(&mut gpu) {
        match r {
            Ok(p) => {
                let file = format!("{}.bin", p.name);
                std::fs::write(out.join(&file), &p.output)
                    .map_err(|e| format!("{}: {e}", out.join(&file).display()))?;
                manifest += &format!("{file} {} {:016x}\n", p.output.len(), p.fingerprint);
                println!("{file}: {} bytes", p.output.len());
            }
            Err(e) => {
                all_ok = false;
                eprintln!("{name}: FAILED: {e}");
            }
        }
    }
    std::fs::write(out.join("MANIFEST"), manifest).map_err(|e| format!("{}: {e}", out.join("MANIFEST").display()))?;
    println!("wrote {}", out.display());
    Ok(all_ok)
}

/// Whether `dir` is (or would be) a `tests/data/goldens` directory.
fn is_goldens_dir(dir: &Path) -> bool {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    abs.ends_with("tests/data/goldens")
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("some probes failed; the others' outputs were written");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}
