//! Builds the `kernels-gpu` crate to PTX with rustc's NVPTX backend and leaves the modules in
//! `OUT_DIR` for `host/` to embed with `include_str!`.
//!
//! Two modules from the same source:
//! - `sm_90a.ptx`: `-C target-cpu=sm_90a -C target-feature=+ptx83`, every kernel (Hopper-only
//!   ones use wgmma/TMA, and the tensormap proxy fence of PTX ISA 8.3); loads only on compute
//!   capability 9.0.
//! - `sm_80.ptx`: `-C target-cpu=sm_80`, the portable module: kernels that need no Hopper
//!   instruction, JIT-compiled by the driver for any GPU of compute capability 8.0 or newer.
//!
//! Each is a nested `cargo rustc -Zbuild-std=core --target nvptx64-nvidia-cuda` with fat LTO and
//! one codegen unit, run with the outer cargo's environment removed (so neither the outer
//! toolchain nor the host RUSTFLAGS leak in) in its own target directory. `--emit=asm=PATH` writes
//! the whole post-LTO module as PTX; `-C linker=/bin/true` makes the final link a no-op (the
//! `llvm-bitcode-linker` rustup would need is not used).
//!
//! Environment:
//! - `LOWP_PTX_DIR`: a directory holding prebuilt `sm_90a.ptx` and `sm_80.ptx`; nothing is compiled
//!   (the launch bounds below are still added).
//! - `LOWP_KERNELS_CARGO`: the cargo to run (default: `cargo` from PATH, through rustup, which
//!   picks the toolchain pinned in `kernels-gpu/rust-toolchain.toml`).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (module name, `-C target-cpu`, `-C target-feature`: the PTX ISA version where the default
/// of the target CPU is too old)
const MODULES: [(&str, &str, &str); 2] = [("sm_90a", "sm_90a", "+ptx83"), ("sm_80", "sm_80", "")];

/// Launch bounds (`.maxntid`) of kernels that need them: rustc has no attribute for PTX's
/// `__launch_bounds__`, so they are written into the PTX after the kernel's parameter list. ptxas
/// then budgets registers for that block size, and `setmaxnreg` (which requires them) works.
/// Keep in step with the kernels' thread counts in `kernels-gpu/src/abi/`.
const LAUNCH_BOUNDS: &[(&str, u32)] =
    &[("fp8_blockwise_gemm", 384), ("bf16_gemm", 384), ("fp8_blockwise_gemm_m64", 256), ("bf16_gemm_m64", 256)];

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let kernels = manifest_dir.join("kernels-gpu");

    println!("cargo:rerun-if-changed=kernels-gpu/src");
    println!("cargo:rerun-if-changed=kernels-gpu/Cargo.toml");
    println!("cargo:rerun-if-changed=kernels-gpu/rust-toolchain.toml");
    println!("cargo:rerun-if-env-changed=LOWP_PTX_DIR");
    println!("cargo:rerun-if-env-changed=LOWP_KERNELS_CARGO");

    if let Some(dir) = env::var_os("LOWP_PTX_DIR") {
        for (name, _, features) in MODULES {
            let src = Path::new(&dir).join(format!("{name}.ptx"));
            let ptx = fs::read_to_string(&src)
                .unwrap_or_else(|e| panic!("LOWP_PTX_DIR: cannot read {}: {e}", src.display()));
            check_self_contained(name, &ptx);
            check_ptx_version(name, &ptx, features).unwrap_or_else(|e| panic!("LOWP_PTX_DIR: {}: {e}", src.display()));
            let ptx = add_launch_bounds(&ptx).unwrap_or_else(|e| panic!("LOWP_PTX_DIR: {}: {e}", src.display()));
            fs::write(out_dir.join(format!("{name}.ptx")), ptx).expect("write PTX into OUT_DIR");
        }
        return;
    }
    if env::var_os("DOCS_RS").is_some() {
        // docs.rs builds without network or nightly components: embed empty modules.
        for (name, _, _) in MODULES {
            fs::write(out_dir.join(format!("{name}.ptx")), "").expect("write PTX into OUT_DIR");
        }
        return;
    }

    // Both modules build at once (each nested build is mostly one LTO thread).
    let handles: Vec<_> = MODULES
        .iter()
        .map(|&(name, cpu, features)| {
            let kernels = kernels.clone();
            let out_dir = out_dir.clone();
            std::thread::spawn(move || build_module(&kernels, &out_dir, name, cpu, features))
        })
        .collect();
    for h in handles {
        if let Err(e) = h.join().expect("kernel build thread panicked") {
            // Rustc's own diagnostics were printed to stderr by the nested cargo, above this.
            panic!("{e}");
        }
    }
}

