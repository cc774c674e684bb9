//! Unit tests of `fp8::plan` (scale layouts, rounding, shapes, overlaps): no GPU needed.
use super::plan::*;
use crate::abi::{FP8_UE8M0, FP8_VECTORIZED};
use crate::error::Error;
use crate::scale::{ScaleLayout, ScaleRounding, m_major_ld};

const X: u64 = 0x7000_0000_0000;
const Q: u64 = 0x7100_0000_0000;
const S: u64 = 0x7200_0000_0000;

fn op(name: &'static str, rows: usize, cols: usize, stride: usize, addr: u64, elem: usize) -> Operand {
    Operand { name, rows, cols, stride, addr, elem }
}

fn scales(layout: ScaleLayout, rows: usize, cols: usize, len: usize) -> ScaleInput {
    ScaleInput { layout, shape: [rows, cols], addr: S, len }
}

fn group(layout: ScaleLayout, m: usize, k: usize, len: usize) -> ScaleArg {
    place("scales", scales(layout, m, k / 128, len), [m, k / 128], "M, K/128", Accepts::RowOrMMajor).unwrap()
}

#[test]
fn row_major_and_m_major_group_scales() {
    let s = group(ScaleLayout::RowMajor { ld: 4 }, 7, 512, 28);
    assert_eq!((s.row_stride, s.col_stride, s.required()), (4, 1, 28));
    let s = group(ScaleLayout::RowMajor { ld: 6 }, 7, 512, 40);
    assert_eq!((s.row_stride, s.col_stride, s.required()), (6, 1, 40));
    let s = group(ScaleLayout::MMajor { ld: 8 }, 7, 512, 31);
    assert_eq!((s.row_stride, s.col_stride, s.required()), (1, 8, 31));
    let e = place("scales", scales(ScaleLayout::MMajor { ld: 8 }, 7, 4, 30), [7, 4], "M, K/128", Accepts::RowOrMMajor)
        .unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", required: 31, actual: 30 }), "{e}");
    assert_eq!(m_major_ld(1), 4);
    assert_eq!(m_major_ld(4), 4);
    assert_eq!(m_major_ld(1001), 1004);
}

#[test]
fn layouts_and_rounding_other_than_taken_are_refused() {
    for layout in [ScaleLayout::Swizzled, ScaleLayout::GroupedSwizzled { groups: 2 }] {
        let e = plan(
            op("x", 7, 512, 512, X, 2),
            op("codes", 7, 512, 512, Q, 1),
            scales(layout, 7, 4, 1 << 20),
            1,
            ScaleRounding::Exact,
        )
        .unwrap_err();
        assert!(
            matches!(e, Error::Layout { arg: "scales", expected: "ScaleLayout::RowMajor or ScaleLayout::MMajor", actual } if actual == layout),
            "{e}"
        );
    }
    // per-block scales are row-major only
    let e = plan(
        op("w", 256, 512, 512, X, 2),
        op("codes", 256, 512, 512, Q, 1),
        scales(ScaleLayout::MMajor { ld: 4 }, 2, 4, 100),
        128,
        ScaleRounding::Exact,
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Layout { arg: "scales", expected: "ScaleLayout::RowMajor", actual: ScaleLayout::MMajor { ld: 4 } }
        ),
        "{e}"
    );
    let e = plan(
        op("x", 7, 512, 512, X, 2),
        op("codes", 7, 512, 512, Q, 1),
        scales(ScaleLayout::RowMajor { ld: 4 }, 7, 4, 28),
        1,
        ScaleRounding::Floor,
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidValue { arg: "rounding", actual, .. } if actual == "ScaleRounding::Floor"),
        "{e}"
    );
    assert!(e.to_string().starts_with("`rounding`: expected ScaleRounding::Exact or ScaleRounding::Ceil"), "{e}");
}

