//! Argument checking of the microscaling ops: pure functions from shapes, strides, addresses and
//! lengths to the kernels' parameter structs, unit-tested without a GPU
//! (`host/tests/microscaling_plan.rs`).

use crate::abi::{
    MX_BLOCK, MX_FLAG_ROUND_UP, MX_FLAG_SWIZZLED, MX_FLAG_VECTORIZED, MX_MAX_GROUPS, MxAmaxParams, MxDequantizeParams,
    MxQuantizeParams, MxSwizzleParams, NVFP4_BLOCK,
};
use crate::error::{Error, Result};
use crate::scale::{ScaleLayout, ScaleRounding};
use crate::validate::mx_round_up;

/// The three formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    Nvfp4,
    Mxfp4,
    Mxfp8,
}

impl Format {
    pub(crate) fn block(self) -> usize {
        if self == Format::Nvfp4 { NVFP4_BLOCK as usize } else { MX_BLOCK as usize }
    }
    /// Code bytes per row of `k` elements.
    pub(crate) fn code_cols(self, k: usize) -> usize {
        if self == Format::Mxfp8 { k } else { k / 2 }
    }
    /// The alignment the quantizers' vector path needs for code rows: each lane stores the codes
    /// of 8 elements at once (4 bytes of FP4, 8 of FP8).
    fn code_align(self) -> usize {
        match self {
            Format::Nvfp4 | Format::Mxfp4 => 4,
            Format::Mxfp8 => 8,
        }
    }
    /// The alignment the dequantizers' vector path needs for code rows: each thread loads the
    /// codes of one block (8 bytes NVFP4, 16 MXFP4, 32 MXFP8) with 8- or 16-byte loads.
    fn block_code_align(self) -> usize {
        match self {
            Format::Nvfp4 => 8,
            Format::Mxfp4 | Format::Mxfp8 => 16,
        }
    }
    pub(crate) fn name(self) -> &'static str {
        match self {
            Format::Nvfp4 => "nvfp4",
            Format::Mxfp4 => "mxfp4",
            Format::Mxfp8 => "mxfp8",
        }
    }
    fn block_name(self) -> &'static str {
        match self {
            Format::Nvfp4 => "16-element NVFP4 block",
            Format::Mxfp4 => "32-element MXFP4 block",
            Format::Mxfp8 => "32-element MXFP8 block",
        }
    }
}

/// Elements of the 128×4-swizzled layout of a `[rows, scale_cols]` scale matrix: rows rounded up
/// to 128 times columns rounded up to 4 (saturating). The unit tests' independent count.
#[cfg(test)]
pub(crate) fn swizzled_scale_len(rows: usize, scale_cols: usize) -> usize {
    rows.div_ceil(128).saturating_mul(128).saturating_mul(scale_cols.div_ceil(4) * 4)
}

/// Elements a grouped scale buffer needs in the worst case: `rows + 127 · groups` scale rows
/// rounded up to 128, times the padded columns. The unit tests' independent count.
#[cfg(test)]
pub(crate) fn grouped_scale_len(rows: usize, scale_cols: usize, groups: usize) -> usize {
    swizzled_scale_len(rows.saturating_add(groups.saturating_mul(127)), scale_cols)
}

/// A matrix argument: shape, stride (elements), address and element size (bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat {
    pub name: &'static str,
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
    pub addr: u64,
    pub elem: usize,
}

impl Mat {
    fn region(&self) -> Region {
        let elems = crate::matrix::span(self.rows, self.cols, self.stride).unwrap_or(usize::MAX);
        Region { name: self.name, addr: self.addr, bytes: (elems as u64).saturating_mul(self.elem as u64) }
    }
    /// Every row starts `align`-byte aligned (false for a row stride of more bytes than usize
    /// counts).
    fn rows_aligned(&self, align: usize) -> bool {
        self.addr % align as u64 == 0 && self.stride.checked_mul(self.elem).is_some_and(|s| s % align == 0)
    }
}

/// A flat buffer argument: address, length in elements, element size.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Buf {
    pub name: &'static str,
    pub addr: u64,
    pub len: usize,
    pub elem: usize,
}

impl Buf {
    fn region(&self) -> Region {
        Region { name: self.name, addr: self.addr, bytes: (self.len as u64).saturating_mul(self.elem as u64) }
    }
}

/// A scale tensor argument: its buffer, logical `[rows, cols]` and layout.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ScaleArg {
    pub buf: Buf,
    pub rows: usize,
    pub cols: usize,
    pub layout: ScaleLayout,
}

