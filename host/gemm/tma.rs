//! Tensor maps for the tensor memory accelerator (TMA): `cuTensorMapEncodeTiled` through cudarc,
//! and the device-resident cache the GEMMs read their maps from.
//!
//! # The map cache
//!
//! A kernel reads its tensor maps from global memory, so they must be in device memory before it
//! runs. Writing them on every call (an asynchronous copy from a host array) does not survive
//! CUDA-graph capture: the copy is captured as a memcpy node that reads the host array again at
//! every replay, long after the array is gone. Instead, each encoded pair of maps is written once
//! into device memory, outside any capture, and kept: later calls with the same operands (the
//! same addresses, shapes and strides) reuse it, so a captured launch refers to bytes that never
//! change. A call that needs a set not yet written, on a stream that is capturing, fails with
//! [`Error::GraphCapture`] (run the operation once before capturing it, as graph warm-up does).
//!
//! A set is the maps of one launch, 128 bytes each, contiguous: A and B, for an FP8 GEMM whose
//! activation scales the TMA loads the scales' map, and for a dense GEMM whose output the TMA
//! stores D's map last. The whole set (addresses included) is the key.
//!
//! The cache is process-wide, keyed by the `Lowp` handle's `Arc<CudaContext>` (handles made from
//! clones of one `Arc` share an entry), holding only a weak reference to it: the memory (128
//! bytes per map of each distinct set, in 16 KiB slabs) is not freed by lowp on its own, since a
//! captured graph may still read it; it goes when the caller
//! releases it ([`Lowp::release_tensor_maps`], in a stream's order, with its contract;
//! [`Lowp::tensor_map_bytes`] says how much there is) or with the CUDA context (a primary context
//! outlives a dropped handle while other users hold it, and the handle's maps stay there). A set is
//! written on the stream of the call that first needs it; a call on another stream waits for that
//! upload (an event), under capture by blocking the host until the upload is done, since a
//! captured stream cannot wait on work outside the capture.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use cudarc::driver::sys::{self, CUstreamCaptureMode, CUstreamCaptureStatus};
use cudarc::driver::{CudaContext, CudaStream, result};

use crate::context::Lowp;
use crate::error::{CudaResultExt, Error, Result};

/// An encoded `CUtensorMap` (128 opaque bytes; the kernels read it from global memory).
pub(crate) type TensorMapBytes = [u8; 128];

/// The element type and shared-memory layout of a map's boxes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MapKind {
    /// Bytes (E4M3 or bf16 operands seen as bytes), 128-byte swizzle (the wgmma operand layout).
    U8Swizzle128,
    /// f32 (scales), no swizzle: a box row lands as it is in global memory.
    F32,
    /// bf16 (the GEMM's output, stored from shared memory), swizzled over a box row of this many
    /// bytes (32, 64 or 128).
    Bf16Swizzle(u32),
}

/// Encodes a 2-D row-major matrix `[rows, inner]` of `kind`'s elements (row stride `stride`
/// bytes) read in boxes of `box_rows × box_inner` elements; out-of-bounds elements read zeros.
///
/// The driver must be loaded (a `Lowp` exists).
#[allow(clippy::too_many_arguments)]
pub(crate) fn encode_2d(
    arg: &'static str,
    kind: MapKind,
    addr: u64,
    inner: u64,
    rows: u64,
    stride: u64,
    box_inner: u32,
    box_rows: u32,
) -> Result<TensorMapBytes> {
    if addr % 16 != 0 {
        return Err(Error::Alignment { arg, required: 16, actual: addr });
    }
    if stride % 16 != 0 {
        return Err(Error::Alignment { arg, required: 16, actual: stride });
    }
    if stride >= TMA_MAX_STRIDE {
        return Err(Error::Shape {
            arg,
            expected: "a row stride below 2^40 bytes".into(),
            actual: format!("{stride} bytes"),
        });
    }
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let dims = [inner, rows];
    let strides = [stride];
    let boxes = [box_inner, box_rows];
    let elem_strides = [1u32, 1];
    let (data_type, swizzle) = match kind {
        MapKind::U8Swizzle128 => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_UINT8,
            sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
        ),
        MapKind::F32 => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
            sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_NONE,
        ),
        MapKind::Bf16Swizzle(span) => (
            sys::CUtensorMapDataType_enum::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            match span {
                32 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_32B,
                64 => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_64B,
                _ => sys::CUtensorMapSwizzle_enum::CU_TENSOR_MAP_SWIZZLE_128B,
            },
        ),
    };
    // SAFETY: every pointer refers to a live local of the length the call reads (rank 2: two
    // dims, one stride, two box sizes, two element strides); the map is written, not read.
    let r = unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            data_type,
            2,
            addr as *mut std::ffi::c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            elem_strides.as_ptr(),
            sys::CUtensorMapInterleave_enum::CU_TENSOR_MAP_INTERLEAVE_NONE,
            swizzle,
            sys::CUtensorMapL2promotion_enum::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            sys::CUtensorMapFloatOOBfill_enum::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
    };
    r.result().map_err(|source| Error::Cuda { op: "cuTensorMapEncodeTiled", source })?;
    let mut bytes = [0u8; 128];
    for (i, w) in map.opaque.iter().enumerate() {
        bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    Ok(bytes)
}