#[test]
fn plan_fills_parameters_and_flags() {
    let s = scales(ScaleLayout::MMajor { ld: 8 }, 7, 4, 31);
    let p = plan(op("x", 7, 512, 512, X, 2), op("codes", 7, 512, 512, Q, 1), s, 1, ScaleRounding::Ceil).unwrap();
    assert_eq!((p.rows, p.cols, p.block_rows, p.scale_row_stride, p.scale_col_stride), (7, 512, 1, 1, 8));
    assert_eq!(p.flags, FP8_VECTORIZED | FP8_UE8M0);
    // a codes row stride of 516 bytes breaks 8-byte alignment of the E4M3 rows
    let p = plan(op("x", 7, 512, 512, X, 2), op("codes", 7, 512, 516, Q, 1), s, 1, ScaleRounding::Exact).unwrap();
    assert_eq!(p.flags, 0);
    // an f32 input at a 16-byte-aligned stride stays vectorized
    let p = plan(op("x", 7, 512, 516, X, 4), op("codes", 7, 512, 512, Q, 1), s, 1, ScaleRounding::Exact).unwrap();
    assert_eq!(p.flags, FP8_VECTORIZED);
    // per block: [⌈N/128⌉, K/128] row-major with its ld
    let s = scales(ScaleLayout::RowMajor { ld: 5 }, 3, 4, 14);
    let p = plan(op("w", 300, 512, 512, X, 2), op("codes", 300, 512, 512, Q, 1), s, 128, ScaleRounding::Exact).unwrap();
    assert_eq!((p.block_rows, p.scale_row_stride, p.scale_col_stride), (128, 5, 1));
}

#[test]
fn plan_rejects_bad_arguments() {
    let s = scales(ScaleLayout::RowMajor { ld: 2 }, 4, 2, 8);
    let e = plan(op("x", 4, 200, 200, X, 2), op("codes", 4, 200, 200, Q, 1), s, 1, ScaleRounding::Exact).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = plan(op("x", 4, 256, 256, X, 2), op("codes", 3, 256, 256, Q, 1), s, 1, ScaleRounding::Exact).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "codes", .. }), "{e}");
    let e = plan(op("x", 5, 256, 256, X, 2), op("codes", 5, 256, 256, Q, 1), s, 1, ScaleRounding::Exact).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "scales", .. }), "{e}");
    let short = ScaleInput { len: 7, ..s };
    let e =
        plan(op("x", 4, 256, 256, X, 2), op("codes", 4, 256, 256, Q, 1), short, 1, ScaleRounding::Exact).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", required: 8, actual: 7 }), "{e}");
    let e =
        plan(op("x", 4, 256, 256, X, 2), op("codes", 4, 256, 256, X + 100, 1), s, 1, ScaleRounding::Exact).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "codes", other: "x" }), "{e}");
    let inside_q = ScaleInput { addr: Q + 64, ..s };
    let e = plan(op("x", 4, 256, 256, X, 2), op("codes", 4, 256, 256, Q, 1), inside_q, 1, ScaleRounding::Exact)
        .unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "scales", other: "codes" }), "{e}");
}

#[test]
fn dequantize_errors_are_named_from_the_call_side() {
    let s = scales(ScaleLayout::RowMajor { ld: 2 }, 4, 2, 8);
    // K is the input's (codes), the output must match it, and an overlap is `out`'s fault
    let e = plan_dequantize(op("out", 4, 200, 200, X, 2), op("codes", 4, 200, 200, Q, 1), s, 1).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "codes", .. }), "{e}");
    let e = plan_dequantize(op("out", 3, 256, 256, X, 2), op("codes", 4, 256, 256, Q, 1), s, 1).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    let e = plan_dequantize(op("out", 4, 256, 256, Q, 2), op("codes", 4, 256, 256, Q, 1), s, 1).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "codes" }), "{e}");
    let e = plan_dequantize(op("out", 4, 256, 256, S, 2), op("codes", 4, 256, 256, Q, 1), s, 1).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "scales" }), "{e}");
    assert!(plan_dequantize(op("out", 4, 256, 256, X, 2), op("codes", 4, 256, 256, Q, 1), s, 1).is_ok());
}

