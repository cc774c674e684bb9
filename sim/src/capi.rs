//! The CUDA driver API's C ABI over one process-wide `Sim`.
//!
//! Each `cu*` function here is exported unmangled from the shared library, with the signature of
//! the driver's (handles are pointers, enums are 32-bit integers, `CUresult` is returned as a
//! `u32`). The simulator is created by `cuInit` from [`Config::from_env`].
//!
//! Model:
//! - One device (ordinal 0) named `lowp-sim`, with one context: its primary context. A context is
//!   current per host thread (a stack, as `cuCtxPushCurrent`/`cuCtxPopCurrent` need).
//! - **Every operation runs to completion, in the calling thread, when it is enqueued**: copies,
//!   memsets, launches and host functions are done when the call returns. Streams are therefore
//!   trivially ordered, events are complete as soon as they are recorded, and `*Synchronize`
//!   only reports errors. `cuEventElapsedTime` measures the host's monotonic clock between the
//!   two `cuEventRecord` calls, i.e. the simulation time of what ran in between.
//! - Errors map from [`ErrorKind`]; a launch that faults (illegal or misaligned address, a
//!   failed check) leaves the context in a sticky error, as on the GPU: every later call that
//!   uses the context returns the same code until the primary context is released by all its
//!   users (or reset). Frees and destroys still work, so clients can clean up.
//! - `cuGetErrorString(code)` returns the simulator's full message for the last error of that
//!   code (kernel, CTA, thread, PTX line, address), which is what client error messages show;
//!   a failed launch, a module that does not load and an unsupported entry point are also
//!   printed to stderr.
//! - Bad handles and null pointers return `CUDA_ERROR_INVALID_HANDLE` / `INVALID_VALUE`; a
//!   panic inside the simulator becomes `CUDA_ERROR_UNKNOWN` (it never unwinds into C).
//! - `LOWP_SIM_TRACE=1` prints the name of every entry point as it is called.
//! - Stream capture and graphs: while a stream captures, what is enqueued on it is recorded
//!   instead of run (see [Capture](#capture)); `cuGraphLaunch` runs the recorded operations in
//!   order.
//! - Entry points a client may resolve but that the simulator does not model (non-primary
//!   contexts, graph construction by nodes, memory pools, managed memory, ...) return
//!   `CUDA_ERROR_NOT_SUPPORTED` and print their name.
//!
//! # Capture
//!
//! `cuStreamBeginCapture_v2` puts a stream in capture mode; until `cuStreamEndCapture`, each
//! operation enqueued on it becomes a node of the graph instead of running:
//! - a kernel launch keeps a copy of its parameter buffer (as the driver's kernel node);
//! - a host-to-device copy keeps the **host pointer**, not the bytes: every replay reads the
//!   source again, as the driver's memcpy node from pageable memory does (a buffer that no longer
//!   holds the data at replay, such as a dead stack array, gives whatever it holds then);
//!   device-to-host copies likewise write the host pointer at every replay;
//! - device-to-device copies, memsets and host functions are recorded as they are;
//! - `cuMemAllocAsync` allocates at once and the memory belongs to the graph (the same address at
//!   every replay, freed when the graph and its executables are destroyed); `cuMemFreeAsync` of
//!   such memory is a no-op node, of other memory a node that frees it at replay;
//! - `cuEventRecord` marks the event as recorded in the capture (`cuEventQuery` and
//!   `cuEventSynchronize` on it return `CUDA_ERROR_CAPTURED_EVENT`); a stream that is not
//!   capturing and waits on such an event joins the capture (a fork); other waits are no-ops,
//!   since every operation completes when it runs. Whether forks were joined back is not checked.
//!
//! Calls the driver refuses during capture return its codes: synchronizing or querying a
//! capturing stream, and the "potentially unsafe" calls (synchronous copies, memsets, `cuMemAlloc`,
//! `cuMemFree`, `cuCtxSynchronize`, work on the legacy stream) while the calling thread's capture
//! mode forbids them (`cuThreadExchangeStreamCaptureMode`: global, the default, forbids them
//! while this thread or another thread in global mode captures; thread-local while this thread
//! captures; relaxed never), return `CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED` and invalidate this
//! thread's capture; enqueueing into an invalidated capture returns
//! `CUDA_ERROR_STREAM_CAPTURE_INVALIDATED`, and so does `cuStreamEndCapture`, which then returns no
//! graph.
//!
//! # Safety
//!
//! Every `unsafe` entry point has the driver's contract: each pointer argument is null or valid
//! for what the driver would read or write through it (host buffers of the given size, output
//! slots of the given type, NUL-terminated strings, `kernelParams` with one pointer per kernel
//! parameter).
#![allow(non_snake_case, clippy::missing_safety_doc, clippy::too_many_arguments)]

use std::alloc::Layout;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use crate::device::{Config, Kernel, LaunchConfig, LoadedModule, Sim};
use crate::error::{ErrorKind, SimError};
use crate::tma::TensorMap;

pub type CUresult = u32;
pub type CUdevice = c_int;
pub type CUdeviceptr = u64;
pub type CUcontext = *mut c_void;
pub type CUstream = *mut c_void;
pub type CUevent = *mut c_void;
pub type CUmodule = *mut c_void;
pub type CUfunction = *mut c_void;

pub const CUDA_SUCCESS: CUresult = 0;
pub const CUDA_ERROR_INVALID_VALUE: CUresult = 1;
pub const CUDA_ERROR_OUT_OF_MEMORY: CUresult = 2;
pub const CUDA_ERROR_NOT_INITIALIZED: CUresult = 3;
pub const CUDA_ERROR_INVALID_DEVICE: CUresult = 101;
pub const CUDA_ERROR_INVALID_IMAGE: CUresult = 200;
pub const CUDA_ERROR_INVALID_CONTEXT: CUresult = 201;
pub const CUDA_ERROR_INVALID_PTX: CUresult = 218;
pub const CUDA_ERROR_FILE_NOT_FOUND: CUresult = 301;
pub const CUDA_ERROR_INVALID_HANDLE: CUresult = 400;
pub const CUDA_ERROR_ILLEGAL_STATE: CUresult = 401;
pub const CUDA_ERROR_NOT_FOUND: CUresult = 500;
pub const CUDA_ERROR_ILLEGAL_ADDRESS: CUresult = 700;
pub const CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: CUresult = 701;
pub const CUDA_ERROR_MISALIGNED_ADDRESS: CUresult = 716;
pub const CUDA_ERROR_LAUNCH_FAILED: CUresult = 719;
pub const CUDA_ERROR_NOT_SUPPORTED: CUresult = 801;
pub const CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: CUresult = 900;
pub const CUDA_ERROR_STREAM_CAPTURE_INVALIDATED: CUresult = 901;
pub const CUDA_ERROR_STREAM_CAPTURE_MERGE: CUresult = 902;
pub const CUDA_ERROR_STREAM_CAPTURE_UNMATCHED: CUresult = 903;
pub const CUDA_ERROR_CAPTURED_EVENT: CUresult = 907;
pub const CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD: CUresult = 908;

/// `CUstreamCaptureMode`.
pub const CU_STREAM_CAPTURE_MODE_GLOBAL: u32 = 0;
pub const CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: u32 = 1;
pub const CU_STREAM_CAPTURE_MODE_RELAXED: u32 = 2;
/// `CUstreamCaptureStatus`.
pub const CU_STREAM_CAPTURE_STATUS_NONE: u32 = 0;
pub const CU_STREAM_CAPTURE_STATUS_ACTIVE: u32 = 1;
pub const CU_STREAM_CAPTURE_STATUS_INVALIDATED: u32 = 2;
pub const CUDA_ERROR_UNKNOWN: CUresult = 999;

/// The version `cuDriverGetVersion` reports (CUDA 12.8, what lowp's cudarc bindings target).
pub const DRIVER_VERSION: c_int = 12080;
/// The device name.
pub const DEVICE_NAME: &str = "lowp-sim";

/// `CUresult` of an [`ErrorKind`].
pub fn error_code(kind: ErrorKind) -> CUresult {
    match kind {
        ErrorKind::InvalidValue => CUDA_ERROR_INVALID_VALUE,
        ErrorKind::OutOfMemory => CUDA_ERROR_OUT_OF_MEMORY,
        ErrorKind::InvalidPtx => CUDA_ERROR_INVALID_PTX,
        ErrorKind::NotFound => CUDA_ERROR_NOT_FOUND,
        ErrorKind::OutOfResources => CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES,
        ErrorKind::IllegalAddress => CUDA_ERROR_ILLEGAL_ADDRESS,
        ErrorKind::MisalignedAddress => CUDA_ERROR_MISALIGNED_ADDRESS,
        ErrorKind::LaunchFailed => CUDA_ERROR_LAUNCH_FAILED,
        ErrorKind::NotSupported => CUDA_ERROR_NOT_SUPPORTED,
    }
}

/// (code, name, the driver's description) of the codes the simulator returns or a client may
/// ask about.
const ERRORS: &[(CUresult, &CStr, &CStr)] = &[
    (0, c"CUDA_SUCCESS", c"no error"),
    (1, c"CUDA_ERROR_INVALID_VALUE", c"invalid argument"),
    (2, c"CUDA_ERROR_OUT_OF_MEMORY", c"out of memory"),
    (3, c"CUDA_ERROR_NOT_INITIALIZED", c"initialization error"),
    (4, c"CUDA_ERROR_DEINITIALIZED", c"driver shutting down"),
    (34, c"CUDA_ERROR_STUB_LIBRARY", c"CUDA driver is a stub library"),
    (100, c"CUDA_ERROR_NO_DEVICE", c"no CUDA-capable device is detected"),
    (101, c"CUDA_ERROR_INVALID_DEVICE", c"invalid device ordinal"),
    (200, c"CUDA_ERROR_INVALID_IMAGE", c"device kernel image is invalid"),
    (201, c"CUDA_ERROR_INVALID_CONTEXT", c"invalid device context"),
    (209, c"CUDA_ERROR_NO_BINARY_FOR_GPU", c"no kernel image is available for execution on the device"),
    (215, c"CUDA_ERROR_UNSUPPORTED_LIMIT", c"unsupported limit"),
    (218, c"CUDA_ERROR_INVALID_PTX", c"a PTX JIT compilation failed"),
    (222, c"CUDA_ERROR_UNSUPPORTED_PTX_VERSION", c"the provided PTX was compiled with an unsupported toolchain."),
    (301, c"CUDA_ERROR_FILE_NOT_FOUND", c"file not found"),
    (400, c"CUDA_ERROR_INVALID_HANDLE", c"invalid resource handle"),
    (401, c"CUDA_ERROR_ILLEGAL_STATE", c"the operation cannot be performed in the present state"),
    (500, c"CUDA_ERROR_NOT_FOUND", c"named symbol not found"),
    (600, c"CUDA_ERROR_NOT_READY", c"device not ready"),
    (700, c"CUDA_ERROR_ILLEGAL_ADDRESS", c"an illegal memory access was encountered"),
    (701, c"CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES", c"too many resources requested for launch"),
    (702, c"CUDA_ERROR_LAUNCH_TIMEOUT", c"the launch timed out and was terminated"),
    (709, c"CUDA_ERROR_CONTEXT_IS_DESTROYED", c"context is destroyed"),
    (710, c"CUDA_ERROR_ASSERT", c"device-side assert triggered"),
    (715, c"CUDA_ERROR_ILLEGAL_INSTRUCTION", c"an illegal instruction was encountered"),
    (716, c"CUDA_ERROR_MISALIGNED_ADDRESS", c"misaligned address"),
    (719, c"CUDA_ERROR_LAUNCH_FAILED", c"unspecified launch failure"),
    (720, c"CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE", c"too many blocks in cooperative launch"),
    (801, c"CUDA_ERROR_NOT_SUPPORTED", c"operation not supported"),
    (900, c"CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED", c"operation not permitted when stream is capturing"),
    (901, c"CUDA_ERROR_STREAM_CAPTURE_INVALIDATED", c"operation failed due to a previous error during capture"),
    (902, c"CUDA_ERROR_STREAM_CAPTURE_MERGE", c"operation would result in a merge of separate capture sequences"),
    (903, c"CUDA_ERROR_STREAM_CAPTURE_UNMATCHED", c"capture was not ended in the same stream as it began"),
    (904, c"CUDA_ERROR_STREAM_CAPTURE_UNJOINED", c"capturing stream has unjoined work"),
    (905, c"CUDA_ERROR_STREAM_CAPTURE_ISOLATION", c"dependency created on uncaptured work in another stream"),
    (
        906,
        c"CUDA_ERROR_STREAM_CAPTURE_IMPLICIT",
        c"operation would make the legacy stream depend on a capturing blocking stream",
    ),
    (907, c"CUDA_ERROR_CAPTURED_EVENT", c"operation not permitted on an event last recorded in a capturing stream"),
    (
        908,
        c"CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD",
        c"attempt to terminate a thread-local capture sequence from another thread",
    ),
    (999, c"CUDA_ERROR_UNKNOWN", c"unknown error"),
];

