//! Unit tests of `fp8::plan` and the scale layouts: no GPU needed.
use super::*;

const X: u64 = 0x7000_0000_0000;
const Q: u64 = 0x7100_0000_0000;
const S: u64 = 0x7200_0000_0000;

fn op(name: &'static str, rows: usize, cols: usize, stride: usize, addr: u64, elem: usize) -> Operand {
    Operand { name, rows, cols, stride, addr, elem }
}

#[test]
fn row_major_and_m_major_group_scales() {
    let s = group_scales(ScaleLayout::RowMajor, 7, 512, S, 28).unwrap();
    assert_eq!((s.row_stride, s.col_stride, s.required()), (4, 1, 28));
    let s = group_scales(ScaleLayout::MMajor { ld: 8 }, 7, 512, S, 31).unwrap();
    assert_eq!((s.row_stride, s.col_stride, s.required()), (1, 8, 31));
    assert!(matches!(group_scales(ScaleLayout::MMajor { ld: 6 }, 7, 512, S, 100), Err(Error::Shape { arg: "scales", .. })));
    assert_eq!(m_major_ld(1), 4);
    assert_eq!(m_major_ld(4), 4);
    assert_eq!(m_major_ld(1001), 1004);
}

#[test]
fn plan_fills_parameters_and_flags() {
    let s = group_scales(ScaleLayout::MMajor { ld: 8 }, 7, 512, S, 31).unwrap();
    let p = plan(op("x", 7, 512, 512, X, 2), op("q", 7, 512, 512, Q, 1), s, 1, ScaleRecipe::Ue8m0).unwrap();
    assert_eq!((p.rows, p.cols, p.block_rows, p.scale_row_stride, p.scale_col_stride), (7, 512, 1, 1, 8));
    assert_eq!(p.flags, FP8_VECTORIZED | FP8_UE8M0);
    // a q row stride of 516 bytes breaks 8-byte alignment of the E4M3 rows
    let p = plan(op("x", 7, 512, 512, X, 2), op("q", 7, 512, 516, Q, 1), s, 1, ScaleRecipe::Float).unwrap();
    assert_eq!(p.flags, 0);
    // an f32 input at a 16-byte-aligned stride stays vectorized
    let p = plan(op("x", 7, 512, 516, X, 4), op("q", 7, 512, 512, Q, 1), s, 1, ScaleRecipe::Float).unwrap();
    assert_eq!(p.flags, FP8_VECTORIZED);
}

#[test]
fn plan_rejects_bad_arguments() {
    let s = group_scales(ScaleLayout::RowMajor, 4, 256, S, 8).unwrap();
    let e = plan(op("x", 4, 200, 200, X, 2), op("q", 4, 200, 200, Q, 1), s, 1, ScaleRecipe::Float).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = plan(op("x", 4, 256, 256, X, 2), op("q", 3, 256, 256, Q, 1), s, 1, ScaleRecipe::Float).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "q", .. }), "{e}");
    let short = ScaleArg { len: 7, ..s };
    let e = plan(op("x", 4, 256, 256, X, 2), op("q", 4, 256, 256, Q, 1), short, 1, ScaleRecipe::Float).unwrap_err();
    assert!(matches!(e, Error::BufferTooSmall { arg: "scales", required: 8, actual: 7 }), "{e}");
    let e = plan(op("x", 4, 256, 256, X, 2), op("q", 4, 256, 256, X + 100, 1), s, 1, ScaleRecipe::Float).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "q", other: "x" }), "{e}");
    let inside_q = ScaleArg { addr: Q + 64, ..s };
    let e = plan(op("x", 4, 256, 256, X, 2), op("q", 4, 256, 256, Q, 1), inside_q, 1, ScaleRecipe::Float).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "scales", other: "q" }), "{e}");
}
