//! The lowp handle: one CUDA context, into which lowp's kernels are loaded as they are first used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::sys::{CUdevice_attribute, CUfunction_attribute, CUresult};
use cudarc::driver::{CudaContext, CudaFunction, CudaStream, DeviceSlice};
use cudarc::nvrtc::Ptx;

use crate::error::{CudaResultExt, Error, Result};
use crate::ptx::{Arch, KernelIndex};

/// Kernels of the handle itself (`kernels-gpu/src/lib.rs`).
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &["lowp_empty"];

/// Whether the CUDA driver library can be loaded on this machine. Checked once; lowp calls this
/// before touching cudarc, which would otherwise panic without a driver.
pub fn driver_available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(driver_library_present)
}

/// With the `dynamic-loading` feature (cudarc's too): cudarc's own check.
#[cfg(feature = "dynamic-loading")]
fn driver_library_present() -> bool {
    // SAFETY: only tries to dlopen the driver library by its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// With `dynamic-linking`: the driver library is linked, and the process could not have started
/// without it.
#[cfg(all(feature = "dynamic-linking", not(feature = "dynamic-loading")))]
fn driver_library_present() -> bool {
    true
}

/// With neither feature, cudarc links or loads the driver as another crate of the build chose:
/// where it is linked, `dlopen` finds the loaded library; where it is loaded, `dlopen` answers as
/// cudarc's loader will (the names it tries first).
#[cfg(all(unix, not(any(feature = "dynamic-loading", feature = "dynamic-linking"))))]
fn driver_library_present() -> bool {
    use std::ffi::{c_char, c_int, c_void};
    unsafe extern "C" {
        fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
    }
    const RTLD_LAZY: c_int = 1;
    [c"libcuda.so", c"libcuda.so.1"].iter().any(|name| {
        // SAFETY: a NUL-terminated name; the handle is kept (cudarc uses the library from then on).
        !unsafe { dlopen(name.as_ptr(), RTLD_LAZY) }.is_null()
    })
}

/// With neither feature off Unix: cudarc reports a missing driver itself on its first call.
#[cfg(all(not(unix), not(any(feature = "dynamic-loading", feature = "dynamic-linking"))))]
fn driver_library_present() -> bool {
    true
}

/// Number of CUDA devices; `Error::NoDriver` where there is no driver.
pub fn device_count() -> Result<usize> {
    if !driver_available() {
        return Err(Error::NoDriver);
    }
    Ok(CudaContext::device_count().op("cuDeviceGetCount")? as usize)
}

/// A CUDA context with lowp's kernels: each kernel is loaded into the context (and JIT-compiled
/// by the driver) on its first use, as a module of its own cut from the embedded module for the
/// device, and kept. The handle is cheap to clone (share one per context). Every operation takes
/// the stream it runs on explicitly and never synchronizes it.
#[derive(Clone)]
pub struct Lowp {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: Arc<CudaContext>,
    arch: Arch,
    device_name: String,
    compute_capability: (i32, i32),
    sm_count: u32,
    /// Kernels loaded by name on first use.
    functions: Mutex<HashMap<String, Loaded>>,
    /// CTAs per SM of each grid-stride kernel launched so far, from the driver's occupancy
    /// calculator (at least 1).
    occupancy: Mutex<HashMap<String, u32>>,
    /// Co-resident clusters of each clustered kernel launched so far, from the driver's
    /// occupancy calculator.
    clusters: Mutex<HashMap<String, u32>>,
}

/// A loaded kernel (which holds its module) and the dynamic shared memory it may use.
struct Loaded {
    f: CudaFunction,
    smem: u32,
}

/// The dynamic shared memory a kernel may use without saying so.
const DEFAULT_DYNAMIC_SMEM: u32 = 48 * 1024;

/// Lets `f` launch with up to `bytes` of dynamic shared memory.
fn allow_dynamic_smem(f: &CudaFunction, bytes: u32) -> Result<()> {
    f.set_attribute(CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes as i32)
        .op("cuFuncSetAttribute")
}

impl std::fmt::Debug for Lowp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lowp")
            .field("device", &self.inner.device_name)
            .field("ordinal", &self.inner.ctx.ordinal())
            .field("compute_capability", &self.inner.compute_capability)
            .field("module", &self.inner.arch.name())
            .finish()
    }
}