/// A 2-D matrix as a tensor map sees it (the arguments of [`encode_2d`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Map2d {
    pub arg: &'static str,
    pub kind: MapKind,
    pub addr: u64,
    /// Elements per row, rows, row stride in bytes.
    pub inner: u64,
    pub rows: u64,
    pub stride: u64,
    /// Box: elements per row, rows.
    pub box_inner: u32,
    pub box_rows: u32,
}

impl Map2d {
    fn encode(&self) -> Result<TensorMapBytes> {
        encode_2d(self.arg, self.kind, self.addr, self.inner, self.rows, self.stride, self.box_inner, self.box_rows)
    }
}

/// Bytes of device memory allocated at a time for map sets.
const SLAB_BYTES: usize = 16 << 10;
/// One map; a multiple of the 64-byte alignment TMA needs, so every map of a set is aligned.
const MAP_BYTES: usize = 128;
/// The most maps of one launch (A, B, the activation scales, D).
pub(crate) const MAX_MAPS: usize = 4;
/// The TMA's bound on a global row stride: below 2^40 bytes.
pub(crate) const TMA_MAX_STRIDE: u64 = 1 << 40;

/// An event recorded after an upload, until the upload is known to be complete. The handle is
/// only used while its context is alive (its cache entry is dropped with the context).
struct Upload(sys::CUevent);

// SAFETY: a CUDA event handle may be used from any thread; the cache's mutex serializes its use.
unsafe impl Send for Upload {}

struct Written {
    addr: u64,
    upload: Option<Upload>,
}

/// The cache of one context.
struct ContextMaps {
    ctx: Weak<CudaContext>,
    sets: HashMap<Vec<Map2d>, Written>,
    /// The unused part of the newest slab: (address, bytes).
    spare: (u64, usize),
    /// Every slab's address (each `SLAB_BYTES`).
    slabs: Vec<u64>,
}

static CACHE: Mutex<Vec<ContextMaps>> = Mutex::new(Vec::new());

/// Where `ctx`'s entry is in the cache, if it has one.
fn entry_of(cache: &[ContextMaps], ctx: &Arc<CudaContext>) -> Option<usize> {
    cache.iter().position(|c| std::ptr::eq(c.ctx.as_ptr(), Arc::as_ptr(ctx)))
}

/// Runs `f` with this thread's capture interaction mode relaxed: event queries and waits are
/// then allowed while any stream captures (they concern work outside the capture).
fn relaxed<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let mut mode = CUstreamCaptureMode::CU_STREAM_CAPTURE_MODE_RELAXED;
    // SAFETY: a valid in/out slot.
    unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) }.result().op("cuThreadExchangeStreamCaptureMode")?;
    let r = f();
    // SAFETY: as above; restores the previous mode.
    unsafe { sys::cuThreadExchangeStreamCaptureMode(&mut mode) }.result().op("cuThreadExchangeStreamCaptureMode")?;
    r
}

/// Orders `stream` after `upload`: nothing if it is complete, else a stream wait or, under
/// capture, a host wait. Returns whether it may still be pending (for other streams); once it is
/// known complete, the event is destroyed.
fn settle(upload: &Upload, stream: &CudaStream, capturing: bool) -> Result<bool> {
    relaxed(|| {
        // SAFETY: a live event of the current context (see `Upload`).
        let done = match unsafe { result::event::query(upload.0) } {
            Ok(()) => true,
            Err(e) if e.0 == sys::cudaError_enum::CUDA_ERROR_NOT_READY => false,
            Err(e) => return Err(Error::Cuda { op: "cuEventQuery", source: e }),
        };
        if !done && !capturing {
            // SAFETY: a live stream and event of the current context.
            unsafe {
                result::stream::wait_event(stream.cu_stream(), upload.0, sys::CUevent_wait_flags::CU_EVENT_WAIT_DEFAULT)
            }
            .op("cuStreamWaitEvent")?;
            return Ok(true);
        }
        if !done {
            // SAFETY: as above.
            unsafe { result::event::synchronize(upload.0) }.op("cuEventSynchronize")?;
        }
        // SAFETY: as above; the caller drops `upload` on `false`.
        unsafe { result::event::destroy(upload.0) }.op("cuEventDestroy")?;
        Ok(false)
    })
}

