//! Unit tests of the microscaling argument checks (`plan_*`): shapes, strides, buffer lengths,
//! layouts, alignment, aliasing and scalars, and the path and flags chosen. No GPU needed.
use super::*;
use crate::abi::MX_FLAG_ROUND_UP;

const X: u64 = 0x7000_0000_0000;
const C: u64 = 0x7100_0000_0000;
const S: u64 = 0x7200_0000_0000;
const G: u64 = 0x7300_0000_0000;
const E: u64 = 0x7400_0000_0000;
const O: u64 = 0x7500_0000_0000;

const FLOOR: ScaleRounding = ScaleRounding::Floor;

fn m(name: &'static str, rows: usize, cols: usize, stride: usize, addr: u64, elem: usize) -> Mat {
    Mat { name, rows, cols, stride, addr, elem }
}

fn b(name: &'static str, addr: u64, len: usize, elem: usize) -> Buf {
    Buf { name, addr, len, elem }
}

/// Row-major one-byte scales `[rows, cols]` with `ld`, named `name`, spanning exactly their
/// elements.
fn lin_named(name: &'static str, rows: usize, cols: usize, ld: usize, addr: u64) -> ScaleArg {
    let len = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * ld + cols };
    ScaleArg { buf: b(name, addr, len, 1), rows, cols, layout: ScaleLayout::RowMajor { ld } }
}

fn lin(rows: usize, cols: usize, ld: usize, addr: u64) -> ScaleArg {
    lin_named("scales", rows, cols, ld, addr)
}

/// Swizzled one-byte scales `[rows, cols]` in a buffer of `len` elements.
fn swz_named(name: &'static str, rows: usize, cols: usize, addr: u64, len: usize) -> ScaleArg {
    ScaleArg { buf: b(name, addr, len, 1), rows, cols, layout: ScaleLayout::Swizzled }
}

fn swz(rows: usize, cols: usize, addr: u64, len: usize) -> ScaleArg {
    swz_named("scales", rows, cols, addr, len)
}

/// Grouped swizzled scales of `groups` groups.
fn grp(rows: usize, cols: usize, groups: usize, len: usize) -> ScaleArg {
    ScaleArg { buf: b("scales", S, len, 1), rows, cols, layout: ScaleLayout::GroupedSwizzled { groups } }
}

/// A valid NVFP4 call on bf16 `[rows, k]`, row-major scales.
fn nv(rows: usize, k: usize) -> (Mat, Mat, ScaleArg) {
    (m("x", rows, k, k, X, 2), m("codes", rows, k / 2, k / 2, C, 1), lin(rows, k / 16, k / 16, S))
}

#[test]
fn quantize_plans_fill_the_parameters() {
    let (x, c, s) = nv(4, 4096);
    let p = plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Value(2.5)), FLOOR, None).unwrap();
    assert_eq!((p.rows, p.blocks_per_row, p.x_stride, p.codes_stride, p.scale_stride), (4, 256, 4096, 2048, 256));
    assert_eq!((p.x, p.codes, p.scales, p.global_scale, p.g), (X, C, S, 0, 2.5));
    assert_eq!(p.flags, MX_FLAG_VECTORIZED);
    // device global scale, swizzled scales
    let sw = swz(4, 256, S, swizzled_scale_len(4, 256));
    let p =
        plan_quantize(Format::Nvfp4, x, c, sw, Some(GArg::Device(b("global_scale", G, 1, 4))), FLOOR, None).unwrap();
    assert_eq!((p.global_scale, p.flags), (G, MX_FLAG_VECTORIZED | MX_FLAG_SWIZZLED));
    // MX with the round-up rule; NVFP4 ignores the rounding
    let x = m("x", 3, 64, 64, X, 4);
    let c = m("codes", 3, 64, 64, C, 1);
    let p = plan_quantize(Format::Mxfp8, x, c, lin(3, 2, 2, S), None, ScaleRounding::Ceil, None).unwrap();
    assert_eq!((p.blocks_per_row, p.flags), (2, MX_FLAG_VECTORIZED | MX_FLAG_ROUND_UP));
    let (x, c, s) = nv(4, 64);
    let p = plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Value(1.0)), ScaleRounding::Ceil, None).unwrap();
    assert_eq!(p.flags & MX_FLAG_ROUND_UP, 0);
}

