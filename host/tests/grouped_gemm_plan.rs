//! Unit tests of `grouped_gemm::grouped_plan`: no GPU needed.
use super::*;

const X: u64 = 0x7000_0000_0000;
const W: u64 = 0x7100_0000_0000;
const Y: u64 = 0x7200_0000_0000;

fn shape(rows: usize, k: usize, n: usize, e: usize, elem: usize) -> GroupedShape {
    GroupedShape { x: (rows, k, k, X), w: (e * n, k, k, W), y: (rows, n, n, Y), n, elem, groups_len: e, max_m: None }
}

#[test]
fn accepts_moe_shapes() {
    assert_eq!(grouped_plan(&shape(8 * 512, 7168, 4096, 8, 2)).unwrap(), 8);
    assert_eq!(grouped_plan(&shape(64 * 128, 2048, 7168, 64, 1)).unwrap(), 64);
    let mut s = shape(32 * 64, 512, 256, 32, 1);
    s.max_m = Some(64);
    assert_eq!(grouped_plan(&s).unwrap(), 32);
    assert_eq!(tile_bound(1000, 4, 256, None), (8 + 4) * 2);
    assert_eq!(tile_bound(0, 4, 256, Some(100)), 4 * 1 * 2);
}

#[test]
fn rejects_bad_shapes() {
    let mut s = shape(100, 512, 256, 4, 2);
    s.w.0 = 1000; // not a multiple of N
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "w", .. })));
    let s = shape(100, 96, 256, 4, 2); // bf16 K must be a multiple of 64
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let s = shape(100, 192, 256, 4, 1); // FP8 K must be a multiple of 128
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let mut s = shape(100, 512, 256, 4, 2);
    s.groups_len = 3;
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "group offsets", .. })));
    let mut s = shape(100, 512, 256, 4, 2);
    s.max_m = Some(32);
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "x", .. })));
    let mut s = shape(100, 512, 256, 4, 2);
    s.y.1 = 255;
    assert!(matches!(grouped_plan(&s), Err(Error::Shape { arg: "y", .. })));
    let mut s = shape(100, 512, 256, 4, 2);
    s.x.2 = 516; // 1032-byte rows: not 16-byte aligned
    assert!(matches!(grouped_plan(&s), Err(Error::Alignment { arg: "x", required: 16, .. })));
    let mut s = shape(100, 512, 256, 4, 2);
    s.y.3 = X + 64;
    assert!(matches!(grouped_plan(&s), Err(Error::Aliasing { arg: "y", other: "x" })));
}