fn build_module(kernels: &Path, out_dir: &Path, name: &str, cpu: &str, features: &str) -> Result<(), String> {
    let target_dir = out_dir.join("kernels-target").join(name);
    let ptx_path = out_dir.join(format!("{name}.ptx"));
    let mut rustflags = vec![
        format!("-Ctarget-cpu={cpu}"),
        "-Clinker=/bin/true".to_string(),
        "-Zunstable-options".to_string(),
        "-Cpanic=immediate-abort".to_string(),
    ];
    if !features.is_empty() {
        rustflags.push(format!("-Ctarget-feature={features}"));
    }
    let rustflags = rustflags.join("\x1f");

    let cargo = env::var("LOWP_KERNELS_CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(&cargo);
    // Strip the outer build's configuration: toolchain override, host flags, target, jobserver.
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = k == "CARGO_HOME" || k == "CARGO_NET_OFFLINE" || k.starts_with("CARGO_HTTP") || k.starts_with("CARGO_REGISTRIES");
        if (k.starts_with("CARGO") && !keep)
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTDOC")
            || k == "RUSTFLAGS"
            || k == "RUSTUP_TOOLCHAIN"
            || k == "TARGET"
            || k == "HOST"
            || k == "OUT_DIR"
            || k == "DEBUG"
            || k == "PROFILE"
            || k == "OPT_LEVEL"
            || k == "NUM_JOBS"
        {
            cmd.env_remove(&k);
        }
    }
    cmd.current_dir(kernels)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .args(["rustc", "--release", "--lib", "-Zbuild-std=core", "--target", "nvptx64-nvidia-cuda"])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--")
        .arg(format!("--emit=asm={}", ptx_path.display()));

    let status = cmd
        .status()
        .map_err(|e| format!("could not run `{cargo}` to build kernels-gpu ({name}): {e}. lowp needs rustup (the toolchain in kernels-gpu/rust-toolchain.toml, with rust-src), or LOWP_PTX_DIR pointing at prebuilt PTX."))?;
    if !status.success() {
        return Err(format!("kernels-gpu failed to build for {name} (target-cpu {cpu}); rustc's errors are printed above"));
    }
    let ptx = fs::read_to_string(&ptx_path)
        .map_err(|e| format!("kernels-gpu built for {name} but left no PTX at {}: {e}", ptx_path.display()))?;
    check_self_contained(name, &ptx);
    check_ptx_version(name, &ptx, features)?;
    let ptx = add_launch_bounds(&ptx)?;
    fs::write(&ptx_path, ptx).map_err(|e| format!("cannot write {}: {e}", ptx_path.display()))?;
    Ok(())
}

/// Inserts `.maxntid N, 1, 1` after the parameter list of each kernel in `LAUNCH_BOUNDS` that the
/// module defines (idempotent: a kernel that already has it is left alone).
fn add_launch_bounds(ptx: &str) -> Result<String, String> {
    let mut lines: Vec<String> = ptx.lines().map(str::to_owned).collect();
    for (kernel, threads) in LAUNCH_BOUNDS {
        let header = format!(".visible .entry {kernel}(");
        let Some(start) = lines.iter().position(|l| l.trim_start().starts_with(&header)) else { continue };
        let close = (start..lines.len())
            .find(|&i| lines[i].trim() == ")")
            .ok_or_else(|| format!("PTX: no end of the parameter list of {kernel}"))?;
        if lines.get(close + 1).is_some_and(|l| l.contains(".maxntid")) {
            continue;
        }
        lines.insert(close + 1, format!(".maxntid {threads}, 1, 1"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Checks that the module declares at least the PTX ISA version `features` asks for (`+ptx83`:
/// `.version 8.3`), which its instructions need (rustc passes the feature to LLVM silently).
fn check_ptx_version(name: &str, ptx: &str, features: &str) -> Result<(), String> {
    let Some(want) = features.split(',').find_map(|f| f.strip_prefix("+ptx")) else { return Ok(()) };
    let want: u32 = want.parse().map_err(|_| format!("bad PTX feature {features}"))?;
    let have = ptx
        .lines()
        .find_map(|l| l.trim().strip_prefix(".version "))
        .and_then(|v| v.trim().split_once('.'))
        .and_then(|(ma, mi)| Some(ma.parse::<u32>().ok()? * 10 + mi.parse::<u32>().ok()?))
        .ok_or_else(|| format!("PTX module {name} has no `.version`"))?;
    if have < want {
        return Err(format!("PTX module {name} declares .version {}.{}; it needs {}.{} or newer", have / 10, have % 10, want / 10, want % 10));
    }
    Ok(())
}

/// A module the driver can load on its own: no call to a function it does not define.
fn check_self_contained(name: &str, ptx: &str) {
    if let Some(line) = ptx.lines().find(|l| l.contains(".extern .func")) {
        panic!("PTX module {name} is not self-contained: `{}` (a core/compiler-builtins function was not linked in; keep kernels free of it)", line.trim());
    }
    if !ptx.contains(".entry") {
        panic!("PTX module {name} defines no kernel entry");
    }
}
