//! The driver API: the exported `cu*` functions called directly (through the rlib, with the
//! process-wide simulator of this test binary), and cudarc bound to the shared library.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::ptr::{null, null_mut};
use std::sync::{Mutex, MutexGuard};

use lowp_sim::capi::*;
use lowp_sim::tma::{Swizzle, TensorMap};

/// The direct tests share one simulator and its sticky error: they run one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The description `cuGetErrorString` gives for `code`.
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

/// The primary context, retained and current on this thread until dropped.
struct Ctx {
    _serial: MutexGuard<'static, ()>,
}

impl Ctx {
    fn new() -> Ctx {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let mut ctx = null_mut();
        // SAFETY: valid output slots.
        unsafe {
            ok(cuInit(0));
            ok(cuDevicePrimaryCtxRetain(&mut ctx, 0));
            ok(cuCtxSetCurrent(ctx));
        }
        Ctx { _serial: serial }
    }
}

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: no arguments to check.
        unsafe {
            cuCtxSetCurrent(null_mut());
            cuDevicePrimaryCtxRelease_v2(0);
        }
    }
}

fn alloc(bytes: usize) -> CUdeviceptr {
    let mut p = 0;
    // SAFETY: a valid output slot.
    ok(unsafe { cuMemAlloc_v2(&mut p, bytes) });
    p
}

