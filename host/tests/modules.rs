//! The embedded PTX modules against the kernels the host launches: every kernel a family
//! resolves by name is in the module it runs from, and nothing else is compiled.

use crate::abi;
use crate::ptx::{Arch, SM_80, SM_90A};

/// Kernels of the portable module (also compiled into the sm_90a module), one list per family.
fn portable_kernels() -> impl Iterator<Item = &'static str> {
    [
        crate::context::KERNELS,
        crate::rmsnorm::KERNELS,
        crate::cast::KERNELS,
        crate::fp8::KERNELS,
        crate::qk_norm_rope::KERNELS,
        crate::microscaling::KERNELS,
    ]
    .into_iter()
    .flat_map(|f| f.iter().copied())
}

/// Kernels only the sm_90a module has (wgmma/TMA).
fn hopper_kernels() -> impl Iterator<Item = &'static str> {
    crate::gemm::KERNELS.iter().copied()
}

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
    let e90 = entries(SM_90A);
    let e80 = entries(SM_80);
    for name in portable_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}` (has {e90:?})");
        assert!(e80.contains(&name), "sm_80 module lacks `{name}` (has {e80:?})");
    }
    for name in hopper_kernels() {
        assert!(e90.contains(&name), "sm_90a module lacks `{name}`");
        assert!(!e80.contains(&name), "the portable module has the Hopper-only `{name}`");
    }
    // And nothing is compiled that the host never loads.
    for name in &e90 {
        assert!(
            portable_kernels().chain(hopper_kernels()).any(|k| k == *name),
            "kernel `{name}` is in the sm_90a module but no family launches it"
        );
    }
}

#[test]
fn kernel_parameters_are_one_struct_of_the_shared_size() {
    // Each RMSNorm entry takes exactly one 72-byte, 8-aligned parameter: `RmsNormParams`.
    for arch in [Arch::Sm90a, Arch::Sm80] {
        let ptx = arch.ptx();
        for name in ["rmsnorm_bf16", "rmsnorm_f16", "add_rmsnorm_bf16", "add_rmsnorm_f16"] {
            let decl = format!(".param .align 8 .b8 {name}_param_0[{}]", std::mem::size_of::<abi::RmsNormParams>());
            assert!(ptx.contains(&decl), "{}: `{name}` does not take one RmsNormParams (`{decl}`)", arch.name());
            assert!(
                !ptx.contains(&format!("{name}_param_1")),
                "{}: `{name}` takes more than one parameter",
                arch.name()
            );
        }
        let decl =
            format!(".param .align 8 .b8 cast_f32_to_e4m3fn_param_0[{}]", std::mem::size_of::<abi::CastParams>());
        assert!(ptx.contains(&decl), "{}: cast kernel parameter is not CastParams", arch.name());
    }
}

#[test]
fn fp8_conversion_uses_cvt_on_hopper_and_software_on_sm80() {
    assert!(SM_90A.contains("cvt.rn.satfinite.e4m3x2.f32"));
    assert!(!SM_80.contains("e4m3x2"), "sm_80 has no FP8 cvt; the module must use the software path");
}
