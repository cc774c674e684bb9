//! Stream capture and graphs through the driver API: what a capture records, what a replay
//! reads, and the calls the driver refuses during capture.

use std::ffi::{CStr, c_char, c_void};
use std::ptr::{null, null_mut};
use std::sync::{Mutex, MutexGuard};

use lowp_sim::capi::*;

/// The tests share one simulator: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn error_string(code: CUresult) -> String {
    let mut s: *const c_char = null();
    // SAFETY: a valid output slot; the driver returns a NUL-terminated static string.
    unsafe {
        assert_eq!(cuGetErrorString(code, &mut s), CUDA_SUCCESS);
        CStr::from_ptr(s).to_string_lossy().into_owned()
    }
}

#[track_caller]
fn ok(r: CUresult) {
    assert_eq!(r, CUDA_SUCCESS, "{}", error_string(r));
}

/// The primary context, current on this thread, and a stream, until dropped.
struct Ctx {
    stream: CUstream,
    _serial: MutexGuard<'static, ()>,
}

impl Ctx {
    fn new() -> Ctx {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (mut ctx, mut stream) = (null_mut(), null_mut());
        // SAFETY: valid output slots.
        unsafe {
            ok(cuInit(0));
            ok(cuDevicePrimaryCtxRetain(&mut ctx, 0));
            ok(cuCtxSetCurrent(ctx));
            ok(cuStreamCreate(&mut stream, 1));
        }
        Ctx { stream, _serial: serial }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: handles from the API.
        unsafe {
            cuStreamDestroy_v2(self.stream);
            cuCtxSetCurrent(null_mut());
            cuDevicePrimaryCtxRelease_v2(0);
        }
    }
}

/// `dst[0] = src[0] + 1` (u32).
const INC_PTX: &str = "
.version 8.0
.target sm_80
.address_size 64

.visible .entry inc(
    .param .u64 inc_param_0,
    .param .u64 inc_param_1
)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<3>;

    ld.param.u64 %rd1, [inc_param_0];
    ld.param.u64 %rd2, [inc_param_1];
    ld.global.u32 %r1, [%rd1];
    add.s32 %r2, %r1, 1;
    st.global.u32 [%rd2], %r2;
    ret;
}
\0";

fn load_inc() -> CUfunction {
    let (mut module, mut f) = (null_mut(), null_mut());
    // SAFETY: NUL-terminated PTX and valid output slots.
    unsafe {
        ok(cuModuleLoadData(&mut module, INC_PTX.as_ptr() as *const c_void));
        ok(cuModuleGetFunction(&mut f, module, c"inc".as_ptr()));
    }
    f
}

fn alloc(bytes: usize) -> CUdeviceptr {
    let mut p = 0;
    // SAFETY: a valid output slot.
    ok(unsafe { cuMemAlloc_v2(&mut p, bytes) });
    p
}

fn read_u32(p: CUdeviceptr) -> u32 {
    let mut v = 0u32;
    // SAFETY: a 4-byte local.
    ok(unsafe { cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, p, 4) });
    v
}

fn status(s: CUstream) -> u32 {
    let mut st = 99;
    // SAFETY: a valid output slot.
    ok(unsafe { cuStreamIsCapturing(s, &mut st) });
    st
}

/// A captured upload, kernel and download run only at replay, and each replay reads the host
/// source again (the host pointer is recorded, not the bytes) and writes the host destination.
#[test]
fn capture_records_and_replays_with_host_pointers() {
    let ctx = Ctx::new();
    let s = ctx.stream;
    let inc = load_inc();
    let (src, dst) = (alloc(4), alloc(4));
    // Raw pointers the graph keeps: the host values are written and read through them only.
    let (mut host_in, mut host_out) = (10u32, 0u32);
    let (hin, hout) = (&raw mut host_in, &raw mut host_out);
    let (mut graph, mut exec) = (null_mut(), null_mut());
    // SAFETY: the host values outlive the graph's replays; output slots are locals; `hin` and
    // `hout` point to live locals.
    unsafe {
        ok(cuMemsetD32_v2(dst, 0, 1));
        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_ACTIVE);
        ok(cuMemcpyHtoDAsync_v2(src, hin as *const c_void, 4, s));
        {
            // The launch copies its parameters: `args` is gone when the graph replays.
            let mut args: [*mut c_void; 2] = [&src as *const u64 as *mut c_void, &dst as *const u64 as *mut c_void];
            ok(cuLaunchKernel(inc, 1, 1, 1, 1, 1, 1, 0, s, args.as_mut_ptr(), null_mut()));
        }
        ok(cuMemcpyDtoHAsync_v2(hout as *mut c_void, dst, 4, s));
        ok(cuStreamEndCapture(s, &mut graph));
        assert!(!graph.is_null());
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_NONE);
        assert_eq!((read_u32(dst), *hout), (0, 0), "nothing ran during capture");

        ok(cuGraphInstantiateWithFlags(&mut exec, graph, 0));
        ok(cuGraphLaunch(exec, s));
        assert_eq!((read_u32(dst), *hout), (11, 11));
        *hin = 41;
        ok(cuGraphLaunch(exec, s));
        assert_eq!((read_u32(dst), *hout), (42, 42), "the replay reads the host source again");

        ok(cuGraphExecDestroy(exec));
        ok(cuGraphDestroy(graph));
        assert_eq!(cuGraphLaunch(exec, s), CUDA_ERROR_INVALID_HANDLE);
        ok(cuMemFree_v2(src));
        ok(cuMemFree_v2(dst));
    }
}