#[test]
fn device_queries() {
    let _ctx = Ctx::new();
    let config = lowp_sim::Config::from_env();
    // SAFETY: every output pointer is a valid local.
    unsafe {
        let mut v = 0;
        ok(cuDriverGetVersion(&mut v));
        assert!(v == 12080 || v == 13000);
        ok(cuDeviceGetCount(&mut v));
        assert_eq!(v, 1);
        let mut dev = -1;
        ok(cuDeviceGet(&mut dev, 0));
        assert_eq!(dev, 0);
        assert_eq!(cuDeviceGet(&mut dev, 1), CUDA_ERROR_INVALID_DEVICE);
        let mut name = [0 as c_char; 128];
        ok(cuDeviceGetName(name.as_mut_ptr(), 128, 0));
        assert_eq!(CStr::from_ptr(name.as_ptr()).to_str().unwrap(), "lowp-sim");
        // A short buffer gets a truncated, terminated name.
        let mut short = [1 as c_char; 5];
        ok(cuDeviceGetName(short.as_mut_ptr(), 5, 0));
        assert_eq!(CStr::from_ptr(short.as_ptr()).to_str().unwrap(), "lowp");
        let mut total = 0usize;
        ok(cuDeviceTotalMem_v2(&mut total, 0));
        assert_eq!(total as u64, config.memory_bytes);
        let attr = |a: u32| {
            let mut v = -1;
            ok(cuDeviceGetAttribute(&mut v, a, 0));
            v
        };
        assert_eq!((attr(75), attr(76)), config.compute_capability);
        assert_eq!(attr(16), config.sm_count as i32);
        assert_eq!(attr(1), 1024);
        assert_eq!(attr(8), 48 << 10);
        assert_eq!(attr(97), config.max_smem_optin as i32);
        assert_eq!(attr(10), 32);
        assert_eq!(attr(12), 65536);
        assert_eq!(attr(82), 65536);
        assert_eq!(attr(115), 1);
        assert!(attr(38) >= 40 << 20);
        assert!(attr(13) > 0 && attr(36) > 0 && attr(37) > 0);
        assert_eq!(attr(5), i32::MAX);
        assert_eq!(attr(9999), 0);
        let mut uuid = [0u8; 16];
        ok(cuDeviceGetUuid(&mut uuid, 0));
        assert_ne!(uuid, [0; 16]);
        assert_eq!(cuDeviceGetAttribute(null_mut(), 1, 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuDeviceGetCount(null_mut()), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuInit(1), CUDA_ERROR_INVALID_VALUE);
    }
}

#[test]
fn contexts() {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: every output pointer is a valid local.
    unsafe {
        ok(cuInit(0));
        let mut cur: CUcontext = null_mut();
        ok(cuCtxGetCurrent(&mut cur));
        assert!(cur.is_null(), "a new thread has no current context");
        let mut p = 0;
        assert_eq!(cuMemAlloc_v2(&mut p, 16), CUDA_ERROR_INVALID_CONTEXT);
        let mut ctx = null_mut();
        ok(cuDevicePrimaryCtxRetain(&mut ctx, 0));
        assert!(!ctx.is_null());
        assert_eq!(cuCtxSetCurrent(0x1234 as CUcontext), CUDA_ERROR_INVALID_CONTEXT);
        ok(cuCtxSetCurrent(ctx));
        ok(cuCtxGetCurrent(&mut cur));
        assert_eq!(cur, ctx);
        let mut dev = -1;
        ok(cuCtxGetDevice(&mut dev));
        assert_eq!(dev, 0);
        ok(cuCtxSynchronize());
        // The stack: push the same context, pop it, the first stays current.
        ok(cuCtxPushCurrent_v2(ctx));
        let mut popped = null_mut();
        ok(cuCtxPopCurrent_v2(&mut popped));
        assert_eq!(popped, ctx);
        ok(cuCtxGetCurrent(&mut cur));
        assert_eq!(cur, ctx);
        // Another thread has its own current context.
        let other = std::thread::spawn(|| {
            let mut cur: CUcontext = 0x1 as CUcontext;
            ok(cuCtxGetCurrent(&mut cur));
            cur.is_null()
        });
        assert!(other.join().unwrap());
        ok(cuCtxSetCurrent(null_mut()));
        ok(cuCtxGetCurrent(&mut cur));
        assert!(cur.is_null());
        ok(cuDevicePrimaryCtxRelease_v2(0));
        assert_eq!(cuDevicePrimaryCtxRelease_v2(0), CUDA_ERROR_INVALID_CONTEXT, "released more than retained");
    }
    drop(serial);
}

#[test]
fn memory_round_trip() {
    let _ctx = Ctx::new();
    // SAFETY: host buffers are locals of the sizes passed.
    unsafe {
        let (mut free0, mut total) = (0usize, 0usize);
        ok(cuMemGetInfo_v2(&mut free0, &mut total));
        let a = alloc(1000);
        let b = alloc(1000);
        let mut free1 = 0usize;
        ok(cuMemGetInfo_v2(&mut free1, &mut total));
        assert!(free1 + 2000 <= free0);
        let src: Vec<u8> = (0..1000).map(|i| (i * 7) as u8).collect();
        ok(cuMemcpyHtoD_v2(a, src.as_ptr() as *const c_void, 1000));
        ok(cuMemcpyDtoDAsync_v2(b, a, 1000, null_mut()));
        let mut out = vec![0u8; 1000];
        ok(cuMemcpyDtoHAsync_v2(out.as_mut_ptr() as *mut c_void, b, 1000, null_mut()));
        assert_eq!(out, src);
        // Memsets: bytes, then 32-bit words with distinct bytes, in part of the buffer.
        ok(cuMemsetD8_v2(b, 0xab, 1000));
        ok(cuMemsetD32Async(b + 8, 0x0403_0201, 4, null_mut()));
        ok(cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, b, 1000));
        assert_eq!(&out[..8], &[0xab; 8]);
        assert_eq!(&out[8..24], &[1, 2, 3, 4].repeat(4)[..]);
        assert!(out[24..].iter().all(|&x| x == 0xab));
        assert_eq!(cuMemsetD32_v2(b + 2, 0, 1), CUDA_ERROR_INVALID_VALUE, "misaligned D32 memset");
        // Out of bounds: the message says where.
        assert_eq!(cuMemcpyHtoD_v2(a + 990, src.as_ptr() as *const c_void, 20), CUDA_ERROR_INVALID_VALUE);
        let msg = error_string(CUDA_ERROR_INVALID_VALUE);
        assert!(msg.contains("lowp-sim") && msg.contains("past its end"), "{msg}");
        assert_eq!(cuMemcpyDtoH_v2(null_mut(), a, 4), CUDA_ERROR_INVALID_VALUE);
        ok(cuMemcpyDtoH_v2(null_mut(), a, 0));
        ok(cuMemFree_v2(a));
        assert_eq!(cuMemFree_v2(a), CUDA_ERROR_INVALID_VALUE, "double free");
        assert!(error_string(CUDA_ERROR_INVALID_VALUE).contains("already freed"));
        assert_eq!(cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, a, 4), CUDA_ERROR_INVALID_VALUE, "use after free");
        ok(cuMemFreeAsync(b, null_mut()));
        ok(cuMemFree_v2(0));
        // Asynchronous allocation, 0 bytes included.
        let mut p = 0;
        ok(cuMemAllocAsync(&mut p, 0, null_mut()));
        assert_ne!(p, 0);
        ok(cuMemFreeAsync(p, null_mut()));
        assert_eq!(cuMemAlloc_v2(&mut p, 0), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuMemAlloc_v2(&mut p, 1 << 62), CUDA_ERROR_OUT_OF_MEMORY);
        // Host allocations.
        let mut h = null_mut();
        ok(cuMemHostAlloc(&mut h, 4096, 0));
        *(h as *mut u8) = 5;
        ok(cuMemFreeHost(h));
        assert_eq!(cuMemFreeHost(h), CUDA_ERROR_INVALID_VALUE);
    }
}

