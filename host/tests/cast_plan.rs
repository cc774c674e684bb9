//! Unit tests of the cast checks: lengths, overlap and the UE8M0 rounding, no GPU needed.
use super::KERNELS;
use super::plan::{VecArg, plan, ue8m0_kernel};
use crate::dtype::{DType, F4E2M1x2, F8E4M3, F8E5M2};
use crate::error::Error;
use crate::scale::ScaleRounding;

const X: u64 = 0x7000_0000_0000;
const OUT: u64 = 0x7100_0000_0000;

fn x(len: usize) -> VecArg {
    VecArg { name: "x", len, addr: X, dtype: DType::F32 }
}

fn out(len: usize, dtype: DType) -> VecArg {
    VecArg { name: "out", len, addr: OUT, dtype }
}

#[test]
fn plan_counts_inputs_and_packs_fp4_two_per_byte() {
    for dtype in [DType::Bf16, DType::F16, DType::E4M3, DType::E5M2, DType::Ue8m0] {
        let p = plan(x(1001), out(1001, dtype)).unwrap();
        assert_eq!((p.src, p.dst, p.n), (X, OUT, 1001), "{dtype}");
    }
    let p = plan(x(1000), out(500, DType::E2M1x2)).unwrap();
    assert_eq!(p.n, 1000);
    // empty is fine (the launch is skipped)
    assert_eq!(plan(x(0), out(0, DType::E2M1x2)).unwrap().n, 0);
}

#[test]
fn plan_rejects_lengths_naming_the_argument() {
    let e = plan(x(1000), out(999, DType::Bf16)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    assert_eq!(e.to_string(), "`out`: expected 1000 elements of bf16 for 1000 inputs, got 999 elements");
    let e = plan(x(1000), out(1000, DType::E2M1x2)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    assert!(e.to_string().contains("500 elements of e2m1x2"), "{e}");
    let e = plan(x(7), out(3, DType::E2M1x2)).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    assert!(e.to_string().contains("multiple of 2") && e.to_string().contains("7 elements"), "{e}");
}

#[test]
fn plan_rejects_overlapping_vectors() {
    // 16 f32 at X span 64 bytes: an out starting inside them overlaps
    let e = plan(x(16), VecArg { name: "out", len: 16, addr: X + 60, dtype: DType::E4M3 }).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "x" }), "{e}");
    // adjacent is fine
    assert!(plan(x(16), VecArg { name: "out", len: 16, addr: X + 64, dtype: DType::E4M3 }).is_ok());
    assert!(plan(x(8), VecArg { name: "out", len: 8, addr: X - 16, dtype: DType::Bf16 }).is_ok());
    let e = plan(x(8), VecArg { name: "out", len: 8, addr: X - 14, dtype: DType::Bf16 }).unwrap_err();
    assert!(matches!(e, Error::Aliasing { arg: "out", other: "x" }), "{e}");
}

#[test]
fn ue8m0_takes_floor_and_ceil_and_refuses_exact() {
    assert_eq!(ue8m0_kernel(ScaleRounding::Floor).unwrap(), "cast_f32_to_ue8m0_floor");
    assert_eq!(ue8m0_kernel(ScaleRounding::Ceil).unwrap(), "cast_f32_to_ue8m0_ceil");
    let e = ue8m0_kernel(ScaleRounding::Exact).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidValue { arg: "rounding", actual, .. } if actual == "ScaleRounding::Exact"),
        "{e}"
    );
    assert!(e.to_string().starts_with("`rounding`: expected ScaleRounding::Floor or ScaleRounding::Ceil"), "{e}");
    assert!(e.to_string().ends_with("got ScaleRounding::Exact"), "{e}");
}

#[test]
fn every_kernel_a_cast_names_is_in_the_family_list() {
    let named = [
        <half::bf16 as super::sealed::Sealed>::KERNEL,
        <half::f16 as super::sealed::Sealed>::KERNEL,
        <F8E4M3 as super::sealed::Sealed>::KERNEL,
        <F8E5M2 as super::sealed::Sealed>::KERNEL,
        <F4E2M1x2 as super::sealed::Sealed>::KERNEL,
        ue8m0_kernel(ScaleRounding::Floor).unwrap(),
        ue8m0_kernel(ScaleRounding::Ceil).unwrap(),
    ];
    for k in named {
        assert!(KERNELS.contains(&k), "{k}");
    }
    assert_eq!(named.len(), KERNELS.len());
}

/// Lengths at and past every width the checks compute in.
const EXTREME_LENS: [usize; 14] = [
    0,
    1,
    2,
    7,
    1 << 31,
    1 << 32,
    1 << 40,
    1 << 62,
    usize::MAX / 4 + 1,
    usize::MAX / 2,
    usize::MAX / 2 + 1,
    usize::MAX - 1,
    usize::MAX,
    1000,
];
/// Addresses up to the top of the 64-bit space.
const EXTREME_ADDRS: [u64; 7] = [0, 16, X, 1 << 62, u64::MAX / 2, u64::MAX - 15, u64::MAX];

#[test]
fn plan_survives_extreme_lengths_and_addresses() {
    let dtypes = [DType::Bf16, DType::F16, DType::E4M3, DType::E5M2, DType::E2M1x2, DType::Ue8m0];
    let end = |v: &VecArg| v.addr as u128 + v.len as u128 * v.dtype.size_of() as u128;
    for dtype in dtypes {
        let per = dtype.elems_per_unit();
        for &n in &EXTREME_LENS {
            // the matching length (the deep path) and mismatched ones
            for out_len in [n / per, n, n.wrapping_add(1), usize::MAX] {
                for &xa in &EXTREME_ADDRS {
                    for &oa in &EXTREME_ADDRS {
                        let xv = VecArg { name: "x", len: n, addr: xa, dtype: DType::F32 };
                        let ov = VecArg { name: "out", len: out_len, addr: oa, dtype };
                        let Ok(p) = plan(xv, ov) else { continue };
                        let case = format!("{n} f32 at {xa:#x} -> {out_len} {dtype} at {oa:#x}");
                        assert_eq!((p.n, p.src, p.dst), (n as u64, xa, oa), "{case}");
                        assert_eq!(out_len as u128 * per as u128, n as u128, "{case}");
                        if n > 0 {
                            // both in the address space, and apart
                            assert!(end(&xv) <= 1 << 64 && end(&ov) <= 1 << 64, "{case}");
                            assert!(end(&ov) <= xa as u128 || end(&xv) <= oa as u128, "{case}");
                        }
                    }
                }
            }
        }
    }
}
