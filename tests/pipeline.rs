//! The build pipeline and the handle, checked without a GPU: the embedded PTX modules, the
//! host's kernel table against them, module selection, and the no-driver path.

use lowp::ptx::{self, Arch};

fn entries(ptx: &str) -> Vec<&str> {
    ptx.lines()
        .filter_map(|l| l.trim().strip_prefix(".visible .entry "))
        .map(|l| l.split('(').next().unwrap_or("").trim())
        .collect()
}

#[test]
fn both_modules_are_embedded_self_contained_and_for_their_target() {
    for (arch, target) in [(Arch::Sm90a, ".target sm_90a"), (Arch::Sm80, ".target sm_80")] {
        let ptx = arch.ptx();
        assert!(ptx.contains(target), "{}: missing `{target}`", arch.name());
        assert!(!ptx.contains(".extern .func"), "{}: unresolved function", arch.name());
        // Panics abort with `trap` (immediate-abort): no formatting machinery reaches the PTX.
        assert!(!ptx.contains("vprintf"), "{}: device printf pulled in", arch.name());
    }
}

#[test]
fn every_kernel_the_host_launches_exists_in_both_modules() {
    let e90 = entries(ptx::SM_90A);
    let e80 = entries(ptx::SM_80);
    for name in ptx::portable_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}` (has {e90:?})");
        assert!(e80.contains(&name), "sm_80 module lacks `{name}` (has {e80:?})");
    }
    for name in ptx::hopper_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}`");
        assert!(!e80.contains(&name), "the portable module has the Hopper-only `{name}`");
    }
    // And nothing is compiled that the host never loads.
    for name in &e90 {
        assert!(
            ptx::portable_kernels().chain(ptx::hopper_kernels()).any(|k| k == *name),
            "kernel `{name}` is in the sm_90a module but not in host/ptx.rs"
        );
    }
}

#[test]
fn kernel_parameters_are_one_struct_of_the_shared_size() {
    // Each RMSNorm entry takes exactly one 72-byte, 8-aligned parameter: `RmsNormParams`.
    for arch in [Arch::Sm90a, Arch::Sm80] {
        let ptx = arch.ptx();
        for name in ["rmsnorm_bf16", "rmsnorm_f16", "add_rmsnorm_bf16", "add_rmsnorm_f16"] {
            let decl = format!(".param .align 8 .b8 {name}_param_0[{}]", std::mem::size_of::<lowp::abi::RmsNormParams>());
            assert!(ptx.contains(&decl), "{}: `{name}` does not take one RmsNormParams (`{decl}`)", arch.name());
            assert!(!ptx.contains(&format!("{name}_param_1")), "{}: `{name}` takes more than one parameter", arch.name());
        }
        let decl = format!(".param .align 8 .b8 cast_f32_to_e4m3fn_param_0[{}]", std::mem::size_of::<lowp::abi::CastParams>());
        assert!(ptx.contains(&decl), "{}: cast kernel parameter is not CastParams", arch.name());
    }
}

#[test]
fn fp8_conversion_uses_cvt_on_hopper_and_software_on_sm80() {
    assert!(ptx::SM_90A.contains("cvt.rn.satfinite.e4m3x2.f32"));
    assert!(!ptx::SM_80.contains("e4m3x2"), "sm_80 has no FP8 cvt; the module must use the software path");
}

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
    let e = lowp::Error::DType { arg: "dst", expected: lowp::DType::E4M3, actual: lowp::DType::F32 };
    assert_eq!(e.to_string(), "`dst`: expected dtype float8_e4m3fn, got f32");
}