fn error_entry(code: CUresult) -> Option<&'static (CUresult, &'static CStr, &'static CStr)> {
    ERRORS.iter().find(|e| e.0 == code)
}

fn describe(code: CUresult) -> String {
    error_entry(code).map_or_else(|| format!("CUDA error {code}"), |e| e.2.to_string_lossy().into_owned())
}

/// The detailed message of the last error of each code (leaked: the driver returns pointers
/// that stay valid; one per distinct message).
static MESSAGES: Mutex<Vec<(CUresult, &'static CStr)>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn set_message(code: CUresult, message: String) {
    let mut msgs = lock(&MESSAGES);
    let text = CString::new(message.replace('\0', " ")).unwrap_or_default();
    let slot = msgs.iter().position(|m| m.0 == code);
    if slot.is_some_and(|i| msgs[i].1 == text.as_c_str()) {
        return;
    }
    let leaked: &'static CStr = Box::leak(text.into_boxed_c_str());
    match slot {
        Some(i) => msgs[i].1 = leaked,
        None => msgs.push((code, leaked)),
    }
}

/// A failed call: its code and, if it says more than the code, the message for
/// `cuGetErrorString` (a repeated sticky error keeps the message of the launch that caused it).
pub struct Fail {
    code: CUresult,
    message: Option<String>,
}

type R = Result<(), Fail>;

fn fail(code: CUresult, message: impl Into<String>) -> Fail {
    Fail { code, message: Some(format!("{}: lowp-sim: {}", describe(code), message.into())) }
}

fn invalid(message: impl Into<String>) -> Fail {
    fail(CUDA_ERROR_INVALID_VALUE, message)
}

impl From<SimError> for Fail {
    fn from(e: SimError) -> Fail {
        fail(error_code(e.kind), e.message)
    }
}

/// Runs an entry point's body: records the message of an error, turns a panic into
/// `CUDA_ERROR_UNKNOWN`.
fn guard(name: &str, body: impl FnOnce() -> R) -> CUresult {
    static TRACE: OnceLock<bool> = OnceLock::new();
    if *TRACE.get_or_init(|| std::env::var("LOWP_SIM_TRACE").is_ok_and(|v| !v.is_empty() && v != "0")) {
        eprintln!("lowp-sim: {name}");
    }
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => CUDA_SUCCESS,
        Ok(Err(f)) => {
            if let Some(m) = f.message {
                set_message(f.code, m);
            }
            f.code
        }
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".into());
            let message = format!("{name} panicked inside the simulator: {what}");
            eprintln!("lowp-sim: {message}");
            set_message(CUDA_ERROR_UNKNOWN, format!("unknown error: lowp-sim: {message}"));
            CUDA_ERROR_UNKNOWN
        }
    }
}

/// Writes an output argument; null is `CUDA_ERROR_INVALID_VALUE`.
unsafe fn put<T>(p: *mut T, v: T, what: &str) -> R {
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: non-null, and valid for a `T` by the caller's contract; written unaligned so that
    // a misaligned slot from C is not undefined behaviour here.
    unsafe { p.write_unaligned(v) };
    Ok(())
}

/// A host buffer argument as a slice (empty for 0 bytes, whatever the pointer).
unsafe fn host<'a>(p: *const c_void, bytes: usize, what: &str) -> Result<&'a [u8], Fail> {
    if bytes == 0 {
        return Ok(&[]);
    }
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: the caller's contract: `p` is valid for `bytes` bytes.
    Ok(unsafe { std::slice::from_raw_parts(p as *const u8, bytes) })
}

unsafe fn host_mut<'a>(p: *mut c_void, bytes: usize, what: &str) -> Result<&'a mut [u8], Fail> {
    if bytes == 0 {
        return Ok(&mut []);
    }
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: the caller's contract: `p` is valid for writes of `bytes` bytes.
    Ok(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, bytes) })
}

unsafe fn c_str<'a>(p: *const c_char, what: &str) -> Result<&'a str, Fail> {
    if p.is_null() {
        return Err(invalid(format!("{what} is null")));
    }
    // SAFETY: the caller's contract: a NUL-terminated string.
    unsafe { CStr::from_ptr(p) }.to_str().map_err(|_| invalid(format!("{what} is not UTF-8")))
}

/// The primary context's handle.
const PRIMARY: usize = 0x5151_0000;
/// Handles of the null, legacy and per-thread default streams.
const DEFAULT_STREAMS: [usize; 3] = [0, 1, 2];

/// Registers per thread assumed by occupancy queries and `CU_FUNC_ATTRIBUTE_NUM_REGS`.
const REGS_PER_THREAD: u32 = 64;
/// Threads per SM.
const THREADS_PER_SM: u32 = 2048;
/// Resident blocks per SM at most.
const BLOCKS_PER_SM: u32 = 32;
/// Shared memory the system reserves per block.
const RESERVED_SMEM_PER_BLOCK: u32 = 1024;

struct Event {
    flags: u32,
    recorded: Option<Instant>,
    /// The capture sequence it was last recorded in, while that capture is in progress.
    captured: Option<u64>,
}

struct Func {
    module: usize,
    kernel: Arc<Kernel>,
}

#[derive(Default)]
struct Objects {
    next: usize,
    streams: HashSet<usize>,
    events: HashMap<usize, Event>,
    modules: HashMap<usize, Arc<LoadedModule>>,
    functions: HashMap<usize, Func>,
    host: HashMap<usize, Layout>,
    /// Capture sequences in progress, by id.
    captures: HashMap<u64, Capture>,
    next_capture: u64,
    /// The capture sequence each capturing stream records into.
    capturing: HashMap<usize, u64>,
    /// Graphs (`cuStreamEndCapture`) and their executables (`cuGraphInstantiateWithFlags`).
    graphs: HashMap<usize, Arc<Graph>>,
    execs: HashMap<usize, Arc<Graph>>,
    /// Allocations that belong to a live graph (made by `cuMemAllocAsync` during a capture).
    graph_memory: HashSet<u64>,
}

impl Objects {
    fn handle(&mut self) -> usize {
        self.next += 0x10;
        0x7100_0000 + self.next
    }
}

struct Driver {
    sim: Sim,
    /// The context's sticky error (0: none).
    sticky: AtomicU32,
    /// `cuDevicePrimaryCtxRetain` calls not yet released.
    primary_refs: AtomicU32,
    objects: Mutex<Objects>,
}

impl Driver {
    fn objects(&self) -> MutexGuard<'_, Objects> {
        lock(&self.objects)
    }
    fn stream(&self, s: CUstream) -> R {
        let h = s.addr();
        if DEFAULT_STREAMS.contains(&h) || self.objects().streams.contains(&h) {
            Ok(())
        } else {
            Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("stream 0x{h:x} is not a live stream")))
        }
    }
    fn kernel(&self, f: CUfunction) -> Result<Arc<Kernel>, Fail> {
        let h = f.addr();
        match self.objects().functions.get(&h) {
            Some(func) => Ok(func.kernel.clone()),
            None => {
                Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("function 0x{h:x} is not a function of a loaded module")))
            }
        }
    }
    fn module(&self, m: CUmodule) -> Result<Arc<LoadedModule>, Fail> {
        let h = m.addr();
        match self.objects().modules.get(&h) {
            Some(module) => Ok(module.clone()),
            None => Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("module 0x{h:x} is not a loaded module"))),
        }
    }
    /// Makes a launch or other device work's error sticky if it is.
    fn record(&self, e: &SimError) {
        if e.kind.is_sticky() {
            let _ = self.sticky.compare_exchange(0, error_code(e.kind), Ordering::Relaxed, Ordering::Relaxed);
        }
    }
}

static DRIVER: OnceLock<Driver> = OnceLock::new();

thread_local! {
    /// The calling thread's context stack (top = current context).
    static CURRENT: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

fn current() -> usize {
    CURRENT.with(|c| c.borrow().last().copied().unwrap_or(0))
}

/// The driver, initialised.
fn driver() -> Result<&'static Driver, Fail> {
    DRIVER.get().ok_or_else(|| fail(CUDA_ERROR_NOT_INITIALIZED, "cuInit has not been called"))
}

/// The driver, for a call that uses the current context: there must be one, and it must not
/// hold a sticky error.
fn context() -> Result<&'static Driver, Fail> {
    let d = driver()?;
    if current() != PRIMARY {
        return Err(fail(
            CUDA_ERROR_INVALID_CONTEXT,
            "no context is current on this thread (cuDevicePrimaryCtxRetain + cuCtxSetCurrent)",
        ));
    }
    if d.primary_refs.load(Ordering::Relaxed) == 0 {
        return Err(fail(CUDA_ERROR_INVALID_CONTEXT, "the current context was released (cuDevicePrimaryCtxRelease)"));
    }
    match d.sticky.load(Ordering::Relaxed) {
        0 => Ok(d),
        code => Err(Fail { code, message: None }),
    }
}

fn device(dev: CUdevice) -> R {
    if dev == 0 {
        Ok(())
    } else {
        Err(fail(CUDA_ERROR_INVALID_DEVICE, format!("device {dev}: the simulator has one device, 0")))
    }
}

/// Marks the shared library as the simulator (the real driver has no such symbol).
#[unsafe(no_mangle)]
pub extern "C" fn lowp_sim_version() -> *const c_char {
    concat!("lowp-sim ", env!("CARGO_PKG_VERSION"), "\0").as_ptr() as *const c_char
}