/// The scale layouts an op takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Accept {
    /// `RowMajor` or `Swizzled` (quantize, dequantize).
    Plain,
    /// `RowMajor` only (the source of `swizzle_scales`, the destination of `unswizzle_scales`).
    RowMajor,
    /// `Swizzled` only.
    Swizzled,
    /// `GroupedSwizzled` with this many groups.
    Grouped(usize),
}

impl Accept {
    fn expected(self) -> &'static str {
        match self {
            Accept::Plain => "ScaleLayout::RowMajor or ScaleLayout::Swizzled",
            Accept::RowMajor => "ScaleLayout::RowMajor",
            Accept::Swizzled => "ScaleLayout::Swizzled",
            Accept::Grouped(_) => "ScaleLayout::GroupedSwizzled",
        }
    }
}

/// A checked scale argument: where the kernel reads or writes it.
#[derive(Clone, Copy, Debug)]
enum Placed {
    Linear(Mat),
    Swizzled(Buf),
}

impl Placed {
    fn region(&self) -> Region {
        match self {
            Placed::Linear(m) => m.region(),
            Placed::Swizzled(b) => b.region(),
        }
    }
    /// (address, row stride (0 when swizzled), swizzled).
    fn fields(&self) -> (u64, u64, bool) {
        match self {
            Placed::Linear(m) => (m.addr, m.stride as u64, false),
            Placed::Swizzled(b) => (b.addr, 0, true),
        }
    }
}

/// The global scale argument.
#[derive(Clone, Copy, Debug)]
pub(crate) enum GArg {
    Value(f32),
    Device(Buf),
}

/// The grouped arguments: `group_ends` (i32, one per group) and `scale_offsets` (i32, groups + 1).
#[derive(Clone, Copy, Debug)]
pub(crate) struct GroupArgs {
    pub ends: Buf,
    pub offsets: Buf,
}

/// A byte range, for the overlap checks.
#[derive(Clone, Copy, Debug)]
struct Region {
    name: &'static str,
    addr: u64,
    bytes: u64,
}

/// `Aliasing` when a written region overlaps any other region (empty regions overlap nothing).
fn check_overlaps(written: &[Region], read: &[Region]) -> Result<()> {
    for (i, w) in written.iter().enumerate() {
        for o in written[i + 1..].iter().chain(read) {
            if w.bytes > 0
                && o.bytes > 0
                && w.addr < o.addr.saturating_add(o.bytes)
                && o.addr < w.addr.saturating_add(w.bytes)
            {
                return Err(Error::Aliasing { arg: w.name, other: o.name });
            }
        }
    }
    Ok(())
}

fn shape_err(arg: &'static str, expected: String, actual: String) -> Error {
    Error::Shape { arg, expected, actual }
}

/// K (elements per row) of a quantizer input or of a dequantizer's codes: a multiple of the block.
/// `m` is the argument K comes from: `packed` when its columns are bytes of two E2M1 values each
/// (K = 2 · columns), and the errors then say so.
fn check_k(fmt: Format, m: &Mat, packed: bool) -> Result<usize> {
    let k = if packed { m.cols.saturating_mul(2) } else { m.cols };
    let (what, actual) = if packed {
        ("K = 2 · byte columns (two E2M1 values per byte)", format!("{} byte columns (K = {k})", m.cols))
    } else {
        ("a column count (K)", k.to_string())
    };
    if k % fmt.block() != 0 {
        return Err(shape_err(m.name, format!("{what} that is a multiple of the {}", fmt.block_name()), actual));
    }
    let nb = k / fmt.block();
    // the kernels walk rows in chunks of 8 elements, counted in 32 bits
    if k / 8 > u32::MAX as usize {
        return Err(shape_err(m.name, format!("{what} below 2^35 (K / 8 <= {})", u32::MAX), actual));
    }
    Ok(nb)
}

/// The kernels index rows, block columns and swizzled tiles with 32-bit integers.
fn check_extent(name: &'static str, rows: usize, scale_cols: usize) -> Result<()> {
    let tiles = (rows.div_ceil(128) as u64).saturating_mul(scale_cols.div_ceil(4) as u64);
    if rows > u32::MAX as usize || tiles > u32::MAX as u64 {
        return Err(shape_err(
            name,
            "fewer than 2^32 rows and 2^32 swizzled scale tiles (128 × 4 scales each)".into(),
            format!("{rows} rows, {tiles} tiles"),
        ));
    }
    Ok(())
}