#[test]
fn mx_formats_refuse_exact_rounding() {
    let x = m("x", 3, 64, 64, X, 4);
    for (fmt, c) in [(Format::Mxfp8, m("codes", 3, 64, 64, C, 1)), (Format::Mxfp4, m("codes", 3, 32, 32, C, 1))] {
        let e = plan_quantize(fmt, x, c, lin(3, 2, 2, S), None, ScaleRounding::Exact, None).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidValue { arg: "rounding", actual, .. } if actual == "ScaleRounding::Exact"),
            "{e}"
        );
        assert!(e.to_string().starts_with("`rounding`: expected ScaleRounding::Floor or ScaleRounding::Ceil"), "{e}");
    }
}

#[test]
fn scales_in_a_layout_the_op_does_not_take_are_refused() {
    let g = Some(GArg::Value(1.0));
    let (x, c, _) = nv(4, 64);
    let mmajor = ScaleArg { buf: b("scales", S, 64, 1), rows: 4, cols: 4, layout: ScaleLayout::MMajor { ld: 4 } };
    let e = plan_quantize(Format::Nvfp4, x, c, mmajor, g, FLOOR, None).unwrap_err();
    assert!(
        matches!(e, Error::Layout { arg: "scales", expected: "ScaleLayout::RowMajor or ScaleLayout::Swizzled", .. }),
        "{e}"
    );
    let e = plan_quantize(Format::Nvfp4, x, c, grp(4, 4, 1, 4096), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", .. }), "{e}");
    // the grouped form takes grouped scales only, with one group per `group_ends` entry
    let groups = Some(GroupArgs { ends: b("group_ends", E, 2, 4), offsets: b("scale_offsets", O, 3, 4) });
    let e = plan_quantize(Format::Nvfp4, x, c, swz(4, 4, S, 4096), g, FLOOR, groups).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", expected: "ScaleLayout::GroupedSwizzled", .. }), "{e}");
    let e = plan_quantize(Format::Nvfp4, x, c, grp(4, 4, 3, 4096), g, FLOOR, groups).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }) && e.to_string().contains("groups: 2"), "{e}");
    // dequantize: row-major or swizzled
    let out = m("out", 4, 64, 64, X, 2);
    let e = plan_dequantize(Format::Nvfp4, c, mmajor, g, out).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "scales", .. }), "{e}");
    // swizzle: row-major source, swizzled destination, and the reverse
    let e = plan_swizzle(swz_named("src", 4, 4, S, 512), swz_named("dst", 4, 4, X, 512), false).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "src", expected: "ScaleLayout::RowMajor", .. }), "{e}");
    let e = plan_swizzle(lin_named("src", 4, 4, 4, X), lin_named("dst", 4, 4, 4, S), false).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "dst", expected: "ScaleLayout::Swizzled", .. }), "{e}");
    let e = plan_swizzle(lin_named("dst", 4, 4, 4, X), lin_named("src", 4, 4, 4, S), true).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "src", expected: "ScaleLayout::Swizzled", .. }), "{e}");
    let e = plan_swizzle(swz_named("dst", 4, 4, X, 512), swz_named("src", 4, 4, S, 512), true).unwrap_err();
    assert!(matches!(e, Error::Layout { arg: "dst", expected: "ScaleLayout::RowMajor", .. }), "{e}");
}

