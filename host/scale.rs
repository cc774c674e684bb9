//! Scale tensors and the one rounding rule every quantizing family shares.
//!
//! A block-scaled format stores, next to its codes, one scale per block of elements. lowp's ops
//! take those scales as a [`Scales`]: a buffer together with its logical shape (`[rows, cols]`
//! scale elements, e.g. `[M, K / 128]`) and the [`ScaleLayout`] the buffer is in, so a layout an
//! op cannot read is an [`Error`](crate::Error), never a silent misread.

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice};

use crate::dtype::Element;
use crate::error::{CudaResultExt, Error, Result};

/// How a scale is derived from a block's largest magnitude `amax`, or a value rounded to a
/// power of two. One enum for every family; each op documents which variants it takes and
/// returns [`Error::InvalidValue`] for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleRounding {
    /// The scale as computed, in f32 (`amax / max`; FP8 quantizers with f32 scales).
    Exact,
    /// A power of two, rounded down: the OCP Microscaling rule `2^(⌊log2 amax⌋ − emax)` for MX
    /// formats (the largest value of a block may saturate); `2^⌊log2 x⌋` for casts to UE8M0.
    Floor,
    /// A power of two, rounded up, so that no value saturates: `2^⌈log2(amax / max)⌉` (the UE8M0
    /// recipe of the FP8 quantizers, the round-up variant of MX); `2^⌈log2 x⌉` for casts.
    Ceil,
}

/// Where scale `(r, c)` of a `[rows, cols]` scale tensor lives in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleLayout {
    /// At `r · ld + c`, `ld >= cols`.
    RowMajor {
        /// Elements from one row to the next.
        ld: usize,
    },
    /// At `c · ld + r`, `ld >= rows` (M-major: what cuBLAS and DeepGEMM read for activation
    /// scales; [`m_major_ld`] gives the TMA-friendly `ld`).
    MMajor {
        /// Elements from one column to the next.
        ld: usize,
    },
    /// The 128×4-swizzled tiles of block-scaled tensor-core GEMMs (cuBLAS, TensorRT-LLM):
    /// rows padded to 128 and columns to 4, padding written as zeros.
    Swizzled,
    /// Row groups (MoE experts) quantized in one launch: each group's scales are their own
    /// [`Swizzled`](ScaleLayout::Swizzled) region of `pad128(group rows)` rows, regions back to
    /// back; the op that writes them reports where each region starts.
    GroupedSwizzled {
        /// Number of row groups.
        groups: usize,
    },
}

impl ScaleLayout {
    /// Elements a buffer needs to hold `[rows, cols]` scales in this layout (for
    /// `GroupedSwizzled`, the worst case over every split of the rows into the groups), or
    /// `None` on overflow.
    pub fn required_len(self, rows: usize, cols: usize) -> Option<usize> {
        if rows == 0 || cols == 0 {
            return Some(0);
        }
        match self {
            ScaleLayout::RowMajor { ld } => (rows - 1).checked_mul(ld)?.checked_add(cols),
            ScaleLayout::MMajor { ld } => (cols - 1).checked_mul(ld)?.checked_add(rows),
            ScaleLayout::Swizzled => swizzled_len(rows, cols),
            ScaleLayout::GroupedSwizzled { groups } => swizzled_len(rows.checked_add(groups.checked_mul(127)?)?, cols),
        }
    }

    fn check(self, rows: usize, cols: usize) -> Result<()> {
        match self {
            ScaleLayout::RowMajor { ld } if ld < cols => Err(Error::Shape {
                arg: "scales",
                expected: format!("a row-major ld >= cols = {cols}"),
                actual: format!("ld {ld}"),
            }),
            ScaleLayout::MMajor { ld } if ld < rows => Err(Error::Shape {
                arg: "scales",
                expected: format!("an M-major ld >= rows = {rows}"),
                actual: format!("ld {ld}"),
            }),
            ScaleLayout::GroupedSwizzled { groups: 0 } => {
                Err(Error::Shape { arg: "scales", expected: "at least one group".into(), actual: "0 groups".into() })
            }
            _ => Ok(()),
        }
    }
}

/// Elements of the 128×4-swizzled layout of `[rows, cols]` scales.
fn swizzled_len(rows: usize, cols: usize) -> Option<usize> {
    rows.div_ceil(128).checked_mul(128)?.checked_mul(cols.div_ceil(4).checked_mul(4)?)
}

/// The leading dimension DeepGEMM uses for M-major scales: `rows` rounded up to 4 (16 bytes of
/// f32, as TMA needs).
pub fn m_major_ld(rows: usize) -> usize {
    rows.div_ceil(4) * 4
}

/// A `[rows, cols]` tensor of scales of type `S` in a [`ScaleLayout`], over a buffer `B` (owned
/// `CudaSlice<S>`, or a borrowed `CudaView`/`CudaViewMut`, no copy).
pub struct Scales<S: Element, B = CudaSlice<S>> {
    buf: B,
    rows: usize,
    cols: usize,
    layout: ScaleLayout,
    _s: PhantomData<S>,
}