/// Memory allocated on a capturing stream belongs to the graph: the same address at every replay,
/// its in-graph free a no-op, freed with the last of the graph and its executables.
#[test]
fn capture_owns_its_allocations() {
    let ctx = Ctx::new();
    let s = ctx.stream;
    let inc = load_inc();
    let out = alloc(4);
    let (mut graph, mut exec) = (null_mut(), null_mut());
    // SAFETY: output slots are locals; handles from the API.
    unsafe {
        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        let mut tmp = 0;
        ok(cuMemAllocAsync(&mut tmp, 4, s));
        ok(cuMemsetD32Async(tmp, 5, 1, s));
        let mut args: [*mut c_void; 2] = [&tmp as *const u64 as *mut c_void, &out as *const u64 as *mut c_void];
        ok(cuLaunchKernel(inc, 1, 1, 1, 1, 1, 1, 0, s, args.as_mut_ptr(), null_mut()));
        ok(cuMemFreeAsync(tmp, s));
        ok(cuStreamEndCapture(s, &mut graph));
        ok(cuGraphInstantiateWithFlags(&mut exec, graph, 0));
        ok(cuGraphDestroy(graph));
        for _ in 0..2 {
            ok(cuMemsetD32_v2(out, 0, 1));
            ok(cuGraphLaunch(exec, s));
            assert_eq!(read_u32(out), 6);
        }
        assert_eq!(read_u32(tmp), 5, "the graph's memory lives while an executable does");
        ok(cuGraphExecDestroy(exec));
        let mut v = 0u32;
        assert_eq!(
            cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, tmp, 4),
            CUDA_ERROR_INVALID_VALUE,
            "freed with the graph"
        );
        // Outside capture, stream-ordered allocations are freed at once.
        let mut q = 0;
        ok(cuMemAllocAsync(&mut q, 4, s));
        ok(cuMemFreeAsync(q, s));
        assert_eq!(cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, q, 4), CUDA_ERROR_INVALID_VALUE);
        ok(cuMemFree_v2(out));
    }
}

/// Synchronizing a capturing stream is refused and invalidates the capture: later work is refused
/// too, and the capture ends without a graph.
#[test]
fn synchronizing_a_capturing_stream_invalidates_the_capture() {
    let ctx = Ctx::new();
    let s = ctx.stream;
    let p = alloc(4);
    // SAFETY: output slots are locals.
    unsafe {
        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL));
        assert_eq!(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_GLOBAL), CUDA_ERROR_ILLEGAL_STATE);
        ok(cuMemsetD32Async(p, 1, 1, s));
        assert_eq!(cuStreamSynchronize(s), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_INVALIDATED);
        assert_eq!(cuMemsetD32Async(p, 2, 1, s), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
        let mut graph = std::ptr::dangling_mut::<c_void>();
        assert_eq!(cuStreamEndCapture(s, &mut graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
        assert!(graph.is_null());
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_NONE);
        assert_eq!(cuStreamEndCapture(s, &mut graph), CUDA_ERROR_ILLEGAL_STATE, "no capture in progress");
        ok(cuStreamSynchronize(s));
        ok(cuMemFree_v2(p));
        assert_eq!(
            cuStreamBeginCapture_v2(null_mut(), 0),
            CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED,
            "the legacy stream cannot capture"
        );
    }
}