/// Whether `o`'s bytes lie in the 64-bit address space (u128 arithmetic, no overflow).
fn in_address_space(o: &Operand) -> bool {
    let span = if o.rows == 0 || o.cols == 0 { 0 } else { (o.rows as u128 - 1) * o.stride as u128 + o.cols as u128 };
    o.addr as u128 + span * o.elem as u128 <= 1 << 64
}

/// f32 elements `[rows, cols]` scales span in `layout` (row-major or M-major), in u128.
fn scale_span(layout: ScaleLayout, rows: usize, cols: usize) -> u128 {
    let (rs, cs) = match layout {
        ScaleLayout::RowMajor { ld } => (ld as u128, 1),
        ScaleLayout::MMajor { ld } => (1, ld as u128),
        _ => unreachable!("only linear layouts are placed"),
    };
    if rows == 0 || cols == 0 { 0 } else { (rows as u128 - 1) * rs + (cols as u128 - 1) * cs + 1 }
}

#[test]
fn plans_survive_extreme_shapes_strides_and_scale_layouts() {
    let rows_list = [0, 1, 2, 7, 128, 129, 1 << 31, 1 << 32, 1 << 40, 1 << 62, usize::MAX / 2, usize::MAX];
    // multiples of 128 up to the top of usize, and 0
    let ks = [0, 128, 512, 1 << 32, 1 << 40, 1 << 62, usize::MAX - 127];
    let lds = [4, 1 << 32, 1 << 62, usize::MAX / 2, usize::MAX];
    for &rows in &rows_list {
        for &k in &ks {
            let strides = [k, k.saturating_add(128), 1 << 40, 1 << 62, usize::MAX];
            for (si, &stride) in strides.iter().enumerate() {
                let codes_stride = strides[(si + 2) % strides.len()];
                for block_rows in [1, 128] {
                    let want = [if block_rows == 1 { rows } else { rows.div_ceil(128) }, k / 128];
                    let mut layouts = vec![ScaleLayout::RowMajor { ld: want[1] }, ScaleLayout::MMajor { ld: want[0] }];
                    layouts
                        .extend(lds.iter().flat_map(|&ld| [ScaleLayout::RowMajor { ld }, ScaleLayout::MMajor { ld }]));
                    for layout in layouts {
                        let span = scale_span(layout, want[0], want[1]);
                        for len in [span.min(usize::MAX as u128) as usize, usize::MAX] {
                            for (xa, sa) in [(X, S), (u64::MAX - 15, S), (X, u64::MAX - 15), (1 << 62, u64::MAX / 2)] {
                                let hp = op("x", rows, k, stride, xa, 2);
                                let codes = op("codes", rows, k, codes_stride, Q, 1);
                                let scales = ScaleInput { layout, shape: want, addr: sa, len };
                                let case = format!("{hp:?} {codes:?} {scales:?} block_rows {block_rows}");
                                let check = |p: &crate::abi::Fp8QuantParams| {
                                    assert_eq!((p.rows, p.cols), (rows as u64, k as u64), "{case}");
                                    assert_eq!((p.x, p.codes, p.scales), (xa, Q, sa), "{case}");
                                    assert!(span <= len as u128, "{case}: {span} scales");
                                    assert!(sa as u128 + 4 * span <= 1 << 64, "{case}");
                                    if rows > 0 {
                                        assert!(in_address_space(&hp) && in_address_space(&codes), "{case}");
                                    }
                                };
                                if let Ok(p) = plan(hp, codes, scales, block_rows, ScaleRounding::Exact) {
                                    check(&p);
                                }
                                let out = Operand { name: "out", ..hp };
                                if let Ok(p) = plan_dequantize(out, codes, scales, block_rows) {
                                    check(&p);
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