#[test]
fn quantize_picks_the_vector_path_only_when_rows_are_aligned() {
    let g = Some(GArg::Value(1.0));
    let (x, c, s) = nv(4, 48); // codes rows of 24 bytes: 4-byte aligned, enough for NVFP4
    assert_eq!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).unwrap().flags, MX_FLAG_VECTORIZED);
    let (mut x, c, s) = nv(4, 64);
    x.addr += 2; // input 2 bytes past alignment
    assert_eq!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).unwrap().flags, 0);
    let (mut x, c, s) = nv(4, 64);
    x.stride = 68; // 136-byte rows: not a multiple of 16
    assert_eq!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).unwrap().flags, 0);
    let (x, mut c, s) = nv(4, 64);
    c.addr += 2;
    assert_eq!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).unwrap().flags, 0);
    // MXFP4 needs 4-byte code rows: K = 96 gives 48-byte rows (fine), a stride of 50 does not
    let x = m("x", 2, 96, 96, X, 2);
    let s = lin(2, 3, 3, S);
    let p = plan_quantize(Format::Mxfp4, x, m("codes", 2, 48, 48, C, 1), s, None, FLOOR, None).unwrap();
    assert_eq!(p.flags, MX_FLAG_VECTORIZED);
    let p = plan_quantize(Format::Mxfp4, x, m("codes", 2, 48, 50, C, 1), s, None, FLOOR, None).unwrap();
    assert_eq!(p.flags, 0);
    // MXFP8 needs 8-byte code rows: K = 96 with a stride of 100 bytes is not
    let x = m("x", 2, 96, 96, X, 2);
    let p = plan_quantize(Format::Mxfp8, x, m("codes", 2, 96, 100, C, 1), s, None, FLOOR, None).unwrap();
    assert_eq!(p.flags, 0);
    let p = plan_quantize(Format::Mxfp8, x, m("codes", 2, 96, 104, C, 1), s, None, FLOOR, None).unwrap();
    assert_eq!(p.flags, MX_FLAG_VECTORIZED);
}

#[test]
fn quantize_rejects_bad_shapes_naming_the_argument() {
    let g = Some(GArg::Value(1.0));
    let x40 = m("x", 2, 40, 40, X, 2);
    let e =
        plan_quantize(Format::Nvfp4, x40, m("codes", 2, 20, 20, C, 1), lin(2, 2, 2, S), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    assert!(e.to_string().contains("multiple of the 16-element NVFP4 block") && e.to_string().contains("40"), "{e}");
    let x48 = m("x", 2, 48, 48, X, 2);
    let e =
        plan_quantize(Format::Mxfp4, x48, m("codes", 2, 24, 24, C, 1), lin(2, 1, 1, S), None, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }) && e.to_string().contains("32-element"), "{e}");
    let (x, _, s) = nv(2, 64);
    let e = plan_quantize(Format::Nvfp4, x, m("codes", 2, 64, 64, C, 1), s, g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "codes", .. }), "{e}");
    assert!(e.to_string().contains("[2, 32]") && e.to_string().contains("[2, 64]"), "{e}");
    let x64 = m("x", 2, 64, 64, X, 2);
    let e =
        plan_quantize(Format::Mxfp8, x64, m("codes", 2, 32, 32, C, 1), lin(2, 2, 2, S), None, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "codes", .. }), "{e}");
    let (x, c, _) = nv(2, 64);
    let e = plan_quantize(Format::Nvfp4, x, c, lin(3, 4, 4, S), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }), "{e}");
    // swizzled scales carry their shape too
    let e = plan_quantize(Format::Nvfp4, x, c, swz(2, 8, S, 512), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }) && e.to_string().contains("[2, 4]"), "{e}");
    let e = plan_quantize(Format::Nvfp4, x, c, swz(2, 4, S, 511), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", required: 512, actual: 511 }), "{e}");
    let e = plan_quantize(Format::Nvfp4, x, c, swz(2, 4, S + 4, 512), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Alignment { arg: "scales", required: 16, .. }), "{e}");
    let short = ScaleArg { buf: b("scales", S, 6, 1), ..lin(2, 4, 4, S) };
    let e = plan_quantize(Format::Nvfp4, x, c, short, g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", required: 8, actual: 6 }), "{e}");
    // zero rows and zero columns are fine (no work)
    let (x, c, s) = nv(0, 64);
    assert!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).is_ok());
    let (x, c, s) = nv(5, 0);
    assert_eq!(plan_quantize(Format::Nvfp4, x, c, s, g, FLOOR, None).unwrap().blocks_per_row, 0);
}