fn check_dims(m: &Mat, rows: usize, cols: usize, what: &str) -> Result<()> {
    if m.rows != rows || m.cols != cols {
        return Err(shape_err(m.name, format!("[{rows}, {cols}] ({what})"), format!("[{}, {}]", m.rows, m.cols)));
    }
    Ok(())
}

/// Elements `[rows, cols]` scales take in `layout` (none when there are no scales; for grouped
/// layouts the worst case over every split of the rows); `Shape` naming `arg` when that overflows
/// usize (no buffer holds it).
fn required_len(arg: &'static str, layout: ScaleLayout, rows: usize, cols: usize) -> Result<usize> {
    layout.required_len(rows, cols).ok_or_else(|| {
        shape_err(arg, "a scale tensor whose size fits in usize".into(), format!("[{rows}, {cols}] {layout:?}"))
    })
}

/// A swizzled buffer: at least `required` elements, 16-byte aligned.
fn check_swizzled_buf(b: &Buf, required: usize) -> Result<()> {
    if b.len < required {
        return Err(Error::BufferTooSmall { arg: b.name, required, actual: b.len });
    }
    if required > 0 && b.addr % 16 != 0 {
        return Err(Error::Alignment { arg: b.name, required: 16, actual: b.addr });
    }
    Ok(())
}

/// Checks a scale argument against `[rows, cols]` scales in one of the layouts `accept` takes.
fn check_scales(s: &ScaleArg, rows: usize, cols: usize, what: &str, accept: Accept) -> Result<Placed> {
    let name = s.buf.name;
    if s.rows != rows || s.cols != cols {
        return Err(shape_err(name, format!("[{rows}, {cols}] ({what})"), format!("[{}, {}]", s.rows, s.cols)));
    }
    let layout_err = || Error::Layout { arg: name, expected: accept.expected(), actual: s.layout };
    match s.layout {
        ScaleLayout::RowMajor { ld } if matches!(accept, Accept::Plain | Accept::RowMajor) => {
            let m = Mat { name, rows, cols, stride: ld, addr: s.buf.addr, elem: s.buf.elem };
            if ld < cols {
                return Err(shape_err(name, format!("a row-major ld >= cols = {cols}"), format!("ld {ld}")));
            }
            let required = required_len(name, s.layout, rows, cols)?;
            if s.buf.len < required {
                return Err(Error::BufferTooSmall { arg: name, required, actual: s.buf.len });
            }
            Ok(Placed::Linear(m))
        }
        ScaleLayout::Swizzled if matches!(accept, Accept::Plain | Accept::Swizzled) => {
            check_swizzled_buf(&s.buf, required_len(name, s.layout, rows, cols)?)?;
            Ok(Placed::Swizzled(s.buf))
        }
        ScaleLayout::GroupedSwizzled { groups } => match accept {
            Accept::Grouped(n) if n == groups => {
                check_swizzled_buf(&s.buf, required_len(name, s.layout, rows, cols)?)?;
                Ok(Placed::Swizzled(s.buf))
            }
            Accept::Grouped(n) => Err(shape_err(
                name,
                format!("ScaleLayout::GroupedSwizzled {{ groups: {n} }} (one group per `group_ends` entry)"),
                format!("ScaleLayout::GroupedSwizzled {{ groups: {groups} }}"),
            )),
            _ => Err(layout_err()),
        },
        _ => Err(layout_err()),
    }
}

fn check_global_scale(g: &GArg) -> Result<()> {
    match g {
        GArg::Value(v) if !(v.is_finite() && *v > 0.0) => {
            Err(Error::InvalidValue { arg: "global_scale", expected: "a finite value > 0", actual: v.to_string() })
        }
        GArg::Device(b) if b.len != 1 => {
            Err(shape_err("global_scale", "1 element".into(), format!("{} elements", b.len)))
        }
        _ => Ok(()),
    }
}

/// The MX formats take `Floor` (OCP) and `Ceil` (round-up); NVFP4's scales are not powers of two
/// and take no rounding (its ops pass `Floor`, which it ignores).
fn round_up(fmt: Format, rounding: ScaleRounding) -> Result<bool> {
    match fmt {
        Format::Nvfp4 => Ok(false),
        Format::Mxfp4 | Format::Mxfp8 => mx_round_up(rounding),
    }
}

