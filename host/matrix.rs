//! Typed device matrices: a shape and a row stride over a cudarc buffer.
//!
//! `Matrix<T>` owns a `CudaSlice<T>`; `Matrix<T, CudaView<'_, T>>` and
//! `Matrix<T, CudaViewMut<'_, T>>` wrap memory someone else owns (a framework's buffer, through
//! cudarc's `CudaSlice::as_view` / `as_view_mut`), without copying. Rows are `row_stride` elements apart; `cols`
//! counts storage units (for packed FP4, bytes: two values each).

use std::marker::PhantomData;
use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream, CudaView, CudaViewMut, DevicePtr, DevicePtrMut, DeviceSlice};

use crate::dtype::Element;
use crate::error::{CudaResultExt, Error, Result};
use crate::scale::{ScaleLayout, m_major_ld};

/// A row-major `rows × cols` matrix of `T` on the device, over a buffer `B`.
pub struct Matrix<T: Element, B = CudaSlice<T>> {
    buf: B,
    rows: usize,
    cols: usize,
    row_stride: usize,
    _t: PhantomData<T>,
}

impl<T: Element, B: DeviceSlice<T>> std::fmt::Debug for Matrix<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matrix<{}>[{}, {}; stride {}]", T::DTYPE, self.rows, self.cols, self.row_stride)
    }
}

/// Elements a `rows × cols` matrix with `row_stride` spans, or `None` on overflow.
pub(crate) fn span(rows: usize, cols: usize, row_stride: usize) -> Option<usize> {
    if rows == 0 || cols == 0 {
        return Some(0);
    }
    (rows - 1).checked_mul(row_stride)?.checked_add(cols)
}

impl<T: Element, B: DeviceSlice<T>> Matrix<T, B> {
    /// Wraps a contiguous `rows × cols` buffer (no copy).
    pub fn from_buffer(buf: B, rows: usize, cols: usize) -> Result<Self> {
        Self::from_buffer_strided(buf, rows, cols, cols)
    }