#[test]
fn quantize_rejects_bad_global_scales() {
    let (x, c, s) = nv(2, 64);
    for v in [0.0f32, -1.0, f32::NAN, f32::INFINITY, -0.0] {
        let e = plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Value(v)), FLOOR, None).unwrap_err();
        assert!(matches!(e, Error::InvalidValue { arg: "global_scale", .. }), "{v}: {e}");
    }
    let e =
        plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Device(b("global_scale", G, 2, 4))), FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "global_scale", .. }), "{e}");
    assert!(plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Value(f32::MIN_POSITIVE)), FLOOR, None).is_ok());
}

#[test]
fn quantize_rejects_overlapping_buffers() {
    let g = Some(GArg::Value(1.0));
    let (x, _, s) = nv(2, 64);
    let e = plan_quantize(Format::Nvfp4, x, m("codes", 2, 32, 32, X + 100, 1), s, g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "codes", other: "x" }), "{e}");
    let (x, c, _) = nv(2, 64);
    let e = plan_quantize(Format::Nvfp4, x, c, lin(2, 4, 4, C + 60), g, FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "codes", other: "scales" }), "{e}");
    let (x, c, s) = nv(2, 64);
    let e = plan_quantize(Format::Nvfp4, x, c, s, Some(GArg::Device(b("global_scale", S + 4, 1, 4))), FLOOR, None)
        .unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "scales", other: "global_scale" }), "{e}");
    // adjacent, not overlapping: fine
    let (x, _, s) = nv(2, 64);
    assert!(plan_quantize(Format::Nvfp4, x, m("codes", 2, 32, 32, X + 256, 1), s, g, FLOOR, None).is_ok());
}

#[test]
fn grouped_plans_check_groups_and_the_worst_case_buffer() {
    let g = Some(GArg::Value(1.0));
    let (x, c, _) = nv(300, 64);
    let groups =
        |e: usize, o: usize| Some(GroupArgs { ends: b("group_ends", E, e, 4), offsets: b("scale_offsets", O, o, 4) });
    let need = grouped_scale_len(300, 4, 8);
    assert_eq!(need, (300usize + 8 * 127).div_ceil(128) * 128 * 4);
    let sw = |len, groups| grp(300, 4, groups, len);
    let p = plan_quantize(Format::Nvfp4, x, c, sw(need, 8), g, FLOOR, groups(8, 9)).unwrap();
    assert_eq!((p.groups, p.group_ends, p.scale_offsets, p.flags & MX_FLAG_SWIZZLED), (8, E, O, MX_FLAG_SWIZZLED));
    let e = plan_quantize(Format::Nvfp4, x, c, sw(need - 1, 8), g, FLOOR, groups(8, 9)).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", .. }), "{e}");
    let e = plan_quantize(Format::Nvfp4, x, c, sw(need, 0), g, FLOOR, groups(0, 1)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "group_ends", .. }), "{e}");
    let big = MX_MAX_GROUPS as usize + 1;
    let e = plan_quantize(Format::Nvfp4, x, c, sw(grouped_scale_len(300, 4, big), big), g, FLOOR, groups(big, big + 1))
        .unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "group_ends", .. }), "{e}");
    let e = plan_quantize(Format::Nvfp4, x, c, sw(need, 8), g, FLOOR, groups(8, 8)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scale_offsets", .. }), "{e}");
    let bad = Some(GroupArgs { ends: b("group_ends", E, 8, 4), offsets: b("scale_offsets", S + 64, 9, 4) });
    let e = plan_quantize(Format::Nvfp4, x, c, sw(need, 8), g, FLOOR, bad).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "scales", other: "scale_offsets" }), "{e}");
    let bad = Some(GroupArgs { ends: b("group_ends", C + 8, 8, 4), offsets: b("scale_offsets", O, 9, 4) });
    let e = plan_quantize(Format::Nvfp4, x, c, sw(need, 8), g, FLOOR, bad).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "codes", other: "group_ends" }), "{e}");
    // offsets must fit i32
    let huge = m("x", i32::MAX as usize - 100, 16, 16, X, 2);
    let hc = m("codes", huge.rows, 8, 8, C, 1);
    let hs = grp(huge.rows, 1, 1, usize::MAX);
    let e = plan_quantize(Format::Nvfp4, huge, hc, hs, g, FLOOR, groups(1, 2)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
}