/// Potentially unsafe calls (synchronous copies, `cuMemAlloc`, `cuCtxSynchronize`) are refused
/// while this thread captures in global or thread-local mode, allowed in relaxed mode; an event
/// recorded in a capture cannot be queried until the capture ends.
#[test]
fn unsafe_calls_and_captured_events() {
    let ctx = Ctx::new();
    let s = ctx.stream;
    let p = alloc(4);
    // SAFETY: output slots are locals; handles from the API.
    unsafe {
        let mut e = null_mut();
        ok(cuEventCreate(&mut e, 0));
        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        ok(cuEventRecord(e, s));
        assert_eq!(cuEventQuery(e), CUDA_ERROR_CAPTURED_EVENT);
        assert_eq!(cuEventSynchronize(e), CUDA_ERROR_CAPTURED_EVENT);
        ok(cuStreamWaitEvent(s, e, 0));
        let mut mode = CU_STREAM_CAPTURE_MODE_RELAXED;
        ok(cuThreadExchangeStreamCaptureMode(&mut mode));
        assert_eq!(mode, CU_STREAM_CAPTURE_MODE_GLOBAL);
        let q = alloc(4);
        ok(cuMemFree_v2(q));
        ok(cuThreadExchangeStreamCaptureMode(&mut mode));
        assert_eq!(mode, CU_STREAM_CAPTURE_MODE_RELAXED);
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_ACTIVE, "relaxed calls leave the capture alone");
        let mut v = 0u32;
        assert_eq!(cuMemcpyDtoH_v2(&mut v as *mut u32 as *mut c_void, p, 4), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
        assert_eq!(status(s), CU_STREAM_CAPTURE_STATUS_INVALIDATED);
        assert_eq!(cuCtxSynchronize(), CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED);
        let mut graph = null_mut();
        assert_eq!(cuStreamEndCapture(s, &mut graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
        ok(cuEventQuery(e));
        ok(cuCtxSynchronize());
        ok(cuEventDestroy_v2(e));
        ok(cuMemFree_v2(p));
    }
}

/// A stream that waits on an event recorded in a capture joins it (a fork): its work is part of
/// the graph; the capture ends on its origin stream only.
#[test]
fn forked_streams_join_the_capture() {
    let ctx = Ctx::new();
    let s = ctx.stream;
    let p = alloc(8);
    // SAFETY: output slots are locals; handles from the API.
    unsafe {
        let (mut side, mut fork, mut join) = (null_mut(), null_mut(), null_mut());
        ok(cuStreamCreate(&mut side, 1));
        ok(cuEventCreate(&mut fork, 0));
        ok(cuEventCreate(&mut join, 0));
        ok(cuMemsetD32_v2(p, 0, 2));
        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        ok(cuEventRecord(fork, s));
        ok(cuStreamWaitEvent(side, fork, 0));
        assert_eq!(status(side), CU_STREAM_CAPTURE_STATUS_ACTIVE);
        ok(cuMemsetD32Async(p + 4, 9, 1, side));
        ok(cuEventRecord(join, side));
        ok(cuStreamWaitEvent(s, join, 0));
        ok(cuMemsetD32Async(p, 3, 1, s));
        let mut graph = null_mut();
        assert_eq!(cuStreamEndCapture(side, &mut graph), CUDA_ERROR_STREAM_CAPTURE_UNMATCHED);
        assert_eq!(cuStreamEndCapture(s, &mut graph), CUDA_ERROR_STREAM_CAPTURE_INVALIDATED);
        assert_eq!((status(s), status(side)), (CU_STREAM_CAPTURE_STATUS_NONE, CU_STREAM_CAPTURE_STATUS_NONE));

        ok(cuStreamBeginCapture_v2(s, CU_STREAM_CAPTURE_MODE_THREAD_LOCAL));
        ok(cuEventRecord(fork, s));
        ok(cuStreamWaitEvent(side, fork, 0));
        ok(cuMemsetD32Async(p + 4, 9, 1, side));
        ok(cuEventRecord(join, side));
        ok(cuStreamWaitEvent(s, join, 0));
        ok(cuMemsetD32Async(p, 3, 1, s));
        ok(cuStreamEndCapture(s, &mut graph));
        assert_eq!(status(side), CU_STREAM_CAPTURE_STATUS_NONE, "the fork ends with the capture");
        assert_eq!((read_u32(p), read_u32(p + 4)), (0, 0));
        let mut exec = null_mut();
        ok(cuGraphInstantiateWithFlags(&mut exec, graph, 0));
        ok(cuGraphLaunch(exec, s));
        assert_eq!((read_u32(p), read_u32(p + 4)), (3, 9));
        ok(cuGraphExecDestroy(exec));
        ok(cuGraphDestroy(graph));
        for e in [fork, join] {
            ok(cuEventDestroy_v2(e));
        }
        ok(cuStreamDestroy_v2(side));
        ok(cuMemFree_v2(p));
    }
}