    /// Wraps a buffer whose rows start `row_stride` elements apart (no copy).
    pub fn from_buffer_strided(buf: B, rows: usize, cols: usize, row_stride: usize) -> Result<Self> {
        if row_stride < cols {
            return Err(Error::Shape {
                arg: "row_stride",
                expected: format!("at least cols = {cols}"),
                actual: row_stride.to_string(),
            });
        }
        let required = span(rows, cols, row_stride).ok_or_else(|| Error::Shape {
            arg: "shape",
            expected: "a matrix whose span fits in usize".into(),
            actual: format!("[{rows}, {cols}] with row stride {row_stride}"),
        })?;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { arg: "buf", required, actual: buf.len() });
        }
        Ok(Matrix { buf, rows, cols, row_stride, _t: PhantomData })
    }

    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns (storage units: bytes for packed FP4).
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[rows, cols]`.
    pub fn shape(&self) -> [usize; 2] {
        [self.rows, self.cols]
    }
    /// Elements from one row start to the next.
    pub fn row_stride(&self) -> usize {
        self.row_stride
    }
    /// Whether the rows are back to back (`row_stride == cols`, or at most one row).
    pub fn is_contiguous(&self) -> bool {
        self.row_stride == self.cols || self.rows <= 1
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

impl<T: Element> Matrix<T> {
    /// A new zero-filled contiguous matrix, allocated on `stream`.
    pub fn zeros(stream: &Arc<CudaStream>, rows: usize, cols: usize) -> Result<Self> {
        let n = rows.checked_mul(cols).ok_or_else(|| Error::Shape {
            arg: "shape",
            expected: "rows * cols to fit in usize".into(),
            actual: format!("[{rows}, {cols}]"),
        })?;
        let buf = stream.alloc_zeros::<T>(n).op("cuMemAllocAsync")?;
        Self::from_buffer(buf, rows, cols)
    }

    /// Copies a dense host `rows × cols` matrix to the device (asynchronously on `stream`, from a
    /// buffer cudarc keeps alive until the copy is done).
    pub fn from_host(stream: &Arc<CudaStream>, data: &[T], rows: usize, cols: usize) -> Result<Self> {
        let n = rows.saturating_mul(cols);
        if data.len() != n {
            return Err(Error::Shape {
                arg: "data",
                expected: format!("{n} elements for [{rows}, {cols}]"),
                actual: format!("{} elements", data.len()),
            });
        }
        let buf = stream.clone_htod(data).op("cuMemcpyHtoDAsync")?;
        Self::from_buffer(buf, rows, cols)
    }

    /// A read-only view of the same matrix (no copy).
    pub fn view(&self) -> Matrix<T, CudaView<'_, T>> {
        Matrix {
            buf: self.buf.as_view(),
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            _t: PhantomData,
        }
    }

    /// A writable view of the same matrix (no copy).
    pub fn view_mut(&mut self) -> Matrix<T, CudaViewMut<'_, T>> {
        Matrix {
            buf: self.buf.as_view_mut(),
            rows: self.rows,
            cols: self.cols,
            row_stride: self.row_stride,
            _t: PhantomData,
        }
    }

    /// Copies a host buffer laid out with `row_stride` (`data.len()` elements) to the device.
    pub fn from_host_strided(
        stream: &Arc<CudaStream>,
        data: &[T],
        rows: usize,
        cols: usize,
        row_stride: usize,
    ) -> Result<Self> {
        let required = span(rows, cols, row_stride).unwrap_or(usize::MAX);
        if row_stride >= cols && data.len() < required {
            return Err(Error::BufferTooSmall { arg: "data", required, actual: data.len() });
        }
        let buf = stream.clone_htod(data).op("cuMemcpyHtoDAsync")?;
        Self::from_buffer_strided(buf, rows, cols, row_stride)
    }
}

impl<T: Element, B: DevicePtr<T>> Matrix<T, B> {
    /// Copies the matrix to the host as a dense `rows × cols` vector. This waits for `stream`
    /// (with `Scales::to_host_raw` and `ErrorFlag::read`, one of the three calls that do).
    pub fn to_host(&self, stream: &Arc<CudaStream>) -> Result<Vec<T>> {
        let all = stream.clone_dtoh(&self.buf).op("cuMemcpyDtoH")?;
        stream.synchronize().op("cuStreamSynchronize")?;
        if self.is_contiguous() {
            let mut all = all;
            all.truncate(self.rows * self.cols);
            return Ok(all);
        }
        let mut out = Vec::with_capacity(self.rows * self.cols);
        for r in 0..self.rows {
            out.extend_from_slice(&all[r * self.row_stride..r * self.row_stride + self.cols]);
        }
        Ok(out)
    }

    /// Device address of the first element, for a kernel launched on `stream`. The guard must
    /// live until the launch is enqueued (it orders cudarc's multi-stream events).
    pub(crate) fn device_ptr<'a>(&'a self, stream: &'a CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'a>) {
        self.buf.device_ptr(stream)
    }
}

impl<T: Element, B: DevicePtrMut<T>> Matrix<T, B> {
    /// Device address for a kernel that writes the matrix (see `device_ptr`).
    pub(crate) fn device_ptr_mut<'a>(&'a mut self, stream: &'a CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'a>) {
        self.buf.device_ptr_mut(stream)
    }
}

/// `batch` contiguous `rows × cols` matrices of `T` back to back (`[batch, rows, cols]`,
/// row-major), over a buffer `B`: the weights of a grouped GEMM, `[experts, N, K]`.
pub struct MatrixBatch<T: Element, B = CudaSlice<T>> {
    buf: B,
    batch: usize,
    rows: usize,
    cols: usize,
    _t: PhantomData<T>,
}

impl<T: Element, B: DeviceSlice<T>> std::fmt::Debug for MatrixBatch<T, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MatrixBatch<{}>[{}, {}, {}]", T::DTYPE, self.batch, self.rows, self.cols)
    }
}

impl<T: Element, B: DeviceSlice<T>> MatrixBatch<T, B> {
    /// Wraps a contiguous `[batch, rows, cols]` buffer (no copy).
    pub fn from_buffer(buf: B, batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let required = batch.checked_mul(rows).and_then(|n| n.checked_mul(cols)).ok_or_else(|| Error::Shape {
            arg: "shape",
            expected: "batch * rows * cols to fit in usize".into(),
            actual: format!("[{batch}, {rows}, {cols}]"),
        })?;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { arg: "buf", required, actual: buf.len() });
        }
        Ok(MatrixBatch { buf, batch, rows, cols, _t: PhantomData })
    }
    /// Matrices in the batch.
    pub fn batch(&self) -> usize {
        self.batch
    }
    /// Rows of each matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns of each matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// `[batch, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.batch, self.rows, self.cols]
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
    /// All matrices as one `[batch · rows, cols]` matrix over the same buffer, by reference.
    #[allow(dead_code)]
    pub(crate) fn flat_rows(&self) -> usize {
        self.batch * self.rows
    }
}