/// The device address of the tensor maps `maps` (one to [`MAX_MAPS`], 128 bytes each, in order),
/// written once per context and kept (see the module's documentation); `op` names the operation
/// for [`Error::GraphCapture`].
pub(crate) fn device_maps(lowp: &Lowp, stream: &Arc<CudaStream>, op: &'static str, maps: &[Map2d]) -> Result<u64> {
    let ctx = lowp.context();
    ctx.bind_to_thread().op("cuCtxSetCurrent")?;
    let capturing =
        stream.capture_status().op("cuStreamIsCapturing")? != CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE;
    debug_assert!((1..=MAX_MAPS).contains(&maps.len()));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.retain(|c| c.ctx.strong_count() > 0);
    let at = match entry_of(&cache, ctx) {
        Some(i) => i,
        None => {
            cache.push(ContextMaps {
                ctx: Arc::downgrade(ctx),
                sets: HashMap::new(),
                spare: (0, 0),
                slabs: Vec::new(),
            });
            cache.len() - 1
        }
    };
    let cached = &mut cache[at];
    if let Some(set) = cached.sets.get_mut(maps) {
        if let Some(upload) = &set.upload {
            if !settle(upload, stream, capturing)? {
                set.upload = None;
            }
        }
        return Ok(set.addr);
    }
    if capturing {
        return Err(Error::GraphCapture {
            op,
            why: "its tensor maps for these operands (addresses, shapes, strides) are not on the device yet; run it once outside capture first",
        });
    }
    let len = maps.len() * MAP_BYTES;
    let mut bytes = [0u8; MAX_MAPS * MAP_BYTES];
    for (i, m) in maps.iter().enumerate() {
        bytes[i * MAP_BYTES..(i + 1) * MAP_BYTES].copy_from_slice(&m.encode()?);
    }
    if cached.spare.1 < len {
        // SAFETY: the slab is only ever written by the uploads below before it is read.
        let slab = unsafe { stream.alloc::<u8>(SLAB_BYTES) }.op("cuMemAllocAsync")?.leak();
        cached.slabs.push(slab);
        cached.spare = (slab, SLAB_BYTES);
    }
    let addr = cached.spare.0;
    cached.spare = (addr + len as u64, cached.spare.1 - len);
    // The copy from pageable memory is staged before the call returns, so `bytes` may go.
    // SAFETY: `addr` has `len` bytes of this context's memory; `stream` is live.
    unsafe { result::memcpy_htod_async(addr, &bytes[..len], stream.cu_stream()) }.op("cuMemcpyHtoDAsync")?;
    let event = result::event::create(sys::CUevent_flags::CU_EVENT_DISABLE_TIMING).op("cuEventCreate")?;
    // SAFETY: a live event and stream of the current context.
    unsafe { result::event::record(event, stream.cu_stream()) }.op("cuEventRecord")?;
    cached.sets.insert(maps.to_vec(), Written { addr, upload: Some(Upload(event)) });
    Ok(addr)
}

/// Bytes of device memory the map cache holds for `ctx` (whole slabs).
pub(crate) fn cached_bytes(ctx: &Arc<CudaContext>) -> usize {
    let cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    entry_of(&cache, ctx).map_or(0, |at| cache[at].slabs.len() * SLAB_BYTES)
}

/// Frees the map cache of `ctx` in `stream`'s order (`cuMemFreeAsync`) and returns the bytes
/// freed: later calls write their maps again. Nothing else is synchronized or waited for.
///
/// # Safety
/// Nothing reads the freed maps after `stream`'s current point: every GEMM of this cache launched
/// on another stream is ordered before it (complete, or awaited through an event), no CUDA graph
/// captured with a GEMM of this cache is launched after this call, and no GEMM of this cache is
/// being called on another thread meanwhile.
pub(crate) unsafe fn release(ctx: &Arc<CudaContext>, stream: &CudaStream) -> Result<usize> {
    ctx.bind_to_thread().op("cuCtxSetCurrent")?;
    if stream.capture_status().op("cuStreamIsCapturing")? != CUstreamCaptureStatus::CU_STREAM_CAPTURE_STATUS_NONE {
        return Err(Error::GraphCapture {
            op: "release_tensor_maps",
            why: "its frees would be captured into the graph; call it on a stream that is not capturing",
        });
    }
    let cached = {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        match entry_of(&cache, ctx) {
            Some(at) => cache.swap_remove(at),
            None => return Ok(0),
        }
    };
    // Every event and slab is let go even if one fails; the first error is returned.
    let mut first = Ok(());
    for set in cached.sets.into_values() {
        if let Some(upload) = set.upload {
            // SAFETY: a live event of this context; destroying it while its work is pending is
            // allowed (its resources go once the work completes).
            let r = unsafe { result::event::destroy(upload.0) }.op("cuEventDestroy");
            first = first.and(r);
        }
    }
    for &slab in &cached.slabs {
        // SAFETY: a slab of this context that nothing reads after the stream's current point
        // (the caller's contract); its uploads were on streams ordered before that point too
        // (each before a launch that read it).
        let r = unsafe { result::free_async(slab, stream.cu_stream()) }.op("cuMemFreeAsync");
        first = first.and(r);
    }
    first.map(|()| cached.slabs.len() * SLAB_BYTES)
}