// ---------------------------------------------------------------------------------------------
// Initialisation, version, errors

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuInit(flags: c_uint) -> CUresult {
    guard("cuInit", || {
        if flags != 0 {
            return Err(invalid(format!("cuInit: flags must be 0, not {flags}")));
        }
        DRIVER.get_or_init(|| Driver {
            sim: Sim::new(Config::from_env()),
            sticky: AtomicU32::new(0),
            primary_refs: AtomicU32::new(0),
            objects: Mutex::new(Objects::default()),
        });
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDriverGetVersion(version: *mut c_int) -> CUresult {
    // SAFETY: `put` checks for null; the slot is the caller's output argument.
    guard("cuDriverGetVersion", || unsafe { put(version, DRIVER_VERSION, "cuDriverGetVersion: driverVersion") })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorName(error: CUresult, pstr: *mut *const c_char) -> CUresult {
    guard("cuGetErrorName", || {
        let entry = error_entry(error);
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(pstr, entry.map_or(std::ptr::null(), |e| e.1.as_ptr()), "cuGetErrorName: pStr")? };
        entry.map(|_| ()).ok_or(Fail { code: CUDA_ERROR_INVALID_VALUE, message: None })
    })
}

/// The description of `error`: the simulator's full message for the last error of that code if
/// there was one, else the driver's text.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGetErrorString(error: CUresult, pstr: *mut *const c_char) -> CUresult {
    guard("cuGetErrorString", || {
        let detailed = lock(&MESSAGES).iter().find(|m| m.0 == error).map(|m| m.1.as_ptr());
        let text = detailed.or_else(|| error_entry(error).map(|e| e.2.as_ptr()));
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(pstr, text.unwrap_or(std::ptr::null()), "cuGetErrorString: pStr")? };
        text.map(|_| ()).ok_or(Fail { code: CUDA_ERROR_INVALID_VALUE, message: None })
    })
}

// ---------------------------------------------------------------------------------------------
// Device

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetCount(count: *mut c_int) -> CUresult {
    guard("cuDeviceGetCount", || {
        driver()?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(count, 1, "cuDeviceGetCount: count") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGet(dev: *mut CUdevice, ordinal: c_int) -> CUresult {
    guard("cuDeviceGet", || {
        driver()?;
        device(ordinal)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(dev, 0, "cuDeviceGet: device") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetName(name: *mut c_char, len: c_int, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetName", || {
        driver()?;
        device(dev)?;
        if name.is_null() || len <= 0 {
            return Err(invalid("cuDeviceGetName: name is null or len is not positive"));
        }
        let n = DEVICE_NAME.len().min(len as usize - 1);
        // SAFETY: `name` is valid for `len` bytes (the caller's contract); n + 1 <= len.
        unsafe {
            std::ptr::copy_nonoverlapping(DEVICE_NAME.as_ptr(), name as *mut u8, n);
            *name.add(n) = 0;
        }
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceTotalMem_v2(bytes: *mut usize, dev: CUdevice) -> CUresult {
    guard("cuDeviceTotalMem_v2", || {
        let d = driver()?;
        device(dev)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(bytes, d.sim.config().memory_bytes as usize, "cuDeviceTotalMem: bytes") }
    })
}

/// A fixed UUID ("lowp-sim device0").
const UUID: [u8; 16] = *b"lowp-sim device0";

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetUuid(uuid: *mut [u8; 16], dev: CUdevice) -> CUresult {
    guard("cuDeviceGetUuid", || {
        driver()?;
        device(dev)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(uuid, UUID, "cuDeviceGetUuid: uuid") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetUuid_v2(uuid: *mut [u8; 16], dev: CUdevice) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuDeviceGetUuid(uuid, dev) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceComputeCapability(major: *mut c_int, minor: *mut c_int, dev: CUdevice) -> CUresult {
    guard("cuDeviceComputeCapability", || {
        let d = driver()?;
        device(dev)?;
        let (ma, mi) = d.sim.config().compute_capability;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe {
            put(major, ma, "cuDeviceComputeCapability: major")?;
            put(minor, mi, "cuDeviceComputeCapability: minor")
        }
    })
}

/// The value of `CUdevice_attribute` `attrib` on a device configured as `c` (0 for attributes
/// the simulator does not know).
pub fn device_attribute(c: &Config, attrib: u32) -> i32 {
    let hopper = c.compute_capability.0 >= 9;
    let smem_per_sm = (c.max_smem_optin + RESERVED_SMEM_PER_BLOCK) as i32;
    match attrib {
        1 => c.max_threads_per_block as i32, // MAX_THREADS_PER_BLOCK
        2 | 3 => 1024,                       // MAX_BLOCK_DIM_X/Y
        4 => 64,                             // MAX_BLOCK_DIM_Z
        5 => i32::MAX,                       // MAX_GRID_DIM_X
        6 | 7 => 65535,                      // MAX_GRID_DIM_Y/Z
        8 => c.max_smem_default as i32,      // MAX_SHARED_MEMORY_PER_BLOCK
        9 => 65536,                          // TOTAL_CONSTANT_MEMORY
        10 => 32,                            // WARP_SIZE
        11 => i32::MAX,                      // MAX_PITCH
        12 => c.regs_per_sm as i32,          // MAX_REGISTERS_PER_BLOCK
        13 => {
            if hopper {
                1_980_000
            } else {
                1_410_000
            }
        } // CLOCK_RATE (kHz)
        14 => 512,                           // TEXTURE_ALIGNMENT
        15 => 1,                             // GPU_OVERLAP
        16 => c.sm_count as i32,             // MULTIPROCESSOR_COUNT
        19 => 1,                             // CAN_MAP_HOST_MEMORY
        30 => 512,                           // SURFACE_ALIGNMENT
        31 => 1,                             // CONCURRENT_KERNELS
        36 => {
            if hopper {
                2_619_000
            } else {
                1_215_000
            }
        } // MEMORY_CLOCK_RATE (kHz)
        37 => 5120,                          // GLOBAL_MEMORY_BUS_WIDTH
        38 => {
            if hopper {
                50 << 20
            } else {
                40 << 20
            }
        } // L2_CACHE_SIZE
        39 => THREADS_PER_SM as i32,         // MAX_THREADS_PER_MULTIPROCESSOR
        40 => 2,                             // ASYNC_ENGINE_COUNT
        41 => 1,                             // UNIFIED_ADDRESSING
        51 => 32,                            // TEXTURE_PITCH_ALIGNMENT
        75 => c.compute_capability.0,        // COMPUTE_CAPABILITY_MAJOR
        76 => c.compute_capability.1,        // COMPUTE_CAPABILITY_MINOR
        78..=80 => 1,                        // STREAM_PRIORITIES, GLOBAL/LOCAL_L1_CACHE
        81 => smem_per_sm,                   // MAX_SHARED_MEMORY_PER_MULTIPROCESSOR
        82 => c.regs_per_sm as i32,          // MAX_REGISTERS_PER_MULTIPROCESSOR
        87 => 2,                             // SINGLE_TO_DOUBLE_PRECISION_PERF_RATIO
        90 => 1,                             // COMPUTE_PREEMPTION_SUPPORTED
        95 => 1,                             // COOPERATIVE_LAUNCH
        97 => c.max_smem_optin as i32,       // MAX_SHARED_MEMORY_PER_BLOCK_OPTIN
        106 => BLOCKS_PER_SM as i32,         // MAX_BLOCKS_PER_MULTIPROCESSOR
        111 => RESERVED_SMEM_PER_BLOCK as i32, // RESERVED_SHARED_MEMORY_PER_BLOCK
        115 => 1,                            // MEMORY_POOLS_SUPPORTED
        120 | 127 => hopper as i32,          // CLUSTER_LAUNCH, TENSOR_MAP_ACCESS_SUPPORTED
        126 => 1,                            // MEM_SYNC_DOMAIN_COUNT
        _ => 0,
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceGetAttribute(value: *mut c_int, attrib: u32, dev: CUdevice) -> CUresult {
    guard("cuDeviceGetAttribute", || {
        let d = driver()?;
        device(dev)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(value, device_attribute(d.sim.config(), attrib), "cuDeviceGetAttribute: pi") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDeviceCanAccessPeer(can: *mut c_int, dev: CUdevice, peer: CUdevice) -> CUresult {
    guard("cuDeviceCanAccessPeer", || {
        driver()?;
        device(dev)?;
        device(peer)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(can, 0, "cuDeviceCanAccessPeer: canAccessPeer") }
    })
}

// ---------------------------------------------------------------------------------------------
// Contexts

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRetain(pctx: *mut CUcontext, dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRetain", || {
        let d = driver()?;
        device(dev)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(pctx, std::ptr::without_provenance_mut(PRIMARY), "cuDevicePrimaryCtxRetain: pctx")? };
        d.primary_refs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    })
}

/// Releases one reference to the primary context; the last one destroys it, which clears its
/// sticky error (a later retain gets a usable context, as on the GPU).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxRelease_v2(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxRelease_v2", || {
        let d = driver()?;
        device(dev)?;
        let released = d.primary_refs.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        match released {
            Ok(1) => {
                d.sticky.store(0, Ordering::Relaxed);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(_) => {
                Err(fail(CUDA_ERROR_INVALID_CONTEXT, "cuDevicePrimaryCtxRelease: the primary context is not retained"))
            }
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxReset_v2(dev: CUdevice) -> CUresult {
    guard("cuDevicePrimaryCtxReset_v2", || {
        let d = driver()?;
        device(dev)?;
        d.sticky.store(0, Ordering::Relaxed);
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxGetState(dev: CUdevice, flags: *mut c_uint, active: *mut c_int) -> CUresult {
    guard("cuDevicePrimaryCtxGetState", || {
        let d = driver()?;
        device(dev)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe {
            put(flags, 0, "cuDevicePrimaryCtxGetState: flags")?;
            put(active, (d.primary_refs.load(Ordering::Relaxed) > 0) as c_int, "cuDevicePrimaryCtxGetState: active")
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuDevicePrimaryCtxSetFlags_v2(dev: CUdevice, _flags: c_uint) -> CUresult {
    guard("cuDevicePrimaryCtxSetFlags_v2", || {
        driver()?;
        device(dev)
    })
}

fn check_ctx_handle(ctx: CUcontext) -> R {
    if ctx.addr() == PRIMARY {
        Ok(())
    } else {
        Err(fail(CUDA_ERROR_INVALID_CONTEXT, format!("context 0x{:x} is not the primary context", ctx.addr())))
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCurrent(pctx: *mut CUcontext) -> CUresult {
    guard("cuCtxGetCurrent", || {
        driver()?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(pctx, std::ptr::without_provenance_mut(current()), "cuCtxGetCurrent: pctx") }
    })
}

/// Replaces the top of the thread's context stack (null pops it).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetCurrent(ctx: CUcontext) -> CUresult {
    guard("cuCtxSetCurrent", || {
        driver()?;
        if !ctx.is_null() {
            check_ctx_handle(ctx)?;
        }
        CURRENT.with(|c| {
            let mut stack = c.borrow_mut();
            stack.pop();
            if !ctx.is_null() {
                stack.push(ctx.addr());
            }
        });
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPushCurrent_v2(ctx: CUcontext) -> CUresult {
    guard("cuCtxPushCurrent_v2", || {
        driver()?;
        check_ctx_handle(ctx)?;
        CURRENT.with(|c| c.borrow_mut().push(ctx.addr()));
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxPopCurrent_v2(pctx: *mut CUcontext) -> CUresult {
    guard("cuCtxPopCurrent_v2", || {
        driver()?;
        let Some(top) = CURRENT.with(|c| c.borrow_mut().pop()) else {
            return Err(fail(CUDA_ERROR_INVALID_CONTEXT, "cuCtxPopCurrent: no context is current"));
        };
        if !pctx.is_null() {
            // SAFETY: `put` checks for null; the slot is the caller's output argument.
            unsafe { put(pctx, std::ptr::without_provenance_mut(top), "cuCtxPopCurrent: pctx")? };
        }
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetDevice(dev: *mut CUdevice) -> CUresult {
    guard("cuCtxGetDevice", || {
        context()?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(dev, 0, "cuCtxGetDevice: device") }
    })
}

/// Work completes when enqueued: only reports the context's sticky error (refused where capture
/// forbids potentially unsafe calls).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSynchronize() -> CUresult {
    guard("cuCtxSynchronize", || forbid_during_capture(&mut context()?.objects(), "cuCtxSynchronize"))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetFlags(flags: *mut c_uint) -> CUresult {
    guard("cuCtxGetFlags", || {
        context()?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(flags, 0, "cuCtxGetFlags: flags") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetFlags(_flags: c_uint) -> CUresult {
    guard("cuCtxSetFlags", || context().map(|_| ()))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetLimit(value: *mut usize, limit: u32) -> CUresult {
    guard("cuCtxGetLimit", || {
        context()?;
        // STACK_SIZE, PRINTF_FIFO_SIZE, MALLOC_HEAP_SIZE, then the runtime's limits.
        let v = match limit {
            0 => 1024,
            1 | 2 => 8 << 20,
            3 => 2,
            4 => 2048,
            5 => 32,
            6 => 0,
            _ => return Err(fail(215, format!("cuCtxGetLimit: unknown limit {limit}"))),
        };
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(value, v, "cuCtxGetLimit: pvalue") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetLimit(_limit: u32, _value: usize) -> CUresult {
    guard("cuCtxSetLimit", || context().map(|_| ()))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetCacheConfig(config: *mut u32) -> CUresult {
    guard("cuCtxGetCacheConfig", || {
        context()?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(config, 0, "cuCtxGetCacheConfig: pconfig") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxSetCacheConfig(_config: u32) -> CUresult {
    guard("cuCtxSetCacheConfig", || context().map(|_| ()))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuCtxGetStreamPriorityRange(least: *mut c_int, greatest: *mut c_int) -> CUresult {
    guard("cuCtxGetStreamPriorityRange", || {
        context()?;
        // Either may be null.
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe {
            if !least.is_null() {
                put(least, 0, "least")?;
            }
            if !greatest.is_null() {
                put(greatest, -5, "greatest")?;
            }
        }
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Streams and events

unsafe fn create_stream(ph: *mut CUstream) -> R {
    let d = context()?;
    if ph.is_null() {
        return Err(invalid("cuStreamCreate: phStream is null"));
    }
    let mut o = d.objects();
    let h = o.handle();
    o.streams.insert(h);
    // SAFETY: `put` checks for null; the slot is the caller's output argument.
    unsafe { put(ph, std::ptr::without_provenance_mut(h), "cuStreamCreate: phStream") }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreate(ph: *mut CUstream, _flags: c_uint) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuStreamCreate", || unsafe { create_stream(ph) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamCreateWithPriority(ph: *mut CUstream, _flags: c_uint, _priority: c_int) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuStreamCreateWithPriority", || unsafe { create_stream(ph) })
}

/// Destroying a capturing stream invalidates its capture.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamDestroy_v2(s: CUstream) -> CUresult {
    guard("cuStreamDestroy_v2", || {
        let d = driver()?;
        let mut o = d.objects();
        if !o.streams.remove(&s.addr()) {
            return Err(fail(
                CUDA_ERROR_INVALID_HANDLE,
                format!("cuStreamDestroy: 0x{:x} is not a live stream", s.addr()),
            ));
        }
        if let Some(c) = o.capturing.remove(&s.addr()).and_then(|id| o.captures.get_mut(&id)) {
            c.invalidated = true;
        }
        Ok(())
    })
}

/// Synchronizing or querying a stream: refused while it captures (which invalidates the capture)
/// and, for the legacy streams, where capture forbids potentially unsafe calls. Work completes
/// when enqueued: otherwise only reports errors.
fn stream_sync(name: &str, s: CUstream) -> R {
    let d = context()?;
    d.stream(s)?;
    let mut o = d.objects();
    if let Some(&id) = o.capturing.get(&s.addr()) {
        if let Some(c) = o.captures.get_mut(&id) {
            c.invalidated = true;
        }
        return Err(fail(
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            format!("{name}: stream 0x{:x} is capturing", s.addr()),
        ));
    }
    if is_legacy(s) {
        forbid_during_capture(&mut o, name)?;
    }
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamSynchronize(s: CUstream) -> CUresult {
    guard("cuStreamSynchronize", || stream_sync("cuStreamSynchronize", s))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamQuery(s: CUstream) -> CUresult {
    guard("cuStreamQuery", || stream_sync("cuStreamQuery", s))
}

/// Ordering is trivially satisfied (work completes when enqueued), so a wait does nothing, except
/// that a stream not capturing that waits on an event recorded in a capture joins that capture.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamWaitEvent(s: CUstream, e: CUevent, _flags: c_uint) -> CUresult {
    guard("cuStreamWaitEvent", || {
        let d = context()?;
        d.stream(s)?;
        let mut o = d.objects();
        let captured = match o.events.get(&e.addr()) {
            Some(ev) => ev.captured,
            None => return Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("event 0x{:x} is not a live event", e.addr()))),
        };
        let Some(id) = captured else { return Ok(()) };
        match o.capturing.get(&s.addr()).copied() {
            None => {
                o.capturing.insert(s.addr(), id);
                Ok(())
            }
            Some(mine) if mine == id => Ok(()),
            Some(mine) => {
                for c in [mine, id] {
                    if let Some(c) = o.captures.get_mut(&c) {
                        c.invalidated = true;
                    }
                }
                Err(fail(
                    CUDA_ERROR_STREAM_CAPTURE_MERGE,
                    "cuStreamWaitEvent: the stream and the event belong to different capture sequences",
                ))
            }
        }
    })
}

/// Runs the host function now, in the calling thread (or records it during capture).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchHostFunc(
    s: CUstream,
    f: Option<unsafe extern "C" fn(*mut c_void)>,
    data: *mut c_void,
) -> CUresult {
    guard("cuLaunchHostFunc", || {
        let d = context()?;
        let f = f.ok_or_else(|| invalid("cuLaunchHostFunc: fn is null"))?;
        submit(d, "cuLaunchHostFunc", s, Node::Host { f, data: data.expose_provenance() })
    })
}

fn event_exists(d: &Driver, e: CUevent) -> R {
    if d.objects().events.contains_key(&e.addr()) {
        Ok(())
    } else {
        Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("event 0x{:x} is not a live event", e.addr())))
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventCreate(ph: *mut CUevent, flags: c_uint) -> CUresult {
    guard("cuEventCreate", || {
        let d = context()?;
        if ph.is_null() {
            return Err(invalid("cuEventCreate: phEvent is null"));
        }
        let mut o = d.objects();
        let h = o.handle();
        o.events.insert(h, Event { flags, recorded: None, captured: None });
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(ph, std::ptr::without_provenance_mut(h), "cuEventCreate: phEvent") }
    })
}

/// Records the time, or, on a capturing stream, marks the event as recorded in the capture.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecord(e: CUevent, s: CUstream) -> CUresult {
    guard("cuEventRecord", || {
        let d = context()?;
        d.stream(s)?;
        let mut o = d.objects();
        if is_legacy(s) {
            forbid_during_capture(&mut o, "cuEventRecord")?;
        }
        let captured = o.capturing.get(&s.addr()).copied();
        if let Some(id) = captured {
            capture_open(&o, id, "cuEventRecord")?;
        }
        match o.events.get_mut(&e.addr()) {
            Some(ev) => {
                if captured.is_none() {
                    ev.recorded = Some(Instant::now());
                }
                ev.captured = captured;
                Ok(())
            }
            None => {
                Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("cuEventRecord: 0x{:x} is not a live event", e.addr())))
            }
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventRecordWithFlags(e: CUevent, s: CUstream, _flags: c_uint) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuEventRecord(e, s) }
}

/// An event is complete once recorded, unless it was recorded in a capture in progress.
fn event_wait(name: &str, e: CUevent) -> R {
    let d = context()?;
    event_exists(d, e)?;
    if d.objects().events.get(&e.addr()).is_some_and(|ev| ev.captured.is_some()) {
        return Err(fail(
            CUDA_ERROR_CAPTURED_EVENT,
            format!("{name}: the event was last recorded in a capturing stream"),
        ));
    }
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventQuery(e: CUevent) -> CUresult {
    guard("cuEventQuery", || event_wait("cuEventQuery", e))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventSynchronize(e: CUevent) -> CUresult {
    guard("cuEventSynchronize", || event_wait("cuEventSynchronize", e))
}

/// Milliseconds of host time between the two records.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    guard("cuEventElapsedTime", || {
        let d = context()?;
        let o = d.objects();
        let time = |e: CUevent, which: &str| match o.events.get(&e.addr()) {
            None => Err(fail(
                CUDA_ERROR_INVALID_HANDLE,
                format!("cuEventElapsedTime: {which} 0x{:x} is not a live event", e.addr()),
            )),
            Some(ev) if ev.flags & 2 != 0 => Err(fail(
                CUDA_ERROR_INVALID_HANDLE,
                format!("cuEventElapsedTime: {which} was created with CU_EVENT_DISABLE_TIMING"),
            )),
            Some(Event { recorded: None, .. }) => {
                Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("cuEventElapsedTime: {which} was never recorded")))
            }
            Some(Event { recorded: Some(t), .. }) => Ok(*t),
        };
        let (t0, t1) = (time(start, "hStart")?, time(end, "hEnd")?);
        let v = if t1 >= t0 { (t1 - t0).as_secs_f64() * 1e3 } else { -((t0 - t1).as_secs_f64() * 1e3) };
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(ms, v as f32, "cuEventElapsedTime: pMilliseconds") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventElapsedTime_v2(ms: *mut f32, start: CUevent, end: CUevent) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuEventElapsedTime(ms, start, end) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuEventDestroy_v2(e: CUevent) -> CUresult {
    guard("cuEventDestroy_v2", || {
        let d = driver()?;
        match d.objects().events.remove(&e.addr()) {
            Some(_) => Ok(()),
            None => {
                Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("cuEventDestroy: 0x{:x} is not a live event", e.addr())))
            }
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Memory

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAlloc_v2(dptr: *mut CUdeviceptr, bytes: usize) -> CUresult {
    guard("cuMemAlloc_v2", || {
        let d = context()?;
        if dptr.is_null() || bytes == 0 {
            return Err(invalid(format!(
                "cuMemAlloc: dptr is null or bytesize is 0 (dptr {dptr:p}, bytesize {bytes})"
            )));
        }
        forbid_during_capture(&mut d.objects(), "cuMemAlloc")?;
        let p = d.sim.alloc(bytes as u64)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(dptr, p, "cuMemAlloc: dptr") }
    })
}

/// Like `cuMemAlloc`; 0 bytes gives a valid 1-byte allocation. During capture the memory
/// belongs to the graph.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocAsync(dptr: *mut CUdeviceptr, bytes: usize, s: CUstream) -> CUresult {
    guard("cuMemAllocAsync", || {
        let d = context()?;
        d.stream(s)?;
        if dptr.is_null() {
            return Err(invalid("cuMemAllocAsync: dptr is null"));
        }
        let mut o = d.objects();
        if is_legacy(s) {
            forbid_during_capture(&mut o, "cuMemAllocAsync")?;
        }
        let capture = o.capturing.get(&s.addr()).copied();
        if let Some(id) = capture {
            capture_open(&o, id, "cuMemAllocAsync")?;
        }
        let p = d.sim.alloc(bytes as u64)?;
        if let Some(c) = capture.and_then(|id| o.captures.get_mut(&id)) {
            c.memory.push(p);
        }
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(dptr, p, "cuMemAllocAsync: dptr") }
    })
}

/// Frees `p` now (memory a graph owned is no longer the graph's).
fn free(name: &str, p: CUdeviceptr) -> R {
    let d = driver()?;
    if p == 0 {
        return Ok(());
    }
    d.objects().graph_memory.remove(&p);
    d.sim.free(p).map_err(|e| invalid(format!("{name}: {}", e.message)))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFree_v2(p: CUdeviceptr) -> CUresult {
    guard("cuMemFree_v2", || {
        if let Ok(d) = driver() {
            forbid_during_capture(&mut d.objects(), "cuMemFree")?;
        }
        free("cuMemFree", p)
    })
}

/// Frees now, or during capture records the free (a no-op for memory the capture allocated,
/// which the graph keeps).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeAsync(p: CUdeviceptr, s: CUstream) -> CUresult {
    guard("cuMemFreeAsync", || {
        let d = driver()?;
        // None: `s` is not capturing; Some(owned): whether its capture allocated `p`.
        let capture = {
            let o = d.objects();
            o.capturing.get(&s.addr()).and_then(|id| o.captures.get(id)).map(|c| c.memory.contains(&p))
        };
        match capture {
            None => free("cuMemFreeAsync", p),
            Some(true) => Ok(()),
            Some(false) => submit(context()?, "cuMemFreeAsync", s, Node::Free { ptr: p }),
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemGetInfo_v2(free: *mut usize, total: *mut usize) -> CUresult {
    guard("cuMemGetInfo_v2", || {
        let (f, t) = context()?.sim.mem_info();
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe {
            put(free, f as usize, "cuMemGetInfo: free")?;
            put(total, t as usize, "cuMemGetInfo: total")
        }
    })
}

/// Fills `n` elements of `width` bytes (1, 2 or 4) at `dst` with the low bytes of `value`.
fn memset(name: &str, dst: CUdeviceptr, value: u32, width: u64, n: usize, s: CUstream) -> R {
    let d = context()?;
    if dst % width != 0 {
        return Err(invalid(format!("{name}: 0x{dst:x} is not {width}-byte aligned")));
    }
    let bytes = (n as u64).checked_mul(width).ok_or_else(|| invalid(format!("{name}: {n} elements overflow")))?;
    submit(d, name, s, Node::Memset { dst, value, width, bytes })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8_v2(dst: CUdeviceptr, v: u8, n: usize) -> CUresult {
    guard("cuMemsetD8_v2", || memset("cuMemsetD8", dst, v as u32, 1, n, std::ptr::null_mut()))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD8Async(dst: CUdeviceptr, v: u8, n: usize, s: CUstream) -> CUresult {
    guard("cuMemsetD8Async", || memset("cuMemsetD8Async", dst, v as u32, 1, n, s))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD16_v2(dst: CUdeviceptr, v: u16, n: usize) -> CUresult {
    guard("cuMemsetD16_v2", || memset("cuMemsetD16", dst, v as u32, 2, n, std::ptr::null_mut()))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD16Async(dst: CUdeviceptr, v: u16, n: usize, s: CUstream) -> CUresult {
    guard("cuMemsetD16Async", || memset("cuMemsetD16Async", dst, v as u32, 2, n, s))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD32_v2(dst: CUdeviceptr, v: u32, n: usize) -> CUresult {
    guard("cuMemsetD32_v2", || memset("cuMemsetD32", dst, v, 4, n, std::ptr::null_mut()))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemsetD32Async(dst: CUdeviceptr, v: u32, n: usize, s: CUstream) -> CUresult {
    guard("cuMemsetD32Async", || memset("cuMemsetD32Async", dst, v, 4, n, s))
}

unsafe fn htod(name: &str, dst: CUdeviceptr, src: *const c_void, n: usize, s: CUstream) -> R {
    let d = context()?;
    if n > 0 && src.is_null() {
        return Err(invalid(format!("{name}: srcHost is null")));
    }
    submit(d, name, s, Node::HtoD { dst, src: src.expose_provenance(), n })
}

unsafe fn dtoh(name: &str, dst: *mut c_void, src: CUdeviceptr, n: usize, s: CUstream) -> R {
    let d = context()?;
    if n > 0 && dst.is_null() {
        return Err(invalid(format!("{name}: dstHost is null")));
    }
    submit(d, name, s, Node::DtoH { dst: dst.expose_provenance(), src, n })
}

fn dtod(name: &str, dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: CUstream) -> R {
    submit(context()?, name, s, Node::DtoD { dst, src, n })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoD_v2(dst: CUdeviceptr, src: *const c_void, n: usize) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuMemcpyHtoD_v2", || unsafe { htod("cuMemcpyHtoD", dst, src, n, std::ptr::null_mut()) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyHtoDAsync_v2(dst: CUdeviceptr, src: *const c_void, n: usize, s: CUstream) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuMemcpyHtoDAsync_v2", || unsafe { htod("cuMemcpyHtoDAsync", dst, src, n, s) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoH_v2(dst: *mut c_void, src: CUdeviceptr, n: usize) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuMemcpyDtoH_v2", || unsafe { dtoh("cuMemcpyDtoH", dst, src, n, std::ptr::null_mut()) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoHAsync_v2(dst: *mut c_void, src: CUdeviceptr, n: usize, s: CUstream) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuMemcpyDtoHAsync_v2", || unsafe { dtoh("cuMemcpyDtoHAsync", dst, src, n, s) })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoD_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize) -> CUresult {
    guard("cuMemcpyDtoD_v2", || dtod("cuMemcpyDtoD", dst, src, n, std::ptr::null_mut()))
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyDtoDAsync_v2(dst: CUdeviceptr, src: CUdeviceptr, n: usize, s: CUstream) -> CUresult {
    guard("cuMemcpyDtoDAsync_v2", || dtod("cuMemcpyDtoDAsync", dst, src, n, s))
}

/// One device, one context: a peer copy is a device copy.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyPeerAsync(
    dst: CUdeviceptr,
    dst_ctx: CUcontext,
    src: CUdeviceptr,
    src_ctx: CUcontext,
    n: usize,
    s: CUstream,
) -> CUresult {
    guard("cuMemcpyPeerAsync", || {
        check_ctx_handle(dst_ctx)?;
        check_ctx_handle(src_ctx)?;
        dtod("cuMemcpyPeerAsync", dst, src, n, s)
    })
}
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemcpyPeer(
    dst: CUdeviceptr,
    dst_ctx: CUcontext,
    src: CUdeviceptr,
    src_ctx: CUcontext,
    n: usize,
) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuMemcpyPeerAsync(dst, dst_ctx, src, src_ctx, n, std::ptr::null_mut()) }
}

/// Page-locked host memory is plain host memory here.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemHostAlloc(pp: *mut *mut c_void, bytes: usize, _flags: c_uint) -> CUresult {
    guard("cuMemHostAlloc", || {
        let d = context()?;
        forbid_during_capture(&mut d.objects(), "cuMemHostAlloc")?;
        if pp.is_null() {
            return Err(invalid("cuMemHostAlloc: pp is null"));
        }
        let layout = Layout::from_size_align(bytes.max(1), 4096)
            .map_err(|_| invalid(format!("cuMemHostAlloc: {bytes} bytes is too large")))?;
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        if p.is_null() {
            return Err(fail(
                CUDA_ERROR_OUT_OF_MEMORY,
                format!("cuMemHostAlloc: host allocation of {bytes} bytes failed"),
            ));
        }
        d.objects().host.insert(p.addr(), layout);
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(pp, p as *mut c_void, "cuMemHostAlloc: pp") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemAllocHost_v2(pp: *mut *mut c_void, bytes: usize) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuMemHostAlloc(pp, bytes, 0) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuMemFreeHost(p: *mut c_void) -> CUresult {
    guard("cuMemFreeHost", || {
        let d = driver()?;
        let Some(layout) = d.objects().host.remove(&p.addr()) else {
            return Err(invalid(format!("cuMemFreeHost: {p:p} is not from cuMemHostAlloc")));
        };
        // SAFETY: `p` was returned by `alloc_zeroed` with this layout and is freed once (it was
        // just removed from the table).
        unsafe { std::alloc::dealloc(p as *mut u8, layout) };
        Ok(())
    })
}

// ---------------------------------------------------------------------------------------------
// Modules and functions

/// Loads a module from its image: PTX text (NUL-terminated). Cubin and fatbin images are not
/// simulated.
unsafe fn load_data(name: &str, module: *mut CUmodule, image: *const c_void) -> R {
    let d = context()?;
    if module.is_null() || image.is_null() {
        return Err(invalid(format!("{name}: module or image is null")));
    }
    // Peek at the magic byte by byte, stopping at a NUL, so a short PTX string is not overread.
    let mut magic = [0u8; 4];
    for (i, m) in magic.iter_mut().enumerate() {
        // SAFETY: bytes up to and including the first NUL are readable (a NUL-terminated image
        // or a binary image longer than 4 bytes).
        *m = unsafe { *(image as *const u8).add(i) };
        if *m == 0 {
            break;
        }
    }
    if magic == *b"\x7fELF" || magic == [0x50, 0xed, 0x55, 0xba] {
        let e =
            fail(CUDA_ERROR_NOT_SUPPORTED, format!("{name}: cubin/fatbin images cannot be simulated; load PTX text"));
        eprintln!("lowp-sim: {name}: cubin/fatbin images cannot be simulated; load PTX text");
        return Err(e);
    }
    // SAFETY: a NUL-terminated PTX string, by the caller's contract.
    let text = unsafe { CStr::from_ptr(image as *const c_char) }
        .to_str()
        .map_err(|_| fail(CUDA_ERROR_INVALID_IMAGE, format!("{name}: the PTX is not UTF-8")))?;
    let loaded = d.sim.load_module(text).inspect_err(|e| eprintln!("{e}"))?;
    let mut o = d.objects();
    let h = o.handle();
    o.modules.insert(h, loaded);
    // SAFETY: `put` checks for null; the slot is the caller's output argument.
    unsafe { put(module, std::ptr::without_provenance_mut(h), "module") }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadData(module: *mut CUmodule, image: *const c_void) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuModuleLoadData", || unsafe { load_data("cuModuleLoadData", module, image) })
}

/// JIT options are ignored.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoadDataEx(
    module: *mut CUmodule,
    image: *const c_void,
    _n: c_uint,
    _options: *mut c_void,
    _values: *mut *mut c_void,
) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuModuleLoadDataEx", || unsafe { load_data("cuModuleLoadDataEx", module, image) })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleLoad(module: *mut CUmodule, fname: *const c_char) -> CUresult {
    guard("cuModuleLoad", || {
        context()?;
        // SAFETY: the caller's pointers, valid under the driver's contract.
        let path = unsafe { c_str(fname, "cuModuleLoad: fname")? };
        let text =
            std::fs::read(path).map_err(|e| fail(CUDA_ERROR_FILE_NOT_FOUND, format!("cuModuleLoad: {path}: {e}")))?;
        let text = CString::new(text)
            .map_err(|_| fail(CUDA_ERROR_INVALID_IMAGE, format!("cuModuleLoad: {path} is not PTX text")))?;
        // SAFETY: `text` is NUL-terminated and alive; `module` is the caller's output slot.
        unsafe { load_data("cuModuleLoad", module, text.as_ptr() as *const c_void) }
    })
}

/// Unloads the module; its functions become invalid handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleUnload(module: CUmodule) -> CUresult {
    guard("cuModuleUnload", || {
        let d = driver()?;
        let mut o = d.objects();
        let h = module.addr();
        if o.modules.remove(&h).is_none() {
            return Err(fail(CUDA_ERROR_INVALID_HANDLE, format!("cuModuleUnload: 0x{h:x} is not a loaded module")));
        }
        o.functions.retain(|_, f| f.module != h);
        Ok(())
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuModuleGetFunction(
    hfunc: *mut CUfunction,
    module: CUmodule,
    name: *const c_char,
) -> CUresult {
    guard("cuModuleGetFunction", || {
        let d = context()?;
        let m = d.module(module)?;
        // SAFETY: the caller's pointers, valid under the driver's contract.
        let name = unsafe { c_str(name, "cuModuleGetFunction: name")? };
        if hfunc.is_null() {
            return Err(invalid("cuModuleGetFunction: hfunc is null"));
        }
        let kernel = d.sim.kernel(&m, name)?;
        let mut o = d.objects();
        let h = o.handle();
        o.functions.insert(h, Func { module: module.addr(), kernel });
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(hfunc, std::ptr::without_provenance_mut(h), "cuModuleGetFunction: hfunc") }
    })
}

/// The attribute `attrib` (`CUfunction_attribute`) of a kernel.
fn function_attribute(c: &Config, k: &Kernel, attrib: u32) -> Result<i32, Fail> {
    let f = k.function();
    let product = |d: [u32; 3]| d.iter().product::<u32>();
    Ok(match attrib {
        0 => [
            Some(c.max_threads_per_block),
            f.maxntid.map(product),
            f.reqntid.map(product),
            Some(c.regs_per_sm / REGS_PER_THREAD),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(0) as i32,
        1 => k.module.static_smem_bytes as i32,
        2 => 0,
        3 => f.local_bytes as i32,
        4 => REGS_PER_THREAD as i32,
        5 => {
            let mut it = k.module.version.trim().split('.').map(|p| p.parse::<i32>().unwrap_or(0));
            let (ma, mi) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            ma * 10 + mi
        }
        6 => c.compute_capability.0 * 10 + c.compute_capability.1,
        7 => 0,
        8 => k.max_dynamic_smem() as i32,
        9 => -1,
        10..=15 => 0,
        _ => return Err(invalid(format!("cuFuncGetAttribute: unknown attribute {attrib}"))),
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncGetAttribute(value: *mut c_int, attrib: u32, f: CUfunction) -> CUresult {
    guard("cuFuncGetAttribute", || {
        let d = context()?;
        let k = d.kernel(f)?;
        let v = function_attribute(d.sim.config(), &k, attrib)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(value, v, "cuFuncGetAttribute: pi") }
    })
}

/// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES` sets the kernel's dynamic shared memory
/// limit; other attributes are accepted and have no effect.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncSetAttribute(f: CUfunction, attrib: u32, value: c_int) -> CUresult {
    guard("cuFuncSetAttribute", || {
        let d = context()?;
        let k = d.kernel(f)?;
        match attrib {
            8 => {
                let bytes = u32::try_from(value)
                    .map_err(|_| invalid(format!("cuFuncSetAttribute: {value} bytes of dynamic shared memory")))?;
                Ok(d.sim.set_max_dynamic_smem(&k, bytes)?)
            }
            0..=15 => Ok(()),
            _ => Err(invalid(format!("cuFuncSetAttribute: unknown attribute {attrib}"))),
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuFuncSetCacheConfig(f: CUfunction, _config: u32) -> CUresult {
    guard("cuFuncSetCacheConfig", || context()?.kernel(f).map(|_| ()))
}

/// Resident blocks per SM for `block` threads and `dynamic_smem` bytes, with
/// [`REGS_PER_THREAD`] registers per thread, [`THREADS_PER_SM`] threads, `Config::regs_per_sm`
/// registers and `max_smem_optin` + 1 KiB of shared memory per SM.
pub fn occupancy(c: &Config, k: &Kernel, block: u32, dynamic_smem: u64) -> u32 {
    if block == 0 || block > c.max_threads_per_block || dynamic_smem > k.max_dynamic_smem() as u64 {
        return 0;
    }
    let threads = block.div_ceil(32) * 32;
    let by_threads = THREADS_PER_SM / threads;
    let by_regs = c.regs_per_sm / (REGS_PER_THREAD * threads);
    let smem = k.module.static_smem_bytes as u64 + dynamic_smem + RESERVED_SMEM_PER_BLOCK as u64;
    let by_smem = ((c.max_smem_optin + RESERVED_SMEM_PER_BLOCK) as u64 / smem) as u32;
    by_threads.min(by_regs).min(by_smem).min(BLOCKS_PER_SM)
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
    blocks: *mut c_int,
    f: CUfunction,
    block: c_int,
    smem: usize,
    _flags: c_uint,
) -> CUresult {
    guard("cuOccupancyMaxActiveBlocksPerMultiprocessor", || {
        let d = context()?;
        let k = d.kernel(f)?;
        let block = u32::try_from(block)
            .map_err(|_| invalid(format!("cuOccupancyMaxActiveBlocksPerMultiprocessor: blockSize {block}")))?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(blocks, occupancy(d.sim.config(), &k, block, smem as u64) as c_int, "numBlocks") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveBlocksPerMultiprocessor(
    blocks: *mut c_int,
    f: CUfunction,
    block: c_int,
    smem: usize,
) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(blocks, f, block, smem, 0) }
}

/// The block size (a multiple of 32, or the limit) with the most resident threads per SM (the
/// largest such), and the grid that fills the device with it.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSizeWithFlags(
    min_grid: *mut c_int,
    block_size: *mut c_int,
    f: CUfunction,
    smem_of_block: Option<unsafe extern "C" fn(c_int) -> usize>,
    smem: usize,
    limit: c_int,
    _flags: c_uint,
) -> CUresult {
    guard("cuOccupancyMaxPotentialBlockSize", || {
        let d = context()?;
        let k = d.kernel(f)?;
        let c = d.sim.config();
        let max = function_attribute(c, &k, 0)? as u32;
        let limit = if limit > 0 { max.min(limit as u32) } else { max };
        let mut best = (0u32, 0u32);
        for b in (1..=limit.div_ceil(32)).rev().map(|w| (w * 32).min(limit)) {
            // SAFETY: the caller's callback, called as the driver would.
            let s = smem_of_block.map_or(smem, |cb| unsafe { cb(b as c_int) });
            let blocks = occupancy(c, &k, b, s as u64);
            if blocks * b > best.0 * best.1 {
                best = (blocks, b);
            }
        }
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe {
            put(min_grid, (best.0 * c.sm_count) as c_int, "minGridSize")?;
            put(block_size, best.1 as c_int, "blockSize")
        }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxPotentialBlockSize(
    min_grid: *mut c_int,
    block_size: *mut c_int,
    f: CUfunction,
    smem_of_block: Option<unsafe extern "C" fn(c_int) -> usize>,
    smem: usize,
    limit: c_int,
) -> CUresult {
    // SAFETY: the same arguments, under the same contract.
    unsafe { cuOccupancyMaxPotentialBlockSizeWithFlags(min_grid, block_size, f, smem_of_block, smem, limit, 0) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyAvailableDynamicSMemPerBlock(
    smem: *mut usize,
    f: CUfunction,
    blocks: c_int,
    block: c_int,
) -> CUresult {
    guard("cuOccupancyAvailableDynamicSMemPerBlock", || {
        let d = context()?;
        let k = d.kernel(f)?;
        let c = d.sim.config();
        if blocks <= 0 || block <= 0 {
            return Err(invalid("cuOccupancyAvailableDynamicSMemPerBlock: numBlocks and blockSize must be positive"));
        }
        let per_block = (c.max_smem_optin + RESERVED_SMEM_PER_BLOCK) / blocks as u32;
        let v = per_block.saturating_sub(RESERVED_SMEM_PER_BLOCK + k.module.static_smem_bytes).min(c.max_smem_optin);
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(smem, v as usize, "dynamicSmemSize") }
    })
}

/// `CUlaunchAttribute`: an id (`CUlaunchAttributeID`), padding, and a 64-byte value union.
#[repr(C)]
pub struct LaunchAttributeC {
    pub id: u32,
    pub pad: [u8; 4],
    pub value: [u64; 8],
}

/// `CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION`: the value's first three `unsigned int` are the
/// cluster shape.
pub const CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION: u32 = 4;

/// Clusters that can be resident at once for a launch of `f` with `config`: the SMs times the
/// resident blocks per SM (`occupancy`, for the config's block size and dynamic shared memory),
/// over the CTAs of a cluster. The cluster shape is the kernel's `.reqnctapercluster`, or a
/// `CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION` attribute of the config (which must agree with the
/// directive when both are given), else 1 × 1 × 1. The simulator has no GPCs: on a GPU the CTAs
/// of a cluster must be resident in one GPC, so fewer clusters may fit than this count.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuOccupancyMaxActiveClusters(
    num_clusters: *mut c_int,
    f: CUfunction,
    config: *const LaunchConfigC,
) -> CUresult {
    guard("cuOccupancyMaxActiveClusters", || {
        let d = context()?;
        let k = d.kernel(f)?;
        if config.is_null() {
            return Err(invalid("cuOccupancyMaxActiveClusters: config is null"));
        }
        // SAFETY: non-null, a `CUlaunchConfig` by the caller's contract.
        let cfg = unsafe { &*config };
        let mut dims = k.function().reqnctapercluster;
        if cfg.num_attrs != 0 {
            if cfg.attrs.is_null() {
                return Err(invalid("cuOccupancyMaxActiveClusters: config has attributes but attrs is null"));
            }
            // SAFETY: `numAttrs` attributes at `attrs`, by the caller's contract.
            let attrs =
                unsafe { std::slice::from_raw_parts(cfg.attrs as *const LaunchAttributeC, cfg.num_attrs as usize) };
            for a in attrs.iter().filter(|a| a.id == CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION) {
                let shape = [a.value[0] as u32, (a.value[0] >> 32) as u32, a.value[1] as u32];
                match dims {
                    Some(req) if req != shape => {
                        return Err(invalid(format!(
                            "cuOccupancyMaxActiveClusters: {}: cluster dimension attribute {shape:?} differs from the kernel's .reqnctapercluster {req:?}",
                            k.name()
                        )));
                    }
                    _ => dims = Some(shape),
                }
            }
        }
        let dims = dims.unwrap_or([1, 1, 1]);
        let size = dims.iter().map(|&v| v as u64).product::<u64>();
        if size == 0 || size > 8 {
            return Err(invalid(format!(
                "cuOccupancyMaxActiveClusters: {}: cluster shape {dims:?} (1 to 8 CTAs)",
                k.name()
            )));
        }
        let block = cfg.block.iter().map(|&v| v as u64).product::<u64>();
        if block == 0 {
            return Err(invalid(format!("cuOccupancyMaxActiveClusters: block {:?}", cfg.block)));
        }
        let c = d.sim.config();
        let per_sm = occupancy(c, &k, u32::try_from(block).unwrap_or(u32::MAX), cfg.shared_mem_bytes as u64);
        let n = c.sm_count as u64 * per_sm as u64 / size;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(num_clusters, n.min(i32::MAX as u64) as c_int, "numClusters") }
    })
}

// ---------------------------------------------------------------------------------------------
// Launches

/// Copies each parameter's bytes from `params[i]` into the kernel's parameter buffer and runs
/// the kernel to completion (or records the launch during capture).
unsafe fn launch(
    name: &str,
    f: CUfunction,
    grid: [u32; 3],
    block: [u32; 3],
    smem: u32,
    s: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> R {
    let d = context()?;
    let k = d.kernel(f)?;
    if !extra.is_null() {
        eprintln!("lowp-sim: {name}: the `extra` argument is not supported (pass kernelParams)");
        return Err(fail(
            CUDA_ERROR_NOT_SUPPORTED,
            format!("{name}: the `extra` argument is not supported (pass kernelParams)"),
        ));
    }
    let c = d.sim.config();
    let threads = block.iter().map(|&b| b as u64).product::<u64>();
    if grid.contains(&0)
        || block.contains(&0)
        || threads > c.max_threads_per_block as u64
        || block[2] > 64
        || grid[0] > i32::MAX as u32
        || grid[1] > 65535
        || grid[2] > 65535
    {
        return Err(invalid(format!(
            "{name}: {}: grid {grid:?} × block {block:?} is not a valid launch shape",
            k.name()
        )));
    }
    if smem > k.max_dynamic_smem() {
        return Err(invalid(format!(
            "{name}: {}: {smem} bytes of dynamic shared memory, over its limit of {} (cuFuncSetAttribute MAX_DYNAMIC_SHARED_SIZE_BYTES)",
            k.name(),
            k.max_dynamic_smem()
        )));
    }
    let mut buf = vec![0u8; k.param_bytes() as usize];
    if !k.params().is_empty() && params.is_null() {
        return Err(invalid(format!(
            "{name}: {} takes {} parameters; kernelParams is null",
            k.name(),
            k.params().len()
        )));
    }
    for (i, p) in k.params().iter().enumerate() {
        // SAFETY: `params` holds one pointer per kernel parameter (the caller's contract).
        let src = unsafe { *params.add(i) } as *const u8;
        let (at, size) = (p.offset as usize, p.size as usize);
        if src.is_null() {
            return Err(invalid(format!("{name}: {}: kernelParams[{i}] is null", k.name())));
        }
        let Some(dst) = buf.get_mut(at..at + size) else {
            return Err(invalid(format!("{name}: {}: parameter {i} lies outside the parameter buffer", k.name())));
        };
        // SAFETY: `src` points to the parameter's `size` bytes (the caller's contract).
        dst.copy_from_slice(unsafe { std::slice::from_raw_parts(src, size) });
    }
    let cfg = LaunchConfig { grid, block, dynamic_smem: smem };
    submit(d, name, s, Node::Launch { kernel: k, cfg, params: buf })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernel(
    f: CUfunction,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    smem: c_uint,
    s: CUstream,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuLaunchKernel", || unsafe {
        launch("cuLaunchKernel", f, [gx, gy, gz], [bx, by, bz], smem, s, params, extra)
    })
}

/// Every CTA of a launch is co-resident in the simulator: a cooperative launch is a launch.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchCooperativeKernel(
    f: CUfunction,
    gx: c_uint,
    gy: c_uint,
    gz: c_uint,
    bx: c_uint,
    by: c_uint,
    bz: c_uint,
    smem: c_uint,
    s: CUstream,
    params: *mut *mut c_void,
) -> CUresult {
    // SAFETY: the caller's pointers, valid under the driver's contract.
    guard("cuLaunchCooperativeKernel", || unsafe {
        launch("cuLaunchCooperativeKernel", f, [gx, gy, gz], [bx, by, bz], smem, s, params, std::ptr::null_mut())
    })
}

/// `CUlaunchConfig`.
#[repr(C)]
pub struct LaunchConfigC {
    pub grid: [c_uint; 3],
    pub block: [c_uint; 3],
    pub shared_mem_bytes: c_uint,
    pub stream: CUstream,
    pub attrs: *mut c_void,
    pub num_attrs: c_uint,
}

/// `cuLaunchKernelEx` without launch attributes (any attribute is `NOT_SUPPORTED`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuLaunchKernelEx(
    config: *const LaunchConfigC,
    f: CUfunction,
    params: *mut *mut c_void,
    extra: *mut *mut c_void,
) -> CUresult {
    guard("cuLaunchKernelEx", || {
        if config.is_null() {
            return Err(invalid("cuLaunchKernelEx: config is null"));
        }
        // SAFETY: non-null, a `CUlaunchConfig` by the caller's contract.
        let c = unsafe { &*config };
        if c.num_attrs != 0 {
            eprintln!("lowp-sim: cuLaunchKernelEx: launch attributes are not supported");
            return Err(fail(CUDA_ERROR_NOT_SUPPORTED, "cuLaunchKernelEx: launch attributes are not supported"));
        }
        // SAFETY: the caller's pointers, valid under the driver's contract.
        unsafe { launch("cuLaunchKernelEx", f, c.grid, c.block, c.shared_mem_bytes, c.stream, params, extra) }
    })
}

// ---------------------------------------------------------------------------------------------
// Stream capture and graphs

thread_local! {
    /// The calling thread's capture interaction mode (`cuThreadExchangeStreamCaptureMode`).
    static CAPTURE_MODE: Cell<u32> = const { Cell::new(CU_STREAM_CAPTURE_MODE_GLOBAL) };
}

/// An operation enqueued on a stream: run at once, or recorded by a capture and run by every
/// `cuGraphLaunch` of its graph.
#[derive(Clone)]
enum Node {
    /// A kernel with its own copy of the parameter buffer.
    Launch {
        kernel: Arc<Kernel>,
        cfg: LaunchConfig,
        params: Vec<u8>,
    },
    /// Reads `n` bytes at host address `src` when it runs.
    HtoD {
        dst: CUdeviceptr,
        src: usize,
        n: usize,
    },
    /// Writes `n` bytes to host address `dst` when it runs.
    DtoH {
        dst: usize,
        src: CUdeviceptr,
        n: usize,
    },
    DtoD {
        dst: CUdeviceptr,
        src: CUdeviceptr,
        n: usize,
    },
    /// `bytes` bytes of the low `width` bytes of `value`, repeated.
    Memset {
        dst: CUdeviceptr,
        value: u32,
        width: u64,
        bytes: u64,
    },
    Host {
        f: unsafe extern "C" fn(*mut c_void),
        data: usize,
    },
    Free {
        ptr: CUdeviceptr,
    },
}

/// A capture sequence in progress.
struct Capture {
    /// The stream it began on (where it must end).
    origin: usize,
    mode: u32,
    thread: std::thread::ThreadId,
    nodes: Vec<Node>,
    /// Allocations made on its streams (the graph's memory).
    memory: Vec<u64>,
    /// A refused call invalidated it: it records nothing more and ends without a graph.
    invalidated: bool,
}

/// A captured graph, shared by its handle and its executables.
struct Graph {
    nodes: Vec<Node>,
    memory: Vec<u64>,
}

/// The null stream (0) and `CU_STREAM_LEGACY` (1): never captured; work on them while a capture
/// forbids potentially unsafe calls is refused.
fn is_legacy(s: CUstream) -> bool {
    s.addr() < 2
}

/// Refuses a potentially unsafe call where the calling thread's capture mode forbids it
/// (`CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED`), invalidating this thread's captures.
fn forbid_during_capture(o: &mut Objects, name: &str) -> R {
    let mode = CAPTURE_MODE.get();
    if mode == CU_STREAM_CAPTURE_MODE_RELAXED || o.captures.is_empty() {
        return Ok(());
    }
    let me = std::thread::current().id();
    let mut refused = false;
    for c in o.captures.values_mut() {
        if c.thread == me && c.mode != CU_STREAM_CAPTURE_MODE_RELAXED {
            c.invalidated = true;
            refused = true;
        } else if c.thread != me && c.mode == CU_STREAM_CAPTURE_MODE_GLOBAL && mode == CU_STREAM_CAPTURE_MODE_GLOBAL {
            refused = true;
        }
    }
    if refused {
        return Err(fail(
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            format!(
                "{name} is not permitted while a stream captures (a potentially unsafe call in this thread's capture mode)"
            ),
        ));
    }
    Ok(())
}

/// Errors for a capture that was invalidated.
fn capture_open(o: &Objects, id: u64, name: &str) -> R {
    match o.captures.get(&id) {
        Some(c) if !c.invalidated => Ok(()),
        _ => Err(fail(
            CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
            format!("{name}: the stream's capture sequence was invalidated by an earlier error"),
        )),
    }
}

/// Enqueues `node` on `s`: records it if `s` captures, else runs it to completion.
fn submit(d: &Driver, name: &str, s: CUstream, node: Node) -> R {
    d.stream(s)?;
    {
        let mut o = d.objects();
        if is_legacy(s) {
            forbid_during_capture(&mut o, name)?;
        }
        if let Some(&id) = o.capturing.get(&s.addr()) {
            capture_open(&o, id, name)?;
            if let Some(c) = o.captures.get_mut(&id) {
                c.nodes.push(node);
            }
            return Ok(());
        }
    }
    run(d, name, &node)
}

/// Runs one operation to completion.
fn run(d: &Driver, name: &str, node: &Node) -> R {
    let mem = |r: Result<(), SimError>| r.map_err(|e| invalid(format!("{name}: {}", e.message)));
    match node {
        Node::Launch { kernel, cfg, params } => match d.sim.launch(kernel, cfg, params) {
            Ok(_) => Ok(()),
            Err(e) => {
                eprintln!("{e}");
                d.record(&e);
                Err(e.into())
            }
        },
        Node::HtoD { dst, src, n } => {
            // SAFETY: the caller's host pointer, valid for `n` bytes under the driver's contract
            // when it was enqueued; a captured copy reads it again at every replay, as the
            // driver's memcpy node does.
            let src = unsafe { host(std::ptr::with_exposed_provenance(*src), *n, &format!("{name}: srcHost"))? };
            mem(d.sim.write(*dst, src))
        }
        Node::DtoH { dst, src, n } => {
            // SAFETY: as for `HtoD`: the caller's host buffer, written at every replay.
            let dst =
                unsafe { host_mut(std::ptr::with_exposed_provenance_mut(*dst), *n, &format!("{name}: dstHost"))? };
            mem(d.sim.read(*src, dst))
        }
        Node::DtoD { dst, src, n } => mem(d.sim.copy(*dst, *src, *n as u64)),
        Node::Memset { dst, value, width, bytes } => {
            let pattern = &value.to_le_bytes()[..*width as usize];
            if pattern.iter().all(|&b| b == pattern[0]) {
                mem(d.sim.memset(*dst, pattern[0], *bytes))
            } else {
                let buf: Vec<u8> = pattern.iter().copied().cycle().take(*bytes as usize).collect();
                mem(d.sim.write(*dst, &buf))
            }
        }
        Node::Host { f, data } => {
            // SAFETY: the caller's function with the caller's data, as the driver would call it.
            unsafe { f(std::ptr::with_exposed_provenance_mut(*data)) };
            Ok(())
        }
        Node::Free { ptr } => free(name, *ptr),
    }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuThreadExchangeStreamCaptureMode(mode: *mut u32) -> CUresult {
    guard("cuThreadExchangeStreamCaptureMode", || {
        driver()?;
        if mode.is_null() {
            return Err(invalid("cuThreadExchangeStreamCaptureMode: mode is null"));
        }
        // SAFETY: non-null, the caller's in/out slot.
        let new = unsafe { mode.read_unaligned() };
        if new > CU_STREAM_CAPTURE_MODE_RELAXED {
            return Err(invalid(format!("cuThreadExchangeStreamCaptureMode: {new} is not a capture mode")));
        }
        let old = CAPTURE_MODE.replace(new);
        // SAFETY: as above.
        unsafe { put(mode, old, "cuThreadExchangeStreamCaptureMode: mode") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamBeginCapture_v2(s: CUstream, mode: u32) -> CUresult {
    guard("cuStreamBeginCapture_v2", || {
        let d = context()?;
        d.stream(s)?;
        if mode > CU_STREAM_CAPTURE_MODE_RELAXED {
            return Err(invalid(format!("cuStreamBeginCapture: {mode} is not a capture mode")));
        }
        if is_legacy(s) {
            return Err(fail(
                CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
                "cuStreamBeginCapture: the legacy stream cannot capture",
            ));
        }
        let mut o = d.objects();
        if o.capturing.contains_key(&s.addr()) {
            return Err(fail(
                CUDA_ERROR_ILLEGAL_STATE,
                format!("cuStreamBeginCapture: stream 0x{:x} is already capturing", s.addr()),
            ));
        }
        o.next_capture += 1;
        let id = o.next_capture;
        let thread = std::thread::current().id();
        o.captures.insert(
            id,
            Capture { origin: s.addr(), mode, thread, nodes: Vec::new(), memory: Vec::new(), invalidated: false },
        );
        o.capturing.insert(s.addr(), id);
        Ok(())
    })
}

/// `cuStreamBeginCapture` (the first ABI): global mode.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamBeginCapture(s: CUstream) -> CUresult {
    // SAFETY: the same stream, under the same contract.
    unsafe { cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL) }
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamEndCapture(s: CUstream, graph: *mut *mut c_void) -> CUresult {
    guard("cuStreamEndCapture", || {
        let d = context()?;
        d.stream(s)?;
        if graph.is_null() {
            return Err(invalid("cuStreamEndCapture: phGraph is null"));
        }
        let mut o = d.objects();
        let Some(&id) = o.capturing.get(&s.addr()) else {
            return Err(fail(
                CUDA_ERROR_ILLEGAL_STATE,
                format!("cuStreamEndCapture: stream 0x{:x} is not capturing", s.addr()),
            ));
        };
        let Some(c) = o.captures.get_mut(&id) else {
            return Err(fail(CUDA_ERROR_ILLEGAL_STATE, "cuStreamEndCapture: the capture sequence is gone"));
        };
        if c.origin != s.addr() {
            c.invalidated = true;
            return Err(fail(
                CUDA_ERROR_STREAM_CAPTURE_UNMATCHED,
                "cuStreamEndCapture: the capture did not begin on this stream",
            ));
        }
        if c.mode != CU_STREAM_CAPTURE_MODE_RELAXED && c.thread != std::thread::current().id() {
            return Err(fail(
                CUDA_ERROR_STREAM_CAPTURE_WRONG_THREAD,
                "cuStreamEndCapture: the capture began on another thread",
            ));
        }
        let Some(c) = o.captures.remove(&id) else { unreachable!("the capture was just found") };
        o.capturing.retain(|_, v| *v != id);
        for ev in o.events.values_mut() {
            if ev.captured == Some(id) {
                ev.captured = None;
            }
        }
        if c.invalidated {
            // The sequence's memory is freed with it.
            drop(o);
            for p in c.memory {
                let _ = d.sim.free(p);
            }
            // SAFETY: non-null, the caller's output slot.
            unsafe { put(graph, std::ptr::null_mut(), "cuStreamEndCapture: phGraph")? };
            return Err(fail(
                CUDA_ERROR_STREAM_CAPTURE_INVALIDATED,
                "cuStreamEndCapture: the capture sequence was invalidated by an earlier error",
            ));
        }
        o.graph_memory.extend(c.memory.iter().copied());
        let h = o.handle();
        o.graphs.insert(h, Arc::new(Graph { nodes: c.nodes, memory: c.memory }));
        // SAFETY: non-null, the caller's output slot.
        unsafe { put(graph, std::ptr::without_provenance_mut(h), "cuStreamEndCapture: phGraph") }
    })
}

/// The capture status (and the sequence's id) of a stream.
fn capture_status(s: CUstream) -> Result<(u32, u64), Fail> {
    let d = context()?;
    d.stream(s)?;
    let o = d.objects();
    Ok(match o.capturing.get(&s.addr()) {
        None => (CU_STREAM_CAPTURE_STATUS_NONE, 0),
        Some(&id) if o.captures.get(&id).is_some_and(|c| c.invalidated) => (CU_STREAM_CAPTURE_STATUS_INVALIDATED, id),
        Some(&id) => (CU_STREAM_CAPTURE_STATUS_ACTIVE, id),
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamIsCapturing(s: CUstream, status: *mut u32) -> CUresult {
    guard("cuStreamIsCapturing", || {
        let (st, _) = capture_status(s)?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(status, st, "cuStreamIsCapturing: captureStatus") }
    })
}

/// The first ABI: status and sequence id.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuStreamGetCaptureInfo(s: CUstream, status: *mut u32, id: *mut u64) -> CUresult {
    guard("cuStreamGetCaptureInfo", || {
        let (st, i) = capture_status(s)?;
        // SAFETY: `put` checks for null; the slots are the caller's output arguments.
        unsafe {
            put(status, st, "cuStreamGetCaptureInfo: captureStatus")?;
            if !id.is_null() {
                put(id, i, "cuStreamGetCaptureInfo: id")?;
            }
        }
        Ok(())
    })
}

/// Instantiation flags are accepted and have no effect (auto-free, upload, device launch, node
/// priority).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphInstantiateWithFlags(
    exec: *mut *mut c_void,
    graph: *mut c_void,
    flags: u64,
) -> CUresult {
    guard("cuGraphInstantiateWithFlags", || {
        let d = context()?;
        if exec.is_null() {
            return Err(invalid("cuGraphInstantiateWithFlags: phGraphExec is null"));
        }
        if flags & !0xf != 0 {
            return Err(invalid(format!("cuGraphInstantiateWithFlags: unknown flags 0x{flags:x}")));
        }
        let mut o = d.objects();
        let Some(g) = o.graphs.get(&graph.addr()).cloned() else {
            return Err(fail(
                CUDA_ERROR_INVALID_HANDLE,
                format!("cuGraphInstantiateWithFlags: 0x{:x} is not a graph", graph.addr()),
            ));
        };
        let h = o.handle();
        o.execs.insert(h, g);
        // SAFETY: non-null, the caller's output slot.
        unsafe { put(exec, std::ptr::without_provenance_mut(h), "cuGraphInstantiateWithFlags: phGraphExec") }
    })
}

/// Runs the graph's operations in order (on a capturing stream, records them).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphLaunch(exec: *mut c_void, s: CUstream) -> CUresult {
    guard("cuGraphLaunch", || {
        let d = context()?;
        d.stream(s)?;
        let g = d.objects().execs.get(&exec.addr()).cloned();
        let g = g.ok_or_else(|| {
            fail(CUDA_ERROR_INVALID_HANDLE, format!("cuGraphLaunch: 0x{:x} is not a graph executable", exec.addr()))
        })?;
        for node in &g.nodes {
            submit(d, "cuGraphLaunch", s, node.clone())?;
        }
        Ok(())
    })
}

/// Nothing to upload: checks the handles.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphUpload(exec: *mut c_void, s: CUstream) -> CUresult {
    guard("cuGraphUpload", || {
        let d = context()?;
        d.stream(s)?;
        if d.objects().execs.contains_key(&exec.addr()) {
            Ok(())
        } else {
            Err(fail(
                CUDA_ERROR_INVALID_HANDLE,
                format!("cuGraphUpload: 0x{:x} is not a graph executable", exec.addr()),
            ))
        }
    })
}

/// Drops a graph or an executable; the last of them frees the graph's memory.
fn destroy_graph(name: &str, execs: bool, h: *mut c_void) -> R {
    let d = driver()?;
    let mut o = d.objects();
    let table = if execs { &mut o.execs } else { &mut o.graphs };
    let Some(g) = table.remove(&h.addr()) else {
        return Err(fail(
            CUDA_ERROR_INVALID_HANDLE,
            format!("{name}: 0x{:x} is not a live {}", h.addr(), if execs { "graph executable" } else { "graph" }),
        ));
    };
    let Ok(g) = Arc::try_unwrap(g) else { return Ok(()) };
    let owned: Vec<u64> = g.memory.into_iter().filter(|p| o.graph_memory.remove(p)).collect();
    drop(o);
    for p in owned {
        let _ = d.sim.free(p);
    }
    Ok(())
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphDestroy(graph: *mut c_void) -> CUresult {
    guard("cuGraphDestroy", || destroy_graph("cuGraphDestroy", false, graph))
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuGraphExecDestroy(exec: *mut c_void) -> CUresult {
    guard("cuGraphExecDestroy", || destroy_graph("cuGraphExecDestroy", true, exec))
}

// ---------------------------------------------------------------------------------------------
// Tensor maps

/// Validates as the driver does and writes the simulator's encoding (see `tma`).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuTensorMapEncodeTiled(
    map: *mut [u8; 128],
    data_type: u32,
    rank: u32,
    addr: *mut c_void,
    dims: *const u64,
    strides: *const u64,
    boxes: *const u32,
    element_strides: *const u32,
    interleave: u32,
    swizzle: u32,
    l2_promotion: u32,
    oob_fill: u32,
) -> CUresult {
    guard("cuTensorMapEncodeTiled", || {
        context()?;
        let r = || -> Result<TensorMap, Fail> {
            if map.is_null() || map.addr() % 64 != 0 {
                return Err(invalid(format!(
                    "cuTensorMapEncodeTiled: tensorMap {map:p} is null or not 64-byte aligned"
                )));
            }
            if !(1..=5).contains(&rank) {
                return Err(invalid(format!("cuTensorMapEncodeTiled: tensorRank: {rank} is not in 1..=5")));
            }
            let n = rank as usize;
            if dims.is_null() || boxes.is_null() || element_strides.is_null() || (n > 1 && strides.is_null()) {
                return Err(invalid(
                    "cuTensorMapEncodeTiled: globalDim, globalStrides, boxDim or elementStrides is null",
                ));
            }
            // SAFETY: non-null arrays of `rank` (`rank - 1` for the strides) entries, by the
            // caller's contract.
            let (dims, strides, boxes, es) = unsafe {
                (
                    std::slice::from_raw_parts(dims, n),
                    if n > 1 { std::slice::from_raw_parts(strides, n - 1) } else { &[][..] },
                    std::slice::from_raw_parts(boxes, n),
                    std::slice::from_raw_parts(element_strides, n),
                )
            };
            Ok(TensorMap::tiled(
                data_type,
                rank,
                addr.addr() as u64,
                dims,
                strides,
                boxes,
                es,
                interleave,
                swizzle,
                l2_promotion,
                oob_fill,
            )?)
        };
        let m = r().inspect_err(|f| {
            eprintln!("{}", f.message.as_deref().unwrap_or("cuTensorMapEncodeTiled: invalid argument"))
        })?;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(map, m.encode(), "tensorMap") }
    })
}

#[unsafe(no_mangle)]
pub unsafe extern "C" fn cuTensorMapReplaceAddress(map: *mut [u8; 128], addr: *mut c_void) -> CUresult {
    guard("cuTensorMapReplaceAddress", || {
        context()?;
        if map.is_null() {
            return Err(invalid("cuTensorMapReplaceAddress: tensorMap is null"));
        }
        // SAFETY: non-null, 128 readable bytes by the caller's contract.
        let mut m = TensorMap::decode(&unsafe { map.read_unaligned() })?;
        let align = if m.interleave == crate::tma::Interleave::B32 { 32 } else { 16 };
        if addr.addr() % align != 0 {
            return Err(invalid(format!(
                "cuTensorMapReplaceAddress: globalAddress {addr:p} is not {align}-byte aligned"
            )));
        }
        m.global_address = addr.addr() as u64;
        // SAFETY: `put` checks for null; the slot is the caller's output argument.
        unsafe { put(map, m.encode(), "tensorMap") }
    })
}

// ---------------------------------------------------------------------------------------------
// Entry points the simulator does not model

/// Defines entry points that print their name and return `CUDA_ERROR_NOT_SUPPORTED`. They take
/// no arguments: on the C ABI a callee may ignore what its caller passes.
macro_rules! unsupported {
    ($($name:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub unsafe extern "C" fn $name() -> CUresult {
            guard(stringify!($name), || {
                let what = concat!(stringify!($name), " is not supported by the simulator");
                eprintln!("lowp-sim: {what}");
                Err(fail(CUDA_ERROR_NOT_SUPPORTED, what))
            })
        }
    )*};
}

unsupported!(
    cuGetProcAddress,
    cuGetProcAddress_v2,
    cuCtxCreate_v2,
    cuCtxCreate_v3,
    cuCtxCreate_v4,
    cuCtxDestroy_v2,
    cuModuleGetGlobal_v2,
    cuMemAllocManaged,
    cuMemAdvise_v2,
    cuMemPrefetchAsync_v2,
    cuMemAllocFromPoolAsync,
    cuMemPoolCreate,
    cuMemPoolDestroy,
    cuMemPoolTrimTo,
    cuMemPoolGetAttribute,
    cuMemPoolSetAttribute,
    cuDeviceGetDefaultMemPool,
    cuDeviceGetMemPool,
    cuDeviceSetMemPool,
    cuStreamAttachMemAsync,
    cuImportExternalMemory,
    cuExternalMemoryGetMappedBuffer,
    cuDestroyExternalMemory,
    cuOccupancyMaxPotentialClusterSize,
    cuPointerGetAttribute,
    cuMemcpy,
    cuMemcpyAsync,
);