impl Lowp {
    /// Opens device `ordinal` (its primary context) for lowp's kernels (loaded on first use).
    ///
    /// Errors: `NoDriver` without a CUDA driver, `NoDevice` past the device count,
    /// `Unsupported` below compute capability 8.0. Loading a kernel can fail later, at its first
    /// use (or at [`load_kernels`](Self::load_kernels)): `Unsupported` where the driver cannot
    /// read the module's PTX version, `GraphCapture` where a driver before CUDA 12.3 refuses to
    /// load it while a stream captures, the driver's error otherwise.
    pub fn new(ordinal: usize) -> Result<Self> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(Error::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).op("cuCtxRetain (CudaContext::new)")?;
        Self::from_context(ctx)
    }

    /// Uses an existing context (one a framework already created) for lowp's kernels (loaded on
    /// first use).
    pub fn from_context(ctx: Arc<CudaContext>) -> Result<Self> {
        let compute_capability = ctx.compute_capability().op("cuDeviceGetAttribute")?;
        let device_name = ctx.name().op("cuDeviceGetName")?;
        let (major, minor) = compute_capability;
        let arch = Arch::for_compute_capability(major, minor).ok_or_else(|| Error::Unsupported {
            op: "lowp",
            device: device_name.clone(),
            compute_capability,
            needs: "compute capability 8.0 or newer (Ampere, Ada, Hopper, Blackwell)",
        })?;
        let sm_count =
            ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).op("cuDeviceGetAttribute")?;
        Ok(Lowp {
            inner: Arc::new(Inner {
                ctx,
                arch,
                device_name,
                compute_capability,
                sm_count: sm_count.max(1) as u32,
                functions: Mutex::new(HashMap::new()),
                occupancy: Mutex::new(HashMap::new()),
                clusters: Mutex::new(HashMap::new()),
            }),
        })
    }

    /// The CUDA context (cudarc's), for allocations and streams.
    pub fn context(&self) -> &Arc<CudaContext> {
        &self.inner.ctx
    }

    /// The device's default stream (cudarc's).
    pub fn default_stream(&self) -> Arc<CudaStream> {
        self.inner.ctx.default_stream()
    }

    /// A new non-blocking stream on this context.
    pub fn new_stream(&self) -> Result<Arc<CudaStream>> {
        self.inner.ctx.new_stream().op("cuStreamCreate")
    }

    /// Which embedded module runs here.
    pub fn arch(&self) -> Arch {
        self.inner.arch
    }

    /// The device's name, as the driver reports it.
    pub fn device_name(&self) -> &str {
        &self.inner.device_name
    }

    /// `(major, minor)` compute capability.
    pub fn compute_capability(&self) -> (i32, i32) {
        self.inner.compute_capability
    }

    /// Streaming multiprocessors of the device (persistent kernels launch one block per SM).
    pub fn sm_count(&self) -> u32 {
        self.inner.sm_count
    }

    /// The grid of a grid-stride launch of kernel `name` (`threads` per CTA, `smem` bytes of
    /// dynamic shared memory) over `items` units of work, `per_cta` units per CTA and turn:
    /// enough CTAs to cover the work, at most as many as are resident at once on the whole
    /// device (one wave: the occupancy calculator's CTAs per SM, asked on the kernel's first
    /// launch, times the SM count), at least one.
    pub(crate) fn grid_stride_grid(
        &self,
        name: &str,
        threads: u32,
        smem: u32,
        items: u64,
        per_cta: u64,
    ) -> Result<u32> {
        let per_sm = {
            let mut occupancy = self.inner.occupancy.lock().unwrap_or_else(|e| e.into_inner());
            match occupancy.get(name) {
                Some(&n) => n,
                None => {
                    let f = self.function("grid_stride_grid", name, "compute capability 8.0")?;
                    let n = f
                        .occupancy_max_active_blocks_per_multiprocessor(threads, smem as usize, None)
                        .op("cuOccupancyMaxActiveBlocksPerMultiprocessor")?
                        .max(1);
                    occupancy.insert(name.to_string(), n);
                    n
                }
            }
        };
        let resident = per_sm as u64 * self.inner.sm_count as u64;
        Ok(items.div_ceil(per_cta.max(1)).clamp(1, resident.min(i32::MAX as u64)) as u32)
    }

    /// How many clusters of kernel `name` can be resident at once: `query`'s answer (the
    /// driver's occupancy calculator), asked on the kernel's first launch and kept.
    pub(crate) fn cluster_capacity(&self, name: &str, query: impl FnOnce() -> Result<u32>) -> Result<u32> {
        if let Some(&n) = self.inner.clusters.lock().unwrap_or_else(|e| e.into_inner()).get(name) {
            return Ok(n);
        }
        let n = query()?;
        self.inner.clusters.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), n);
        Ok(n)
    }

    /// The device ordinal.
    pub fn ordinal(&self) -> usize {
        self.inner.ctx.ordinal()
    }

    /// Launches an empty kernel (one block of one thread) on `stream`: the floor against which
    /// small launches are compared.
    pub fn launch_empty(&self, stream: &Arc<CudaStream>) -> Result<()> {
        self.check_stream(stream)?;
        let f = self.function("launch_empty", "lowp_empty", "compute capability 8.0")?;
        let cfg = cudarc::driver::LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
        // SAFETY: the kernel takes no parameters and touches no memory.
        unsafe { stream.launch_builder(&f).launch(cfg) }.op("cuLaunchKernel")?;
        Ok(())
    }

    /// The kernel `name`, loaded on first use (its own module, cut from this device's embedded
    /// module: [`KernelIndex`]), or `Unsupported` if this device's module lacks it (a Hopper
    /// kernel on a non-Hopper GPU).
    pub(crate) fn function(&self, op: &'static str, name: &str, needs: &'static str) -> Result<CudaFunction> {
        self.function_with_smem(op, name, needs, 0)
    }

    /// [`function`](Self::function) for a kernel launched with `max_dynamic_smem` bytes of
    /// dynamic shared memory: above the default 48 KiB the kernel must say so, which is done once,
    /// when it is first asked for with that much.
    pub(crate) fn function_with_smem(
        &self,
        op: &'static str,
        name: &str,
        needs: &'static str,
        max_dynamic_smem: u32,
    ) -> Result<CudaFunction> {
        let allowed = |k: &mut Loaded| -> Result<CudaFunction> {
            if max_dynamic_smem > k.smem {
                allow_dynamic_smem(&k.f, max_dynamic_smem)?;
                k.smem = max_dynamic_smem;
            }
            Ok(k.f.clone())
        };
        if let Some(k) = self.inner.functions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(name) {
            return allowed(k);
        }
        // Loaded without the lock (the driver's JIT may take long; other kernels stay available);
        // of two threads loading the same kernel at once, the first to insert it is kept.
        let f = self.load(op, name, needs)?;
        let mut functions = self.inner.functions.lock().unwrap_or_else(|e| e.into_inner());
        let k = functions.entry(name.to_string()).or_insert(Loaded { f, smem: DEFAULT_DYNAMIC_SMEM });
        allowed(k)
    }

    /// `Error::Unsupported` for `op` on this device, which lacks what `needs` says.
    pub(crate) fn unsupported(&self, op: &'static str, needs: &'static str) -> Error {
        Error::Unsupported {
            op,
            device: self.inner.device_name.clone(),
            compute_capability: self.inner.compute_capability,
            needs,
        }
    }

    /// Loads kernel `name` as a module of its own, cut from this device's embedded module
    /// ([`KernelIndex`]); `Unsupported` if that module lacks it or the driver cannot read the
    /// module's PTX version, `GraphCapture` if the driver refuses to load a module while a stream
    /// captures (drivers before CUDA 12.3).
    fn load(&self, op: &'static str, name: &str, needs: &'static str) -> Result<CudaFunction> {
        let unsupported = |needs| self.unsupported(op, needs);
        let Some(ptx) = KernelIndex::of(self.inner.arch).module(name) else {
            return Err(unsupported(needs));
        };
        let module = match self.inner.ctx.load_module(Ptx::from_src(ptx)) {
            Ok(m) => m,
            Err(e) => {
                return Err(match e.0 {
                    CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION => unsupported(match self.inner.arch {
                        Arch::Sm90a => "a CUDA driver that reads PTX ISA 8.0 (CUDA 12.0 or newer)",
                        Arch::Sm80 => "a CUDA driver that reads PTX ISA 7.0 (CUDA 11.0 or newer)",
                    }),
                    CUresult::CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED
                    | CUresult::CUDA_ERROR_STREAM_CAPTURE_INVALIDATED
                    | CUresult::CUDA_ERROR_STREAM_CAPTURE_IMPLICIT => Error::GraphCapture {
                        op,
                        why: "its kernel loads on first use, which this driver does not allow while a stream captures; call Lowp::load_kernels() or run the operation once before capturing",
                    },
                    _ => Error::Cuda { op: "cuModuleLoadData", source: e },
                });
            }
        };
        module.load_function(name).op("cuModuleGetFunction")
    }

    /// Loads every kernel of this device's module that is not loaded yet, and returns how many
    /// kernels the handle has loaded in all. Kernels otherwise load (and the driver JIT-compiles
    /// them) on their first use, which makes an op's first call with a new configuration (a GEMM
    /// shape that picks other tiles) slow; a server calls this once at startup to pay for all of
    /// them there. The driver keeps JIT-compiled kernels in its cache across processes.
    ///
    /// Errors: `Unsupported` where the driver cannot read the module's PTX version,
    /// `GraphCapture` where a driver before CUDA 12.3 refuses to load while a stream captures, the
    /// driver's error otherwise.
    pub fn load_kernels(&self) -> Result<usize> {
        let index = KernelIndex::of(self.inner.arch);
        for name in index.names() {
            self.function("load_kernels", name, "")?;
        }
        Ok(self.inner.functions.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Checks that `stream` belongs to this handle's context.
    pub(crate) fn check_stream(&self, stream: &CudaStream) -> Result<()> {
        self.check_context("stream", stream.context())
    }

    /// Checks that a device buffer lives in this handle's context.
    pub(crate) fn check_buffer<T, B: DeviceSlice<T>>(&self, arg: &'static str, buf: &B) -> Result<()> {
        self.check_context(arg, buf.stream().context())
    }

    fn check_context(&self, arg: &'static str, ctx: &Arc<CudaContext>) -> Result<()> {
        if ctx.cu_ctx() != self.inner.ctx.cu_ctx() {
            return Err(Error::DeviceMismatch { arg, expected: self.inner.ctx.ordinal(), actual: ctx.ordinal() });
        }
        Ok(())
    }
}