fn g_fields(g: Option<&GArg>) -> (u64, f32, Option<Region>) {
    match g {
        None => (0, 1.0, None),
        Some(GArg::Value(v)) => (0, *v, None),
        Some(GArg::Device(b)) => (b.addr, 1.0, Some(b.region())),
    }
}

/// Checks a quantize call and fills its parameters (the error flag's address left 0). `g`: NVFP4
/// only. `groups`: the grouped form, whose scales must be `GroupedSwizzled` with as many groups as
/// `group_ends` has entries.
pub(crate) fn plan_quantize(
    fmt: Format,
    x: Mat,
    codes: Mat,
    scales: ScaleArg,
    g: Option<GArg>,
    rounding: ScaleRounding,
    groups: Option<GroupArgs>,
) -> Result<MxQuantizeParams> {
    let up = round_up(fmt, rounding)?;
    let nb = check_k(fmt, &x, false)?;
    let rows = x.rows;
    check_dims(
        &codes,
        rows,
        fmt.code_cols(x.cols),
        if fmt == Format::Mxfp8 { "one E4M3 byte per element" } else { "two E2M1 values per byte" },
    )?;
    let n_groups = groups.map_or(0, |gr| gr.ends.len);
    if let Some(gr) = &groups {
        if n_groups == 0 || n_groups > MX_MAX_GROUPS as usize {
            return Err(shape_err(
                "group_ends",
                format!("1..={MX_MAX_GROUPS} groups (one cumulative row end each)"),
                format!("{n_groups} elements"),
            ));
        }
        if gr.offsets.len != n_groups + 1 {
            return Err(shape_err(
                "scale_offsets",
                format!("{} elements (groups + 1)", n_groups + 1),
                format!("{} elements", gr.offsets.len),
            ));
        }
        if rows.saturating_add(127 * n_groups) > i32::MAX as usize {
            return Err(shape_err(
                x.name,
                format!("rows + 127 · groups <= {} (i32 scale offsets)", i32::MAX),
                format!("{rows} rows, {n_groups} groups"),
            ));
        }
    }
    check_extent(x.name, rows + 127 * n_groups, nb)?;
    let accept = if groups.is_some() { Accept::Grouped(n_groups) } else { Accept::Plain };
    let placed = check_scales(&scales, rows, nb, "one scale per block", accept)?;
    if let Some(g) = &g {
        check_global_scale(g)?;
    }
    let (g_addr, g_value, g_region) = g_fields(g.as_ref());
    let mut written = vec![codes.region(), placed.region()];
    let mut read = vec![x.region()];
    read.extend(g_region);
    if let Some(gr) = &groups {
        written.push(gr.offsets.region());
        read.push(gr.ends.region());
    }
    check_overlaps(&written, &read)?;

    let vectorized = x.rows_aligned(16) && codes.rows_aligned(fmt.code_align());
    let (scale_addr, scale_stride, swizzled) = placed.fields();
    let mut flags = 0;
    if vectorized {
        flags |= MX_FLAG_VECTORIZED;
    }
    if swizzled {
        flags |= MX_FLAG_SWIZZLED;
    }
    if up {
        flags |= MX_FLAG_ROUND_UP;
    }
    Ok(MxQuantizeParams {
        x: x.addr,
        codes: codes.addr,
        scales: scale_addr,
        global_scale: g_addr,
        group_ends: groups.map_or(0, |gr| gr.ends.addr),
        scale_offsets: groups.map_or(0, |gr| gr.offsets.addr),
        error_flag: 0,
        rows: rows as u64,
        x_stride: x.stride as u64,
        codes_stride: codes.stride as u64,
        scale_stride,
        blocks_per_row: nb as u32,
        groups: n_groups as u32,
        g: g_value,
        flags,
    })
}