#[test]
fn streams_and_events() {
    let _ctx = Ctx::new();
    // SAFETY: output pointers are valid locals; handles come from the API or are deliberately
    // bogus (the API checks them).
    unsafe {
        let mut s = null_mut();
        ok(cuStreamCreate(&mut s, 1));
        ok(cuStreamSynchronize(s));
        ok(cuStreamQuery(s));
        let mut status = 7u32;
        ok(cuStreamIsCapturing(s, &mut status));
        assert_eq!(status, 0);
        for default in [0usize, 1, 2] {
            ok(cuStreamSynchronize(default as CUstream));
        }
        assert_eq!(cuStreamSynchronize(0xdead0 as CUstream), CUDA_ERROR_INVALID_HANDLE);

        let (mut e0, mut e1, mut untimed) = (null_mut(), null_mut(), null_mut());
        ok(cuEventCreate(&mut e0, 0));
        ok(cuEventCreate(&mut e1, 0));
        ok(cuEventCreate(&mut untimed, 2));
        let mut ms = -1.0f32;
        assert_eq!(cuEventElapsedTime(&mut ms, e0, e1), CUDA_ERROR_INVALID_HANDLE, "never recorded");
        ok(cuEventRecord(e0, s));
        std::thread::sleep(std::time::Duration::from_millis(5));
        ok(cuEventRecord(e1, null_mut()));
        ok(cuStreamWaitEvent(s, e1, 0));
        ok(cuEventSynchronize(e1));
        ok(cuEventQuery(e1));
        ok(cuEventElapsedTime(&mut ms, e0, e1));
        assert!((4.0..10_000.0).contains(&ms), "{ms} ms");
        ok(cuEventRecord(untimed, s));
        assert_eq!(cuEventElapsedTime(&mut ms, e0, untimed), CUDA_ERROR_INVALID_HANDLE, "timing disabled");
        assert_eq!(cuEventRecord(s, s), CUDA_ERROR_INVALID_HANDLE, "a stream is not an event");

        // Host functions run at once.
        unsafe extern "C" fn bump(data: *mut c_void) {
            // SAFETY: `data` is the test's counter.
            unsafe { *(data as *mut u32) += 1 };
        }
        let mut counter = 0u32;
        ok(cuLaunchHostFunc(s, Some(bump), &mut counter as *mut u32 as *mut c_void));
        assert_eq!(counter, 1);

        for e in [e0, e1, untimed] {
            ok(cuEventDestroy_v2(e));
        }
        assert_eq!(cuEventDestroy_v2(e0), CUDA_ERROR_INVALID_HANDLE);
        ok(cuStreamDestroy_v2(s));
        assert_eq!(cuStreamDestroy_v2(s), CUDA_ERROR_INVALID_HANDLE);
        assert_eq!(cuStreamSynchronize(s), CUDA_ERROR_INVALID_HANDLE);
    }
}

#[test]
fn error_names_and_strings() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // SAFETY: output pointers are valid locals; returned strings are static.
    unsafe {
        let mut s: *const c_char = null();
        ok(cuGetErrorName(700, &mut s));
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "CUDA_ERROR_ILLEGAL_ADDRESS");
        ok(cuGetErrorName(0, &mut s));
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "CUDA_SUCCESS");
        assert_eq!(cuGetErrorName(12345, &mut s), CUDA_ERROR_INVALID_VALUE);
        assert!(s.is_null());
        assert_eq!(cuGetErrorString(12345, &mut s), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuGetErrorName(1, null_mut()), CUDA_ERROR_INVALID_VALUE);
        assert!(error_string(CUDA_ERROR_NOT_SUPPORTED).contains("not supported"));
        // An entry point the simulator does not model.
        assert_eq!(cuCtxCreate_v2(), CUDA_ERROR_NOT_SUPPORTED);
        assert!(error_string(CUDA_ERROR_NOT_SUPPORTED).contains("cuCtxCreate_v2"));
    }
}