impl<S: Element, B: DeviceSlice<S>> std::fmt::Debug for Scales<S, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Scales<{}>[{}, {}; {:?}]", S::DTYPE, self.rows, self.cols, self.layout)
    }
}

impl<S: Element, B: DeviceSlice<S>> Scales<S, B> {
    /// Wraps a buffer holding `[rows, cols]` scales in `layout` (no copy). `BufferTooSmall` if it
    /// is shorter than [`ScaleLayout::required_len`], `Shape` for an `ld` below the shape.
    pub fn from_buffer(buf: B, rows: usize, cols: usize, layout: ScaleLayout) -> Result<Self> {
        layout.check(rows, cols)?;
        let required = layout.required_len(rows, cols).ok_or_else(|| Error::Shape {
            arg: "scales",
            expected: "a scale tensor whose size fits in usize".into(),
            actual: format!("[{rows}, {cols}] {layout:?}"),
        })?;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { arg: "scales", required, actual: buf.len() });
        }
        Ok(Scales { buf, rows, cols, layout, _s: PhantomData })
    }

    /// Contiguous row-major scales (`ld = cols`).
    pub fn row_major(buf: B, rows: usize, cols: usize) -> Result<Self> {
        Self::from_buffer(buf, rows, cols, ScaleLayout::RowMajor { ld: cols })
    }

    /// M-major scales with `ld = m_major_ld(rows)`.
    pub fn m_major(buf: B, rows: usize, cols: usize) -> Result<Self> {
        Self::from_buffer(buf, rows, cols, ScaleLayout::MMajor { ld: m_major_ld(rows) })
    }

    /// 128×4-swizzled scales.
    pub fn swizzled(buf: B, rows: usize, cols: usize) -> Result<Self> {
        Self::from_buffer(buf, rows, cols, ScaleLayout::Swizzled)
    }

    /// Scales of row groups, each group's region swizzled (see [`ScaleLayout::GroupedSwizzled`]).
    pub fn grouped_swizzled(buf: B, rows: usize, cols: usize, groups: usize) -> Result<Self> {
        Self::from_buffer(buf, rows, cols, ScaleLayout::GroupedSwizzled { groups })
    }

    /// Scale rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Scale columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
    /// The layout of the buffer.
    pub fn layout(&self) -> ScaleLayout {
        self.layout
    }
    /// The buffer.
    pub fn buffer(&self) -> &B {
        &self.buf
    }
    /// The buffer, writable.
    pub fn buffer_mut(&mut self) -> &mut B {
        &mut self.buf
    }
    /// Gives the buffer back.
    pub fn into_buffer(self) -> B {
        self.buf
    }
}

impl<S: Element> Scales<S> {
    /// A new zero-filled buffer of exactly [`ScaleLayout::required_len`] elements, allocated on
    /// `stream`.
    pub fn zeros(stream: &Arc<CudaStream>, rows: usize, cols: usize, layout: ScaleLayout) -> Result<Self> {
        layout.check(rows, cols)?;
        let n = layout.required_len(rows, cols).ok_or_else(|| Error::Shape {
            arg: "scales",
            expected: "a scale tensor whose size fits in usize".into(),
            actual: format!("[{rows}, {cols}] {layout:?}"),
        })?;
        let buf = stream.alloc_zeros::<S>(n.max(1)).op("cuMemAllocAsync")?;
        Self::from_buffer(buf, rows, cols, layout)
    }

    /// A read-only view (no copy).
    pub fn view(&self) -> Scales<S, CudaView<'_, S>> {
        Scales { buf: self.buf.as_view(), rows: self.rows, cols: self.cols, layout: self.layout, _s: PhantomData }
    }

    /// A writable view (no copy).
    pub fn view_mut(&mut self) -> Scales<S, CudaViewMut<'_, S>> {
        Scales { buf: self.buf.as_view_mut(), rows: self.rows, cols: self.cols, layout: self.layout, _s: PhantomData }
    }
}

impl<S: Element, B: DevicePtr<S>> Scales<S, B> {
    /// The whole buffer, copied to the host in its layout. Waits for `stream`.
    pub fn to_host_raw(&self, stream: &Arc<CudaStream>) -> Result<Vec<S>> {
        let v = stream.clone_dtoh(&self.buf).op("cuMemcpyDtoH")?;
        stream.synchronize().op("cuStreamSynchronize")?;
        Ok(v)
    }

    /// Device address, for a launch on `stream` (the guard must outlive the enqueue).
    #[allow(dead_code)]
    pub(crate) fn device_ptr<'a>(&'a self, stream: &'a CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'a>) {
        self.buf.device_ptr(stream)
    }
}

impl<S: Element, B: DevicePtrMut<S>> Scales<S, B> {
    /// Device address for a kernel that writes the scales.
    #[allow(dead_code)]
    pub(crate) fn device_ptr_mut<'a>(&'a mut self, stream: &'a CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'a>) {
        self.buf.device_ptr_mut(stream)
    }
}
