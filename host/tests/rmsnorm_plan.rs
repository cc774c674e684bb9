//! Unit tests of `rmsnorm::plan`: argument checks and path choice, no GPU needed.
use super::KERNELS;
use super::plan::{MatArg, Variant, plan};
use crate::error::Error;

fn m(name: &'static str, rows: usize, cols: usize, stride: usize, addr: u64) -> MatArg {
    MatArg { name, rows, cols, stride, addr, elem: 2 }
}

const A: u64 = 0x7000_0000_0000;
const B: u64 = 0x7100_0000_0000;
const C: u64 = 0x7200_0000_0000;
const W: u64 = 0x7300_0000_0000;

#[test]
fn plan_picks_vector_path_only_when_aligned() {
    let p = plan(m("x", 4, 4096, 4096, A), 4096, W, 1e-6, None, m("out", 4, 4096, 4096, B)).unwrap();
    assert_eq!(p.vectorized, 1);
    assert_eq!((p.rows, p.hidden, p.x_stride, p.out_stride), (4, 4096, 4096, 4096));
    // hidden not a multiple of 8
    let p = plan(m("x", 4, 1001, 1001, A), 1001, W, 1e-6, None, m("out", 4, 1001, 1001, B)).unwrap();
    assert_eq!(p.vectorized, 0);
    // misaligned base
    let p = plan(m("x", 4, 64, 64, A + 2), 64, W, 1e-6, None, m("out", 4, 64, 64, B)).unwrap();
    assert_eq!(p.vectorized, 0);
    // row stride not a multiple of 16 bytes
    let p = plan(m("x", 4, 64, 68, A), 64, W, 1e-6, None, m("out", 4, 64, 64, B)).unwrap();
    assert_eq!(p.vectorized, 0);
    // misaligned residual
    let p =
        plan(m("x", 4, 64, 64, A), 64, W, 0.0, Some(m("residual", 4, 64, 64, C + 4)), m("out", 4, 64, 64, B)).unwrap();
    assert_eq!(p.vectorized, 0);
}

#[test]
fn kernel_choice_follows_the_hidden_size_on_the_vector_path() {
    let pick = |hidden: usize, addr: u64| {
        let p = plan(m("x", 4, hidden, hidden, addr), hidden, W, 1e-6, None, m("out", 4, hidden, hidden, B)).unwrap();
        (Variant::of(&p), Variant::of(&p).kernel("rmsnorm", "bf16"))
    };
    assert_eq!(pick(8, A), (Variant::Warp, "rmsnorm_warp_bf16".into()));
    assert_eq!(pick(2048, A).0, Variant::Warp);
    assert_eq!(pick(2056, A), (Variant::V4, "rmsnorm_v4_bf16".into()));
    assert_eq!(pick(8192, A).0, Variant::V4);
    assert_eq!(pick(8200, A), (Variant::General, "rmsnorm_bf16".into()));
    assert_eq!(pick(16384, A).0, Variant::General);
    // the scalar path (not a multiple of 8, or misaligned) is the general kernel's
    assert_eq!(pick(2049, A).0, Variant::General);
    assert_eq!(pick(8193, A).0, Variant::General);
    assert_eq!(pick(1024, A + 2).0, Variant::General);
    // every entry point the choice can name is one the module has
    for v in [Variant::Warp, Variant::V4, Variant::General] {
        for op in ["rmsnorm", "add_rmsnorm"] {
            for t in ["bf16", "f16"] {
                assert!(KERNELS.contains(&v.kernel(op, t).as_str()), "{v:?} {op} {t}");
            }
        }
    }
}