#[test]
fn dequantize_plans_check_every_argument() {
    let codes = m("codes", 4, 32, 32, C, 1);
    let out = m("out", 4, 64, 64, X, 2);
    let s = lin(4, 4, 4, S);
    let p = plan_dequantize(Format::Nvfp4, codes, s, Some(GArg::Value(0.5)), out).unwrap();
    assert_eq!((p.rows, p.blocks_per_row, p.g, p.flags), (4, 4, 0.5, MX_FLAG_VECTORIZED));
    let e = plan_dequantize(Format::Nvfp4, codes, s, Some(GArg::Value(0.5)), m("out", 4, 32, 32, X, 2)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    let e = plan_dequantize(Format::Mxfp4, codes, s, None, out).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }), "{e}");
    let e =
        plan_dequantize(Format::Mxfp8, m("codes", 4, 48, 48, C, 1), s, None, m("out", 4, 48, 48, X, 2)).unwrap_err();
    assert!(matches!(&e, Error::Shape { arg: "codes", actual, .. } if actual == "48"), "{e}");
    // packed FP4 codes: the byte columns as given, and the K they hold
    let e =
        plan_dequantize(Format::Nvfp4, m("codes", 4, 5, 5, C, 1), s, Some(GArg::Value(1.0)), m("out", 4, 10, 10, X, 2))
            .unwrap_err();
    assert!(matches!(&e, Error::Shape { arg: "codes", actual, .. } if actual == "5 byte columns (K = 10)"), "{e}");
    assert!(e.to_string().contains("K = 2 · byte columns") && e.to_string().contains("16-element NVFP4 block"), "{e}");
    let e = plan_dequantize(Format::Nvfp4, codes, s, Some(GArg::Value(f32::NAN)), out).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "global_scale", .. }), "{e}");
    let e =
        plan_dequantize(Format::Nvfp4, codes, s, Some(GArg::Value(1.0)), m("out", 4, 64, 64, C + 2, 2)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "codes" }), "{e}");
    let sw = swz(4, 4, S, 512);
    let p = plan_dequantize(Format::Nvfp4, codes, sw, Some(GArg::Value(1.0)), m("out", 4, 64, 68, X, 2)).unwrap();
    assert_eq!(p.flags, MX_FLAG_SWIZZLED, "136-byte output rows: scalar path");
    // a thread loads a block's codes at once: 8-byte aligned NVFP4 code rows, 16-byte MX ones
    let p = plan_dequantize(Format::Nvfp4, m("codes", 4, 32, 36, C, 1), s, Some(GArg::Value(1.0)), out).unwrap();
    assert_eq!(p.flags, 0, "36-byte code rows: scalar path");
    let s = lin(4, 2, 2, S);
    let p = plan_dequantize(Format::Mxfp4, m("codes", 4, 32, 40, C, 1), s, None, out).unwrap();
    assert_eq!(p.flags, 0, "40-byte code rows: scalar path");
}

#[test]
fn swizzle_and_amax_plans() {
    let src = lin_named("src", 200, 9, 9, X);
    let need = swizzled_scale_len(200, 9);
    assert_eq!(need, 256 * 12);
    let p = plan_swizzle(src, swz_named("dst", 200, 9, S, need), false).unwrap();
    assert_eq!((p.rows, p.cols, p.linear_stride), (200, 9, 9));
    let e = plan_swizzle(src, swz_named("dst", 200, 9, S, need - 1), false).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "dst", .. }), "{e}");
    let e = plan_swizzle(src, swz_named("dst", 200, 8, S, need), false).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "dst", .. }) && e.to_string().contains("shape of `src`"), "{e}");
    let e = plan_swizzle(src, swz_named("dst", 200, 9, X + 16, need), false).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "dst", other: "src" }), "{e}");
    let e = plan_swizzle(lin_named("dst", 200, 9, 9, X), swz_named("src", 200, 9, X + 32, need), true).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "dst", other: "src" }), "{e}");
    let e = plan_swizzle(lin_named("dst", 199, 9, 9, X), swz_named("src", 200, 9, S, need), true).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "dst", .. }), "{e}");

    let x = m("x", 8, 4096, 4096, X, 2);
    let p = plan_amax(x, b("amax", G, 1, 4)).unwrap();
    assert_eq!(p.flags, MX_FLAG_VECTORIZED);
    assert_eq!(plan_amax(m("x", 8, 100, 100, X, 2), b("amax", G, 1, 4)).unwrap().flags, 0);
    let e = plan_amax(x, b("amax", G, 2, 4)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "amax", .. }), "{e}");
    let e = plan_amax(x, b("amax", X + 8, 1, 4)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "amax", other: "x" }), "{e}");
}