impl<T: Element> MatrixBatch<T> {
    /// Copies a dense host `[batch, rows, cols]` array to the device (asynchronously on `stream`).
    pub fn from_host(stream: &Arc<CudaStream>, data: &[T], batch: usize, rows: usize, cols: usize) -> Result<Self> {
        let n = batch.saturating_mul(rows).saturating_mul(cols);
        if data.len() != n {
            return Err(Error::Shape {
                arg: "data",
                expected: format!("{n} elements for [{batch}, {rows}, {cols}]"),
                actual: format!("{} elements", data.len()),
            });
        }
        let buf = stream.clone_htod(data).op("cuMemcpyHtoDAsync")?;
        Self::from_buffer(buf, batch, rows, cols)
    }
    /// A read-only view (no copy).
    pub fn view(&self) -> MatrixBatch<T, CudaView<'_, T>> {
        MatrixBatch { buf: self.buf.as_view(), batch: self.batch, rows: self.rows, cols: self.cols, _t: PhantomData }
    }
}

impl<T: Element, B: DevicePtr<T>> MatrixBatch<T, B> {
    /// Device address of the first element, for a launch on `stream`.
    #[allow(dead_code)]
    pub(crate) fn device_ptr<'a>(&'a self, stream: &'a CudaStream) -> (u64, cudarc::driver::SyncOnDrop<'a>) {
        self.buf.device_ptr(stream)
    }
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
        check_layout(layout, rows, cols)?;
        let required = layout.required_len(rows, cols).ok_or_else(|| Error::Shape {
            arg: "layout",
            expected: "a scale tensor whose size fits in usize".into(),
            actual: format!("[{rows}, {cols}] {layout:?}"),
        })?;
        if buf.len() < required {
            return Err(Error::BufferTooSmall { arg: "buf", required, actual: buf.len() });
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
        check_layout(layout, rows, cols)?;
        let n = layout.required_len(rows, cols).ok_or_else(|| Error::Shape {
            arg: "layout",
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

/// `Shape` for an `ld` below the shape or a grouped layout of no group.
fn check_layout(layout: ScaleLayout, rows: usize, cols: usize) -> Result<()> {
    match layout {
        ScaleLayout::RowMajor { ld } if ld < cols => Err(Error::Shape {
            arg: "layout",
            expected: format!("a row-major ld >= cols = {cols}"),
            actual: format!("ld {ld}"),
        }),
        ScaleLayout::MMajor { ld } if ld < rows => Err(Error::Shape {
            arg: "layout",
            expected: format!("an M-major ld >= rows = {rows}"),
            actual: format!("ld {ld}"),
        }),
        ScaleLayout::GroupedSwizzled { groups: 0 } => {
            Err(Error::Shape { arg: "layout", expected: "at least one group".into(), actual: "0 groups".into() })
        }
        _ => Ok(()),
    }
}