/// Checks a dequantize call and fills its parameters (`K` comes from the codes).
pub(crate) fn plan_dequantize(
    fmt: Format,
    codes: Mat,
    scales: ScaleArg,
    g: Option<GArg>,
    out: Mat,
) -> Result<MxDequantizeParams> {
    let packed = fmt != Format::Mxfp8;
    let k = if packed { codes.cols.saturating_mul(2) } else { codes.cols };
    let nb = check_k(fmt, &codes, packed)?;
    let rows = codes.rows;
    check_extent(codes.name, rows, nb)?;
    check_dims(&out, rows, k, "one bf16 per element")?;
    let placed = check_scales(&scales, rows, nb, "one scale per block", Accept::Plain)?;
    if let Some(g) = &g {
        check_global_scale(g)?;
    }
    let (g_addr, g_value, g_region) = g_fields(g.as_ref());
    let mut read = vec![codes.region(), placed.region()];
    read.extend(g_region);
    check_overlaps(&[out.region()], &read)?;
    let vectorized = codes.rows_aligned(fmt.block_code_align()) && out.rows_aligned(16);
    let (scale_addr, scale_stride, swizzled) = placed.fields();
    let mut flags = 0;
    if vectorized {
        flags |= MX_FLAG_VECTORIZED;
    }
    if swizzled {
        flags |= MX_FLAG_SWIZZLED;
    }
    Ok(MxDequantizeParams {
        codes: codes.addr,
        scales: scale_addr,
        out: out.addr,
        global_scale: g_addr,
        rows: rows as u64,
        codes_stride: codes.stride as u64,
        scale_stride,
        out_stride: out.stride as u64,
        blocks_per_row: nb as u32,
        flags,
        g: g_value,
        _pad: 0,
    })
}

/// Checks a swizzle or unswizzle call: `linear` (row-major) is the source of `swizzle_scales` and
/// the destination of `unswizzle_scales` (`linear_written`), `swizzled` the other side.
pub(crate) fn plan_swizzle(linear: ScaleArg, swizzled: ScaleArg, linear_written: bool) -> Result<MxSwizzleParams> {
    let (rows, cols) = (linear.rows, linear.cols);
    // the source's layout first
    if linear_written && swizzled.layout != ScaleLayout::Swizzled {
        return Err(Error::Layout {
            arg: swizzled.buf.name,
            expected: "ScaleLayout::Swizzled",
            actual: swizzled.layout,
        });
    }
    let lin = check_scales(&linear, rows, cols, "row-major scales", Accept::RowMajor)?;
    let Placed::Linear(lin) = lin else {
        return Err(Error::Layout { arg: linear.buf.name, expected: "ScaleLayout::RowMajor", actual: linear.layout });
    };
    if cols > u32::MAX as usize {
        return Err(shape_err(lin.name, format!("at most {} columns", u32::MAX), cols.to_string()));
    }
    check_extent(lin.name, rows, cols)?;
    let what = "the shape of `src`";
    let sw = if linear_written {
        // unswizzle: the swizzled side is the source, whose shape the destination must match
        if (swizzled.rows, swizzled.cols) != (rows, cols) {
            return Err(shape_err(
                lin.name,
                format!("[{}, {}] ({what})", swizzled.rows, swizzled.cols),
                format!("[{rows}, {cols}]"),
            ));
        }
        check_swizzled_buf(&swizzled.buf, required_len(swizzled.buf.name, ScaleLayout::Swizzled, rows, cols)?)?;
        swizzled.buf
    } else {
        match check_scales(&swizzled, rows, cols, what, Accept::Swizzled)? {
            Placed::Swizzled(b) => b,
            Placed::Linear(_) => {
                return Err(Error::Layout {
                    arg: swizzled.buf.name,
                    expected: "ScaleLayout::Swizzled",
                    actual: swizzled.layout,
                });
            }
        }
    };
    if linear_written {
        check_overlaps(&[lin.region()], &[sw.region()])?;
    } else {
        check_overlaps(&[sw.region()], &[lin.region()])?;
    }
    Ok(MxSwizzleParams {
        linear: lin.addr,
        swizzled: sw.addr,
        rows: rows as u64,
        linear_stride: lin.stride as u64,
        cols: cols as u32,
        _pad: 0,
    })
}

/// Checks a tensor amax call.
pub(crate) fn plan_amax(x: Mat, out: Buf) -> Result<MxAmaxParams> {
    if out.len != 1 {
        return Err(shape_err(out.name, "1 element".into(), format!("{} elements", out.len)));
    }
    if x.cols > u32::MAX as usize || x.rows > u32::MAX as usize {
        return Err(shape_err(x.name, "fewer than 2^32 rows and columns".into(), format!("[{}, {}]", x.rows, x.cols)));
    }
    check_overlaps(&[out.region()], &[x.region()])?;
    let vectorized = x.cols % 8 == 0 && x.rows_aligned(16);
    Ok(MxAmaxParams {
        x: x.addr,
        out: out.addr,
        rows: x.rows as u64,
        x_stride: x.stride as u64,
        cols: x.cols as u32,
        flags: if vectorized { MX_FLAG_VECTORIZED } else { 0 },
    })
}

#[cfg(test)]
#[path = "../tests/microscaling_plan.rs"]
mod tests;