#[test]
fn plan_rejects_bad_shapes_naming_the_argument() {
    let e = plan(m("x", 2, 16385, 16385, A), 16385, W, 1e-6, None, m("out", 2, 16385, 16385, B)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = plan(m("x", 2, 0, 0, A), 0, W, 1e-6, None, m("out", 2, 0, 0, B)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    let e = plan(m("x", 2, 64, 64, A), 64, W, 1e-6, None, m("out", 3, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    let e =
        plan(m("x", 2, 64, 64, A), 64, W, 1e-6, Some(m("residual", 2, 32, 32, C)), m("out", 2, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "residual", .. }), "{e}");
    let e = plan(m("x", 2, 64, 64, A), 63, W, 1e-6, None, m("out", 2, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "weight", .. }), "{e}");
    assert!(e.to_string().contains("weight") && e.to_string().contains("64"), "{e}");
    for eps in [f32::NAN, f32::INFINITY, -1e-6] {
        let e = plan(m("x", 2, 64, 64, A), 64, W, eps, None, m("out", 2, 64, 64, B)).unwrap_err();
        assert!(matches!(e, Error::InvalidValue { arg: "eps", .. }), "{e}");
    }
}

#[test]
fn plan_rejects_overlapping_outputs() {
    let e = plan(m("x", 2, 64, 64, A), 64, W, 1e-6, None, m("out", 2, 64, 64, A + 64)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "x" }), "{e}");
    let e =
        plan(m("x", 2, 64, 64, A), 64, W, 1e-6, Some(m("residual", 2, 64, 64, B)), m("out", 2, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "residual" }), "{e}");
    let e = plan(m("x", 2, 64, 64, A), 64, B + 32, 1e-6, None, m("out", 2, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "weight" }), "{e}");
    let e =
        plan(m("x", 2, 64, 64, A), 64, C, 1e-6, Some(m("residual", 2, 64, 64, C)), m("out", 2, 64, 64, B)).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "residual", other: "weight" }), "{e}");
    // Interleaved rows that do not overlap in bytes are still rejected when the spans overlap:
    // the check is conservative by design.
    let ok = plan(m("x", 2, 64, 64, A), 64, W, 1e-6, None, m("out", 2, 64, 64, A + 256));
    assert!(ok.is_ok());
}

/// Counts at and past every width the checks compute in.
const EXTREME_ROWS: [usize; 12] =
    [0, 1, 2, 4, 1 << 31, u32::MAX as usize, 1 << 32, 1 << 40, 1 << 62, usize::MAX / 2, usize::MAX - 1, usize::MAX];
/// Addresses up to the top of the 64-bit space.
const EXTREME_ADDRS: [u64; 6] = [0, A, 1 << 62, u64::MAX / 2, u64::MAX - 15, u64::MAX];

/// Whether `m`'s bytes lie in the 64-bit address space (u128 arithmetic, no overflow).
fn in_address_space(m: &MatArg) -> bool {
    let span = if m.rows == 0 || m.cols == 0 { 0 } else { (m.rows as u128 - 1) * m.stride as u128 + m.cols as u128 };
    m.addr as u128 + span * m.elem as u128 <= 1 << 64
}

#[test]
fn plan_survives_extreme_shapes_strides_and_addresses() {
    let hiddens = [1, 8, 64, 4096, 16384, 16385, 1 << 32, usize::MAX];
    for &rows in &EXTREME_ROWS {
        for &hidden in &hiddens {
            let strides = [hidden, hidden.saturating_add(8), 1 << 40, 1 << 62, usize::MAX / 2, usize::MAX];
            for (si, &stride) in strides.iter().enumerate() {
                let out_stride = strides[(si + 1) % strides.len()];
                for &xa in &EXTREME_ADDRS {
                    for &oa in &[B, u64::MAX - 15, u64::MAX / 2 + 1] {
                        for residual in [
                            None,
                            Some(m("residual", rows, hidden, stride, C)),
                            Some(m("residual", rows, hidden, usize::MAX, xa)),
                        ] {
                            let (x, out) = (m("x", rows, hidden, stride, xa), m("out", rows, hidden, out_stride, oa));
                            for (w_len, w_addr) in [(hidden, W), (hidden, u64::MAX - 1), (usize::MAX, W)] {
                                let Ok(p) = plan(x, w_len, w_addr, 1e-6, residual, out) else { continue };
                                let case = format!("{x:?} {out:?} {residual:?} weight {w_len} at {w_addr:#x}");
                                assert!(rows <= u32::MAX as usize && (1..=16384).contains(&hidden), "{case}");
                                assert_eq!(
                                    (p.rows as usize, p.hidden as usize, w_len),
                                    (rows, hidden, hidden),
                                    "{case}"
                                );
                                assert_eq!((p.x_stride, p.out_stride), (stride as u64, out_stride as u64), "{case}");
                                if rows > 0 {
                                    let weight = m("weight", 1, w_len, w_len, w_addr);
                                    for a in [Some(x), Some(out), residual, Some(weight)].into_iter().flatten() {
                                        assert!(in_address_space(&a), "{case}: {a:?}");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