#[test]
fn tensor_map_encoding() {
    let _ctx = Ctx::new();
    #[repr(C, align(64))]
    struct Map([u8; 128]);
    let mut map = Map([0; 128]);
    let (dims, strides, boxes, es) = ([256u64, 64], [256u64], [128u32, 32], [1u32, 1]);
    // SAFETY: arrays of `rank` entries (`rank - 1` strides) and a 64-byte aligned map.
    unsafe {
        let encode = |map: *mut [u8; 128], addr: usize, boxes: &[u32; 2]| {
            cuTensorMapEncodeTiled(
                map,
                0,
                2,
                addr as *mut c_void,
                dims.as_ptr(),
                strides.as_ptr(),
                boxes.as_ptr(),
                es.as_ptr(),
                0,
                Swizzle::B128 as u32,
                3,
                0,
            )
        };
        ok(encode(&mut map.0, 0x10000, &boxes));
        let m = TensorMap::decode(&map.0).unwrap();
        assert_eq!(
            (m.rank, m.global_address, m.global_dim[1], m.box_dim[0], m.swizzle),
            (2, 0x10000, 64, 128, Swizzle::B128)
        );
        assert_eq!(encode(&mut map.0, 0x10008, &boxes), CUDA_ERROR_INVALID_VALUE);
        assert!(error_string(CUDA_ERROR_INVALID_VALUE).contains("globalAddress"));
        assert_eq!(
            encode(&mut map.0, 0x10000, &[256, 32]),
            CUDA_ERROR_INVALID_VALUE,
            "inner box over the swizzle span"
        );
        assert!(error_string(CUDA_ERROR_INVALID_VALUE).contains("boxDim"));
        let misaligned = (map.0.as_mut_ptr().wrapping_add(8)) as *mut [u8; 128];
        assert_eq!(encode(misaligned, 0x10000, &boxes), CUDA_ERROR_INVALID_VALUE);
        ok(cuTensorMapReplaceAddress(&mut map.0, 0x20000 as *mut c_void));
        assert_eq!(TensorMap::decode(&map.0).unwrap().global_address, 0x20000);
    }
}

/// `map_param(map, out)`: the tensor map is the kernel's first parameter (`__grid_constant__`);
/// thread 0 TMA-loads the 64 × 4 box at (0, 4) through its generic address (`cvta.param`), and
/// 16 threads copy the 256 bytes to `out`.
const MAP_PARAM_PTX: &str = "
.version 8.0
.target sm_90a
.address_size 64
.extern .shared .align 128 .b8 smem[];

.visible .entry map_param(
    .param .align 64 .b8 map_param_param_0[128],
    .param .u64 map_param_param_1
)
{
    .reg .pred %p<3>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;

    ld.param.u64 %rd1, [map_param_param_1];
    mov.b64 %rd5, map_param_param_0;
    cvta.param.u64 %rd5, %rd5;
    mov.u32 %r10, %tid.x;
    mov.u32 %r1, smem;
    add.s32 %r4, %r1, 256;
    setp.ne.u32 %p1, %r10, 0;
    @%p1 bra $L_inited;
    prefetch.tensormap [%rd5];
    mov.u32 %r5, 1;
    mbarrier.init.shared::cta.b64 [%r4], %r5;
$L_inited:
    bar.sync 0;
    @%p1 bra $L_wait;
    mov.u32 %r6, 256;
    mbarrier.arrive.expect_tx.shared::cta.b64 _, [%r4], %r6;
    mov.u32 %r2, 0;
    mov.u32 %r3, 4;
    cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%r1], [%rd5, {%r2, %r3}], [%r4];
$L_wait:
    mbarrier.try_wait.parity.shared::cta.b64 %p2, [%r4], 0;
    @!%p2 bra $L_wait;
    shl.b32 %r7, %r10, 4;
    add.s32 %r8, %r1, %r7;
    ld.shared.v4.u32 {%r11, %r12, %r13, %r14}, [%r8];
    cvt.u64.u32 %rd2, %r7;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.u32 [%rd3], {%r11, %r12, %r13, %r14};
    ret;
}
";