#[test]
fn extents_beyond_32_bits_are_refused() {
    let rows = u32::MAX as usize + 1;
    let x = m("x", rows, 16, 16, X, 2);
    let c = m("codes", rows, 8, 8, C, 1);
    let e = plan_quantize(Format::Nvfp4, x, c, lin(rows, 1, 1, S), Some(GArg::Value(1.0)), FLOOR, None).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }) && e.to_string().contains("2^32"), "{e}");
    let e = plan_amax(m("x", rows, 16, 16, X, 2), b("amax", G, 1, 4)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = plan_swizzle(lin_named("src", rows, 4, 4, X), swz_named("dst", rows, 4, S, usize::MAX), false).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "src", .. }), "{e}");
}

#[test]
fn scale_lengths() {
    assert_eq!(swizzled_scale_len(0, 0), 0);
    assert_eq!(swizzled_scale_len(1, 1), 512);
    assert_eq!(swizzled_scale_len(128, 4), 512);
    assert_eq!(swizzled_scale_len(257, 12), 384 * 12);
    assert_eq!(grouped_scale_len(16 * 1024, 448, 16), (16 * 1024 + 16 * 127usize).div_ceil(128) * 128 * 448);
    // the core's layout lengths agree
    assert_eq!(ScaleLayout::Swizzled.required_len(257, 12), Some(swizzled_scale_len(257, 12)));
    assert_eq!(ScaleLayout::GroupedSwizzled { groups: 16 }.required_len(300, 7), Some(grouped_scale_len(300, 7, 16)));
    assert_eq!(super::super::nvfp4_global_scale_from_amax(2688.0), 1.0);
    assert_eq!(super::super::nvfp4_global_scale_from_amax(0.0), 1.0);
}

/// Elements `[rows, cols]` scales need in `layout`, in u128 (exact up to 2^128: far past any
/// usize length).
fn span_u128(layout: ScaleLayout, rows: usize, cols: usize) -> u128 {
    let (r, c) = (rows as u128, cols as u128);
    let swizzled = |r: u128| (r.div_ceil(128) * 128).saturating_mul(c.div_ceil(4) * 4);
    match layout {
        _ if rows == 0 || cols == 0 => 0,
        ScaleLayout::RowMajor { ld } => (r - 1) * ld as u128 + c,
        ScaleLayout::MMajor { ld } => (c - 1) * ld as u128 + r,
        ScaleLayout::Swizzled => swizzled(r),
        ScaleLayout::GroupedSwizzled { groups } => swizzled(r + 127 * groups as u128),
    }
}

/// A scale argument of `layout` whose buffer holds exactly what the layout needs (as much as a
/// usize counts), or `len` elements.
fn scales_of(name: &'static str, layout: ScaleLayout, rows: usize, cols: usize, len: Option<usize>) -> ScaleArg {
    let exact = span_u128(layout, rows, cols).min(usize::MAX as u128) as usize;
    ScaleArg { buf: b(name, S, len.unwrap_or(exact), 1), rows, cols, layout }
}

/// Counts at and past every width the checks compute in.
const EXTREME_ROWS: [usize; 10] =
    [0, 1, 4, 129, u32::MAX as usize, 1 << 32, 1 << 40, 1 << 62, usize::MAX / 2, usize::MAX];

