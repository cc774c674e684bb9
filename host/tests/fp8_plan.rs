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

fn gemm_input(m: usize, n: usize, k: usize) -> GemmInput {
    GemmInput {
        a: op("a", m, k, k, X, 1),
        b: op("b", n, k, k, Q, 1),
        d: op("d", m, n, n, 0x7300_0000_0000, 2),
        sa: group_scales(ScaleLayout::MMajor { ld: m_major_ld(m) }, m, k, S, m_major_ld(m) * (k / 128)).unwrap(),
        sb: ScaleArg { addr: 0x7400_0000_0000, len: n.div_ceil(128) * (k / 128), row_stride: k / 128, col_stride: 1, rows: n.div_ceil(128), cols: k / 128 },
    }
}

#[test]
fn gemm_plan_accepts_deepseek_shapes_and_odd_m_n() {
    for (m, n, k) in [(4096, 7168, 2048), (1, 2112, 7168), (7, 128, 128), (1000, 2112, 7168)] {
        let p = gemm_plan(&gemm_input(m, n, k)).unwrap();
        assert_eq!((p.rows as usize, p.n as usize, p.k as usize), (m, n, k));
        assert_eq!((p.sa_row_stride, p.sa_col_stride), (1, m_major_ld(m) as u64));
        assert_eq!(p.sb_stride as usize, k / 128);
    }
}

#[test]
fn gemm_plan_rejects_bad_arguments() {
    let mut g = gemm_input(64, 256, 200);
    g.b.cols = 200;
    assert!(matches!(gemm_plan(&g), Err(Error::Shape { arg: "a", .. })));
    let mut g = gemm_input(64, 256, 256);
    g.b.cols = 384;
    assert!(matches!(gemm_plan(&g), Err(Error::Shape { arg: "b", .. })));
    let mut g = gemm_input(64, 256, 256);
    g.d.cols = 255;
    assert!(matches!(gemm_plan(&g), Err(Error::Shape { arg: "d", .. })));
    let mut g = gemm_input(64, 256, 256);
    g.a.stride = 264; // 264 bytes: not a multiple of 16
    let e = gemm_plan(&g).unwrap_err();
    assert!(matches!(e, Error::Alignment { arg: "a", required: 16, actual: 264 }), "{e}");
    let mut g = gemm_input(64, 256, 256);
    g.b.addr += 8;
    assert!(matches!(gemm_plan(&g), Err(Error::Alignment { arg: "b", required: 16, .. })));
    let mut g = gemm_input(64, 255, 256);
    g.d.stride = 255; // odd row stride: bf16 pairs would be misaligned
    assert!(matches!(gemm_plan(&g), Err(Error::Alignment { arg: "d", required: 4, .. })));
    let mut g = gemm_input(64, 256, 256);
    g.sb.rows = 1;
    assert!(matches!(gemm_plan(&g), Err(Error::Shape { arg: "sb", .. })));
    let mut g = gemm_input(64, 256, 256);
    g.sa.len -= 1;
    assert!(matches!(gemm_plan(&g), Err(Error::BufferTooSmall { arg: "sa", .. })));
    let mut g = gemm_input(64, 256, 256);
    g.d.addr = g.sa.addr;
    assert!(matches!(gemm_plan(&g), Err(Error::Aliasing { arg: "d", other: "sa" })));
}