/// A tensor map encoded by `cuTensorMapEncodeTiled` and passed by value through `kernelParams`
/// (a 128-byte, 64-byte-aligned parameter) reaches the kernel's TMA load.
#[test]
fn tensor_map_passed_as_a_kernel_parameter() {
    let _ctx = Ctx::new();
    #[repr(C, align(64))]
    struct Map([u8; 128]);
    let mut map = Map([0; 128]);
    let data: Vec<u8> = (0..64 * 16u32).map(|i| (i * 13 + 5) as u8).collect();
    let (dims, strides, boxes, es) = ([64u64, 16], [64u64], [64u32, 4], [1u32, 1]);
    let ptx = format!("{MAP_PARAM_PTX}\0");
    // SAFETY: NUL-terminated PTX, valid output slots, host buffers of the sizes passed, arrays of
    // `rank` entries (`rank - 1` strides), a 64-byte aligned map, one pointer per kernel
    // parameter to a value of its size.
    unsafe {
        let (mut module, mut f) = (null_mut(), null_mut());
        ok(cuModuleLoadData(&mut module, ptx.as_ptr() as *const c_void));
        ok(cuModuleGetFunction(&mut f, module, c"map_param".as_ptr()));
        let tensor = alloc(data.len());
        ok(cuMemcpyHtoD_v2(tensor, data.as_ptr() as *const c_void, data.len()));
        ok(cuTensorMapEncodeTiled(
            &mut map.0,
            0,
            2,
            tensor as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            es.as_ptr(),
            0,
            Swizzle::None as u32,
            0,
            0,
        ));
        let out = alloc(256);
        let mut args: [*mut c_void; 2] = [map.0.as_mut_ptr() as *mut c_void, &out as *const u64 as *mut c_void];
        ok(cuLaunchKernel(f, 1, 1, 1, 16, 1, 1, 1024, null_mut(), args.as_mut_ptr(), null_mut()));
        let mut got = [0u8; 256];
        ok(cuMemcpyDtoH_v2(got.as_mut_ptr() as *mut c_void, out, 256));
        assert_eq!(&got[..], &data[4 * 64..8 * 64], "rows 4 to 7 of the tensor");
        ok(cuMemFree_v2(tensor));
        ok(cuMemFree_v2(out));
        ok(cuModuleUnload(module));
    }
}

/// A kernel that stores 7 at its parameter `p` (plus an offset given as a second parameter).
const STORE_PTX: &str = "
.version 8.0
.target sm_80
.address_size 64

.visible .entry store7(
    .param .u64 store7_param_0,
    .param .u32 store7_param_1
)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<4>;

    ld.param.u64 %rd1, [store7_param_0];
    ld.param.u32 %r1, [store7_param_1];
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    mov.u32 %r2, 7;
    st.global.u32 [%rd3], %r2;
    ret;
}
";

fn load_store7() -> (CUmodule, CUfunction) {
    let ptx = format!("{STORE_PTX}\0");
    let (mut module, mut f) = (null_mut(), null_mut());
    // SAFETY: NUL-terminated PTX and valid output slots.
    unsafe {
        ok(cuModuleLoadData(&mut module, ptx.as_ptr() as *const c_void));
        ok(cuModuleGetFunction(&mut f, module, c"store7".as_ptr()));
    }
    (module, f)
}

#[test]
fn modules_and_functions() {
    let _ctx = Ctx::new();
    let (module, f) = load_store7();
    // SAFETY: output pointers are valid locals; handles come from the API.
    unsafe {
        let mut g = null_mut();
        assert_eq!(cuModuleGetFunction(&mut g, module, c"nope".as_ptr()), CUDA_ERROR_NOT_FOUND);
        let attr = |a: u32| {
            let mut v = -1;
            ok(cuFuncGetAttribute(&mut v, a, f));
            v
        };
        assert_eq!(attr(0), 1024);
        assert_eq!(attr(4), 64);
        assert_eq!(attr(5), 80);
        assert_eq!(attr(8), 48 << 10);
        ok(cuFuncSetAttribute(f, 8, 100_000));
        assert_eq!(attr(8), 100_000);
        assert_eq!(cuFuncSetAttribute(f, 8, 1 << 20), CUDA_ERROR_INVALID_VALUE);
        // 256 threads with 64 registers: 4 blocks per SM by registers; 100 KB of shared memory: 2.
        let mut blocks = 0;
        ok(cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, f, 256, 0));
        assert_eq!(blocks, 4);
        ok(cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(&mut blocks, f, 256, 100_000, 0));
        assert_eq!(blocks, 2);
        ok(cuOccupancyMaxActiveBlocksPerMultiprocessor(&mut blocks, f, 2048, 0));
        assert_eq!(blocks, 0);
        // 1024 threads per SM fit the registers: the largest block that reaches them, under a limit.
        let (mut grid, mut block) = (0, 0);
        ok(cuOccupancyMaxPotentialBlockSize(&mut grid, &mut block, f, None, 0, 0));
        assert_eq!((grid, block), (lowp_sim::Config::from_env().sm_count as c_int, 1024));
        ok(cuOccupancyMaxPotentialBlockSize(&mut grid, &mut block, f, None, 0, 1000));
        assert_eq!(block, 512);
        // Bad PTX and images.
        let mut m2 = null_mut();
        assert_eq!(
            cuModuleLoadData(&mut m2, c".version 8.0\n.target sm_80\nthis is not ptx".as_ptr() as *const c_void),
            CUDA_ERROR_INVALID_PTX
        );
        assert_eq!(
            cuModuleLoadData(&mut m2, c"\x7fELF\x02\x01\x01".as_ptr() as *const c_void),
            CUDA_ERROR_NOT_SUPPORTED
        );
        assert_eq!(cuModuleLoadData(&mut m2, null()), CUDA_ERROR_INVALID_VALUE);
        ok(cuModuleUnload(module));
        assert_eq!(cuModuleUnload(module), CUDA_ERROR_INVALID_HANDLE);
        let mut v = 0;
        assert_eq!(cuFuncGetAttribute(&mut v, 0, f), CUDA_ERROR_INVALID_HANDLE, "function of an unloaded module");
    }
}