#[test]
fn plans_survive_extreme_shapes_strides_lengths_and_groups() {
    for fmt in [Format::Nvfp4, Format::Mxfp4, Format::Mxfp8] {
        // multiples of every block, up to the top of usize
        for k in [0, 64, 4096, 1 << 32, 1 << 35, 1 << 40, usize::MAX - 63] {
            let nb = k / fmt.block();
            for &rows in &EXTREME_ROWS {
                for stride in [k, 1 << 62, usize::MAX / 2 + 1, usize::MAX] {
                    let x = m("x", rows, k, stride, X, 2);
                    let codes = m("codes", rows, fmt.code_cols(k), stride, C, 1);
                    let groups_list = [None, Some(1), Some(MX_MAX_GROUPS as usize), Some(usize::MAX)];
                    for groups in groups_list {
                        let group_args = groups.map(|g| GroupArgs {
                            ends: b("group_ends", E, g, 4),
                            offsets: b("scale_offsets", O, g.wrapping_add(1), 4),
                        });
                        let mut layouts = vec![
                            ScaleLayout::RowMajor { ld: nb },
                            ScaleLayout::RowMajor { ld: 1 << 62 },
                            ScaleLayout::RowMajor { ld: usize::MAX },
                            ScaleLayout::Swizzled,
                        ];
                        layouts.extend(groups.map(|groups| ScaleLayout::GroupedSwizzled { groups }));
                        for layout in layouts {
                            for len in [None, Some(usize::MAX)] {
                                let s = scales_of("scales", layout, rows, nb, len);
                                let case = format!("{fmt:?} {x:?} {codes:?} {s:?} {group_args:?}");
                                let scales_fit =
                                    |s: &ScaleArg| span_u128(s.layout, s.rows, s.cols) <= s.buf.len as u128;
                                let g = (fmt == Format::Nvfp4).then_some(GArg::Value(1.0));
                                if let Ok(p) = plan_quantize(fmt, x, codes, s, g, FLOOR, group_args) {
                                    assert!(scales_fit(&s), "{case}");
                                    assert!(k / 8 <= u32::MAX as usize && rows <= u32::MAX as usize, "{case}");
                                    assert_eq!((p.rows, p.blocks_per_row as usize), (rows as u64, nb), "{case}");
                                    assert_eq!(p.groups as usize, groups.unwrap_or(0), "{case}");
                                }
                                let out = m("out", rows, k, stride, O, 2);
                                if group_args.is_none() {
                                    if let Ok(p) = plan_dequantize(fmt, codes, s, g, out) {
                                        assert!(scales_fit(&s), "{case}");
                                        assert_eq!((p.rows, p.blocks_per_row as usize), (rows as u64, nb), "{case}");
                                    }
                                }
                            }
                        }
                    }
                    // amax over the same matrix
                    if let Ok(p) = plan_amax(x, b("amax", O, 1, 4)) {
                        assert!(rows <= u32::MAX as usize && k <= u32::MAX as usize, "{x:?}");
                        assert_eq!((p.rows, p.cols as usize, p.x_stride), (rows as u64, k, stride as u64), "{x:?}");
                    }
                }
            }
        }
    }
    // swizzle and unswizzle: `[rows, cols]` scales, every length and ld
    for &rows in &EXTREME_ROWS {
        for cols in [0, 1, 4, u32::MAX as usize, 1 << 32, usize::MAX] {
            for ld in [cols, 1 << 62, usize::MAX] {
                for (lin_len, sw_len) in [(None, None), (Some(usize::MAX), Some(usize::MAX))] {
                    for written in [false, true] {
                        let (lin_name, sw_name) = if written { ("dst", "src") } else { ("src", "dst") };
                        let lin = scales_of(lin_name, ScaleLayout::RowMajor { ld }, rows, cols, lin_len);
                        let mut sw = scales_of(sw_name, ScaleLayout::Swizzled, rows, cols, sw_len);
                        sw.buf.addr = X;
                        let Ok(p) = plan_swizzle(lin, sw, written) else { continue };
                        let case = format!("{lin:?} {sw:?} written {written}");
                        for s in [&lin, &sw] {
                            assert!(span_u128(s.layout, rows, cols) <= s.buf.len as u128, "{case}");
                        }
                        assert_eq!(
                            (p.rows, p.cols as usize, p.linear_stride),
                            (rows as u64, cols, ld as u64),
                            "{case}"
                        );
                    }
                }
            }
        }
    }
}
