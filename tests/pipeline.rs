//! The handle, checked without a GPU: module selection, the no-driver path, error messages.
//! (The embedded PTX modules are checked against the host's kernel names by the unit tests in
//! `host/tests/modules.rs`.)

use lowp::Arch;

#[test]
fn module_follows_compute_capability() {
    assert_eq!(Arch::for_compute_capability(9, 0), Some(Arch::Sm90a));
    assert_eq!(Arch::for_compute_capability(8, 0), Some(Arch::Sm80));
    assert_eq!(Arch::for_compute_capability(8, 9), Some(Arch::Sm80));
    assert_eq!(Arch::for_compute_capability(10, 0), Some(Arch::Sm80)); // sm_90a code does not run on Blackwell
    assert_eq!(Arch::for_compute_capability(12, 0), Some(Arch::Sm80));
    assert_eq!(Arch::for_compute_capability(7, 5), None);
}

#[test]
fn no_driver_is_a_typed_error_not_a_panic() {
    if lowp::driver_available() {
        eprintln!("driver present: checking that device_count answers");
        assert!(lowp::device_count().is_ok());
        let e = lowp::Lowp::new(usize::MAX).unwrap_err();
        assert!(matches!(e, lowp::Error::NoDevice { ordinal: usize::MAX, .. }), "{e}");
        return;
    }
    assert!(matches!(lowp::device_count(), Err(lowp::Error::NoDriver)));
    let e = lowp::Lowp::new(0).unwrap_err();
    assert!(matches!(e, lowp::Error::NoDriver), "{e}");
    assert!(e.to_string().contains("driver"), "{e}");
}

#[test]
fn errors_name_the_argument_and_both_values() {
    let e = lowp::Error::Shape { arg: "weight", expected: "4096 elements".into(), actual: "4095 elements".into() };
    assert_eq!(e.to_string(), "`weight`: expected 4096 elements, got 4095 elements");
    let e = lowp::Error::Alignment { arg: "x", required: 16, actual: 0x7f00_0000_0002 };
    assert!(e.to_string().contains("`x`") && e.to_string().contains("16") && e.to_string().contains("0x7f0000000002"));
    let e =
        lowp::Error::Layout { arg: "scales", expected: "ScaleLayout::RowMajor", actual: lowp::ScaleLayout::Swizzled };
    assert_eq!(e.to_string(), "`scales`: expected ScaleLayout::RowMajor scales, got ScaleLayout::Swizzled");
}