/// Three empty kernels: clusters of 4 and of 2 CTAs (`.reqnctapercluster`), and no cluster shape.
const CLUSTER_SHAPES_PTX: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n\
    .visible .entry c4() .reqnctapercluster 4, 1, 1\n{\n    ret;\n}\n\
    .visible .entry c2() .reqnctapercluster 2, 1, 1\n{\n    ret;\n}\n\
    .visible .entry plain()\n{\n    ret;\n}\n";

#[test]
fn occupancy_of_clusters() {
    // The simulator's `CUlaunchConfig` and `CUlaunchAttribute` have cudarc's layout.
    use cudarc::driver::sys;
    assert_eq!(size_of::<LaunchConfigC>(), size_of::<sys::CUlaunchConfig>());
    assert_eq!(size_of::<LaunchAttributeC>(), size_of::<sys::CUlaunchAttribute>());
    assert_eq!(
        CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION,
        sys::CUlaunchAttributeID::CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION as u32
    );

    let _ctx = Ctx::new();
    let sms = lowp_sim::Config::from_env().sm_count as c_int;
    let ptx = format!("{CLUSTER_SHAPES_PTX}\0");
    let mut module = null_mut();
    let (mut c4, mut c2, mut plain) = (null_mut(), null_mut(), null_mut());
    // SAFETY: NUL-terminated PTX and valid output slots.
    unsafe {
        ok(cuModuleLoadData(&mut module, ptx.as_ptr() as *const c_void));
        ok(cuModuleGetFunction(&mut c4, module, c"c4".as_ptr()));
        ok(cuModuleGetFunction(&mut c2, module, c"c2".as_ptr()));
        ok(cuModuleGetFunction(&mut plain, module, c"plain".as_ptr()));
    }
    let config = |block: u32, smem: u32| LaunchConfigC {
        grid: [8, 1, 1],
        block: [block, 1, 1],
        shared_mem_bytes: smem,
        stream: null_mut(),
        attrs: null_mut(),
        num_attrs: 0,
    };
    let clusters = |f: CUfunction, cfg: &LaunchConfigC| {
        let mut n = -1;
        // SAFETY: a valid output slot and config.
        ok(unsafe { cuOccupancyMaxActiveClusters(&mut n, f, cfg) });
        n
    };
    // 1024 threads of 64 registers fill an SM's registers: one block per SM, so with the
    // default 4 SMs one cluster of 4 CTAs, two of 2, four of 1.
    assert_eq!(clusters(c4, &config(1024, 0)), sms / 4);
    assert_eq!(clusters(c2, &config(1024, 0)), sms / 2);
    assert_eq!(clusters(plain, &config(1024, 0)), sms);
    // 256 threads: 4 blocks per SM; 100 KB of dynamic shared memory: 2 (once the kernel allows it).
    assert_eq!(clusters(c4, &config(256, 0)), sms);
    assert_eq!(clusters(c2, &config(256, 0)), 2 * sms);
    // SAFETY: a function handle from the API.
    ok(unsafe { cuFuncSetAttribute(c2, 8, 100_000) });
    assert_eq!(clusters(c2, &config(256, 100_000)), sms);
    // A block that cannot be resident: no cluster.
    assert_eq!(clusters(c2, &config(2048, 0)), 0);

    // The cluster-dimension launch attribute gives a kernel without the directive its shape;
    // with the directive it must agree.
    // The value's first three `unsigned int`: x, y, z.
    let shape = |x: u64| LaunchAttributeC {
        id: CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION,
        pad: [0; 4],
        value: [x | (1 << 32), 1, 0, 0, 0, 0, 0, 0],
    };
    let (mut two, mut sixteen) = (shape(2), shape(16));
    let with = |a: &mut LaunchAttributeC| LaunchConfigC {
        attrs: a as *mut LaunchAttributeC as *mut c_void,
        num_attrs: 1,
        ..config(1024, 0)
    };
    let with_attr = with(&mut two);
    assert_eq!(clusters(plain, &with_attr), sms / 2);
    assert_eq!(clusters(c2, &with_attr), sms / 2);
    let mut n = -1;
    // SAFETY: valid output slots and configs, or the null pointers under test.
    unsafe {
        assert_eq!(cuOccupancyMaxActiveClusters(&mut n, c4, &with_attr), CUDA_ERROR_INVALID_VALUE);
        assert!(error_string(CUDA_ERROR_INVALID_VALUE).contains("differs from the kernel's .reqnctapercluster"));
        assert_eq!(cuOccupancyMaxActiveClusters(&mut n, plain, &with(&mut sixteen)), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuOccupancyMaxActiveClusters(&mut n, c4, null()), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuOccupancyMaxActiveClusters(null_mut(), c4, &config(256, 0)), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuOccupancyMaxActiveClusters(&mut n, c4, &config(0, 0)), CUDA_ERROR_INVALID_VALUE);
        assert_eq!(cuOccupancyMaxActiveClusters(&mut n, null_mut(), &config(256, 0)), CUDA_ERROR_INVALID_HANDLE);
        ok(cuModuleUnload(module));
    }
}

/// Launches `store7(p, index)`.
fn launch_store7(f: CUfunction, p: CUdeviceptr, index: u32) -> CUresult {
    let mut args: [*mut c_void; 2] = [&p as *const u64 as *mut c_void, &index as *const u32 as *mut c_void];
    // SAFETY: one pointer per kernel parameter, each to a value of the parameter's size.
    unsafe { cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), args.as_mut_ptr(), null_mut()) }
}

#[test]
fn launch_and_sticky_error() {
    let ctx = Ctx::new();
    let (_module, f) = load_store7();
    let p = alloc(64);
    // SAFETY: host buffers are locals of the sizes passed.
    unsafe {
        ok(launch_store7(f, p, 3));
        let mut out = [0u32; 4];
        ok(cuMemcpyDtoH_v2(out.as_mut_ptr() as *mut c_void, p, 16));
        assert_eq!(out, [0, 0, 0, 7]);
        // Launch shape and parameter errors are not sticky.
        assert_eq!(
            cuLaunchKernel(f, 1, 1, 1, 2048, 1, 1, 0, null_mut(), null_mut(), null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuLaunchKernel(f, 1, 1, 1, 1, 1, 1, 0, null_mut(), null_mut(), null_mut()),
            CUDA_ERROR_INVALID_VALUE
        );
        assert_eq!(
            cuLaunchKernel(0x99 as CUfunction, 1, 1, 1, 1, 1, 1, 0, null_mut(), null_mut(), null_mut()),
            CUDA_ERROR_INVALID_HANDLE
        );
        ok(cuCtxSynchronize());
        // A store past the end faults, and the error sticks to the context.
        assert_eq!(launch_store7(f, p, 1 << 20), CUDA_ERROR_ILLEGAL_ADDRESS);
        let msg = error_string(CUDA_ERROR_ILLEGAL_ADDRESS);
        assert!(msg.contains("store7"), "the message names the kernel: {msg}");
        let mut q = 0;
        assert_eq!(cuMemAlloc_v2(&mut q, 16), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(cuCtxSynchronize(), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(launch_store7(f, p, 0), CUDA_ERROR_ILLEGAL_ADDRESS);
        assert_eq!(error_string(CUDA_ERROR_ILLEGAL_ADDRESS), msg, "a repeated sticky error keeps the launch's message");
        // Frees still work.
        ok(cuMemFree_v2(p));
    }
    // Releasing the last reference destroys the context; a new one works.
    drop(ctx);
    let _ctx = Ctx::new();
    let p = alloc(16);
    // SAFETY: a valid pointer.
    ok(unsafe { cuMemFree_v2(p) });
}

#[test]
fn install_finds_the_library() {
    let path = lowp_sim::install().expect("install");
    assert!(path.ends_with("liblowp_sim.so"), "{}", path.display());
    assert_eq!(lowp_sim::install().unwrap(), path, "idempotent");
    match lowp_sim::select_device() {
        Ok(lowp_sim::Device::Sim(p)) => assert_eq!(p, path),
        Ok(lowp_sim::Device::Gpu) => assert_ne!(std::env::var("LOWP_DEVICE").as_deref(), Ok("sim")),
        Err(e) => assert!(std::env::var("LOWP_DEVICE").is_ok_and(|v| !v.is_empty() && v != "sim"), "{e}"),
    }
}

/// cudarc, configured as lowp configures it, binds to the simulator's shared library: there is
/// no `libcuda.so` on a machine without the driver, so every call below reaches the simulator.
#[test]
fn cudarc_end_to_end() {
    use cudarc::driver::{CudaContext, LaunchConfig, PushKernelArg, sys};
    lowp_sim::install().expect("install");
    // SAFETY: only tries to load the library.
    assert!(unsafe { sys::is_culib_present() });
    let ctx = CudaContext::new(0).expect("CudaContext::new");
    if std::env::var("LOWP_DEVICE").as_deref() == Ok("gpu") {
        return;
    }
    assert_eq!(ctx.name().unwrap(), "lowp-sim");
    assert_eq!(CudaContext::device_count().unwrap(), 1);
    let config = lowp_sim::Config::from_env();
    assert_eq!(ctx.compute_capability().unwrap(), config.compute_capability);
    assert_eq!(
        ctx.attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).unwrap(),
        config.sm_count as i32
    );

    let stream = ctx.default_stream();
    let host: Vec<u32> = (0..1000).collect();
    let dev = stream.clone_htod(&host).unwrap();
    assert_eq!(stream.clone_dtoh(&dev).unwrap(), host);
    let zeros = stream.alloc_zeros::<f32>(77).unwrap();
    assert_eq!(stream.clone_dtoh(&zeros).unwrap(), vec![0.0; 77]);
    let copy = stream.clone_dtod(&dev).unwrap();
    assert_eq!(stream.clone_dtoh(&copy.slice(10..20)).unwrap(), (10..20).collect::<Vec<u32>>());

    // A second stream switches cudarc to event tracking between streams.
    let other = ctx.new_stream().unwrap();
    let mut moved = other.alloc_zeros::<u32>(1000).unwrap();
    other.memcpy_dtod(&dev, &mut moved).unwrap();
    other.synchronize().unwrap();
    assert_eq!(stream.clone_dtoh(&moved).unwrap(), host);
    let start = other.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap();
    let end = other.record_event(Some(sys::CUevent_flags::CU_EVENT_DEFAULT)).unwrap();
    assert!(start.elapsed_ms(&end).unwrap() >= 0.0);
    let (free, total) = ctx.mem_get_info().unwrap();
    assert!(free < total);

    // A launch through cudarc's builder.
    let module = ctx.load_module(cudarc::nvrtc::Ptx::from_src(STORE_PTX)).unwrap();
    let f = module.load_function("store7").unwrap();
    let mut out = stream.alloc_zeros::<u32>(8).unwrap();
    let cfg = LaunchConfig { grid_dim: (1, 1, 1), block_dim: (1, 1, 1), shared_mem_bytes: 0 };
    // SAFETY: store7 takes (u32*, u32) and writes out[5], inside the 8 elements.
    unsafe { stream.launch_builder(&f).arg(&mut out).arg(&5u32).launch(cfg) }.unwrap();
    assert_eq!(stream.clone_dtoh(&out).unwrap(), [0, 0, 0, 0, 0, 7, 0, 0]);

    // Occupancy of clusters: one block of 1024 threads per SM, clusters of 4 CTAs.
    let clustered = ctx.load_module(cudarc::nvrtc::Ptx::from_src(CLUSTER_SHAPES_PTX)).unwrap();
    let c4 = clustered.load_function("c4").unwrap();
    let cfg = LaunchConfig { grid_dim: (8, 1, 1), block_dim: (1024, 1, 1), shared_mem_bytes: 0 };
    assert_eq!(c4.occupancy_max_active_clusters(cfg, &stream).unwrap(), config.sm_count / 4);
    drop((dev, zeros, copy, moved, out));
    ctx.synchronize().unwrap();
}
