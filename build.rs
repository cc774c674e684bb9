//! Builds the `kernels-gpu` crate to PTX with rustc's NVPTX backend and leaves the modules in
//! `OUT_DIR` for `host/` to embed with `include_str!`.
//!
//! Two modules from the same source:
//! - `sm_90a.ptx`: `-C target-cpu=sm_90a` (PTX ISA 8.0, the least sm_90a allows), every kernel
//!   (Hopper-only ones use wgmma/TMA); loads only on compute capability 9.0.
//! - `sm_80.ptx`: `-C target-cpu=sm_80`, the portable module: kernels that need no Hopper
//!   instruction, JIT-compiled by the driver for any GPU of compute capability 8.0 or newer.
//!
//! Each is a nested `cargo rustc -Zbuild-std=core --target nvptx64-nvidia-cuda` with fat LTO and
//! one codegen unit, run with the outer cargo's environment removed (so neither the outer
//! toolchain nor the host RUSTFLAGS leak in). `--emit=asm=PATH` writes the whole post-LTO module
//! as PTX; `-C linker=/bin/true` makes the final link a no-op (the `llvm-bitcode-linker` rustup
//! would need is not used).
//!
//! Toolchain: the nightly pinned in `kernels-gpu/rust-toolchain.toml`, with `rust-src`. It is
//! checked once, before any nested build; when it is missing and rustup's auto-install is on
//! (rustup's default), it is installed once, here, and otherwise the build stops with one message
//! saying what is missing, the command that installs it, and the `LOWP_PTX_DIR` alternative.
//! The nested builds run `rustup run <channel> cargo`, so neither the caller's toolchain nor a
//! `rustup override` of a parent directory applies. Where there is no rustup, the cargo and rustc
//! that build lowp are used if they are a nightly with `rust-src`.
//!
//! Cache: the finished modules are built once per kernel source and shared by every profile
//! (`cargo build`, `--release`, `cargo test`, `cargo bench`) of one target directory, under
//! `<target dir>/lowp-kernels/`: `ptx/<key>/{sm_90a,sm_80}.ptx`, where the key hashes this build
//! script, the kernel crate's sources, `Cargo.toml`, `Cargo.lock` and `rust-toolchain.toml`, and
//! the toolchain's `rustc -vV`; `target/<module>/` holds the nested builds (so an edited kernel
//! rebuilds only the kernel crate, not `core`). An entry is written in a private temporary
//! directory and renamed into place, so cargo processes building at once never see a partial one
//! (each may build it; the first rename wins). The target directory is found from `OUT_DIR`
//! (`<target>[/<triple>]/<profile>/build/<pkg>/out`); where it cannot be, the cache lives in
//! `OUT_DIR`.
//!
//! Environment:
//! - `LOWP_PTX_DIR`: a directory holding prebuilt `sm_90a.ptx` and `sm_80.ptx` (the two modules of
//!   this lowp version, as a build leaves them in `OUT_DIR` or the cache); nothing is compiled
//!   and no toolchain is needed (the launch bounds below are still added).
//! - `LOWP_KERNELS_CARGO`: the cargo to run instead (its toolchain must be a nightly with
//!   `rust-src`; a `rustc` beside it is used to check that).
//! - `DOCS_RS`: empty modules, nothing compiled.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// (module name, `-C target-cpu`, `-C target-feature`: the PTX ISA version where the default
/// of the target CPU is too old)
const MODULES: [(&str, &str, &str); 2] = [("sm_90a", "sm_90a", ""), ("sm_80", "sm_80", "")];

/// Launch bounds (`.maxntid`) of kernels that need them: rustc has no attribute for PTX's
/// `__launch_bounds__`, so they are written into the PTX after the kernel's parameter list. ptxas
/// then budgets registers for that block size, and `setmaxnreg` (which requires them) works.
/// Keep in step with the kernels' thread counts in `kernels-gpu/src/abi/`.
const LAUNCH_BOUNDS: &[(&str, u32)] = &[
    ("fp8_blockwise_gemm", 384),
    ("fp8_blockwise_gemm_n64", 384),
    ("fp8_blockwise_gemm_n112", 384),
    ("fp8_blockwise_gemm_m64", 256),
    ("fp8_blockwise_gemm_m64_n64", 256),
    ("fp8_blockwise_gemm_m64_n64_k2", 256),
    ("fp8_blockwise_gemm_m64_n64_k4", 256),
    ("fp8_blockwise_gemm_m64_n64_k8", 256),
    ("fp8_blockwise_gemm_m64_n112", 256),
    ("fp8_blockwise_gemm_m64_n192", 256),
    ("bf16_gemm", 384),
    ("bf16_gemm_n64", 384),
    ("bf16_gemm_n112", 384),
    ("bf16_gemm_n192", 384),
    ("bf16_gemm_m64", 256),
    ("bf16_gemm_m64_n64", 256),
    ("bf16_gemm_m64_n112", 256),
    ("bf16_gemm_m64_n192", 256),
    ("fp8_blockwise_gemm_c2", 384),
    ("fp8_blockwise_gemm_n112_c2", 384),
    ("bf16_gemm_c2", 384),
    ("bf16_gemm_n112_c2", 384),
    ("bf16_gemm_n192_c2", 384),
];

/// Kernels that must fit a number of blocks per SM: (name, threads per block, blocks per SM).
/// Like those of `LAUNCH_BOUNDS` they get `.maxntid threads, 1, 1`, and `.minnctapersm N` after
/// it: ptxas then budgets registers so that N blocks fit (5 blocks of 256 threads: at most 48
/// registers, where ptxas would otherwise take up to 62, which allows only 4; 6 blocks: at most
/// 40), and the grid, sized from the occupancy the driver reports, uses them. Only kernels that
/// fit without spilling in both modules (`.ci/check_ptx.py` fails on a spill): the other grouped
/// microscaling quantizers and `fp8_quantize_group_f32` would spill. None runs in clusters.
const MIN_CTAS_PER_SM: &[(&str, u32, u32)] = &[
    ("nvfp4_quantize_bf16", 256, 5),
    ("nvfp4_quantize_f16", 256, 5),
    ("nvfp4_quantize_f32", 256, 5),
    ("mxfp4_quantize_bf16", 256, 5),
    ("mxfp4_quantize_f16", 256, 5),
    ("mxfp4_quantize_f32", 256, 5),
    ("mxfp8_quantize_bf16", 256, 5),
    ("mxfp8_quantize_f16", 256, 5),
    ("mxfp8_quantize_f32", 256, 5),
    ("mxfp4_quantize_grouped_bf16", 256, 5),
    ("fp8_quantize_group_bf16", 256, 6),
    ("fp8_quantize_group_f16", 256, 6),
];

/// The parameter of the Hopper GEMM kernels (`takes_tensor_maps`) that holds their tensor maps
/// (`GemmTensorMaps`): (index, bytes). The TMA reads the maps where the launch put the parameter,
/// which must start on a 64-byte boundary. ptxas places each parameter at its declared alignment
/// (of its constant-bank address), and rustc declares kernel parameters with at most 16-byte
/// alignment, so the declaration is raised to `.align 64`, as a `__grid_constant__ CUtensorMap`
/// has in CUDA C++ (`.ci/check_ptx.py` checks the placement in the assembled kernels).
const TENSOR_MAP_PARAM: (usize, usize) = (1, 512);

/// Whether `kernel` is a Hopper GEMM entry point, which takes its tensor maps as parameter
/// `TENSOR_MAP_PARAM`.
fn takes_tensor_maps(kernel: &str) -> bool {
    kernel.starts_with("fp8_blockwise_gemm") || kernel.starts_with("bf16_gemm")
}

/// Kernels launched in thread-block clusters of a compile-time shape: `.reqnctapercluster X, Y, Z`
/// is written after their `.maxntid`, so that a plain `cuLaunchKernel` with a grid that is a
/// multiple of the shape launches clusters. Keep in step with the `CLUSTER` and `SPLIT` of the
/// GEMM entry points (`kernels-gpu/src/gemm.rs`).
const CLUSTER_DIMS: &[(&str, [u32; 3])] = &[
    ("fp8_blockwise_gemm_c2", [2, 1, 1]),
    ("fp8_blockwise_gemm_n112_c2", [2, 1, 1]),
    ("bf16_gemm_c2", [2, 1, 1]),
    ("bf16_gemm_n112_c2", [2, 1, 1]),
    ("bf16_gemm_n192_c2", [2, 1, 1]),
    ("fp8_blockwise_gemm_m64_n64_k2", [2, 1, 1]),
    ("fp8_blockwise_gemm_m64_n64_k4", [4, 1, 1]),
    ("fp8_blockwise_gemm_m64_n64_k8", [8, 1, 1]),
];

/// This file: part of the cache key (module list, flags, launch bounds, post-processing).
const BUILD_SCRIPT: &str = include_str!("build.rs");

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let kernels = manifest_dir.join("kernels-gpu");

    println!("cargo:rerun-if-changed=kernels-gpu/src");
    println!("cargo:rerun-if-changed=kernels-gpu/Cargo.toml");
    println!("cargo:rerun-if-changed=kernels-gpu/Cargo.lock");
    println!("cargo:rerun-if-changed=kernels-gpu/rust-toolchain.toml");
    println!("cargo:rerun-if-env-changed=LOWP_PTX_DIR");
    println!("cargo:rerun-if-env-changed=LOWP_KERNELS_CARGO");

    if let Some(dir) = env::var_os("LOWP_PTX_DIR") {
        for (name, _, features) in MODULES {
            let src = Path::new(&dir).join(format!("{name}.ptx"));
            let ptx = fs::read_to_string(&src).unwrap_or_else(|e| {
                fail(&format!(
                    "LOWP_PTX_DIR: cannot read {}: {e} (the directory must hold sm_90a.ptx and sm_80.ptx)",
                    src.display()
                ))
            });
            let ptx = finish_module(name, &ptx, features)
                .unwrap_or_else(|e| fail(&format!("LOWP_PTX_DIR: {}: {e}", src.display())));
            write_file(&out_dir.join(format!("{name}.ptx")), &ptx).unwrap_or_else(|e| fail(&e));
        }
        return;
    }
    if env::var_os("DOCS_RS").is_some() {
        // docs.rs builds without network or nightly components: embed empty modules.
        for (name, _, _) in MODULES {
            write_file(&out_dir.join(format!("{name}.ptx")), "").unwrap_or_else(|e| fail(&e));
        }
        return;
    }
    if let Err(e) = build(&kernels, &out_dir) {
        fail(&e);
    }
}

/// Prints `msg` (one paragraph) and stops the build.
fn fail(msg: &str) -> ! {
    let _ = writeln!(io::stderr(), "error: {msg}");
    std::process::exit(1);
}

fn write_file(path: &Path, contents: &str) -> Result<(), String> {
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Checks the toolchain, then takes both modules from the cache, building them into it first if
/// they are not there, and copies them into `out_dir`.
fn build(kernels: &Path, out_dir: &Path) -> Result<(), String> {
    let toolchain = Toolchain::find(kernels)?;
    let key = cache_key(kernels, &toolchain)?;
    let cache = cache_dir(out_dir);
    let entry = cache.join("ptx").join(&key);
    if !entry_complete(&entry) {
        build_entry(kernels, &cache, &entry, &toolchain)?;
    }
    for (name, _, _) in MODULES {
        let file = format!("{name}.ptx");
        fs::copy(entry.join(&file), out_dir.join(&file))
            .map_err(|e| format!("cannot copy {} into {}: {e}", entry.join(&file).display(), out_dir.display()))?;
    }
    Ok(())
}

fn entry_complete(entry: &Path) -> bool {
    MODULES.iter().all(|(name, _, _)| entry.join(format!("{name}.ptx")).is_file())
}

/// Builds both modules (at once: each nested build is mostly one LTO thread) into a private
/// temporary directory, then renames it to `entry`.
fn build_entry(kernels: &Path, cache: &Path, entry: &Path, toolchain: &Toolchain) -> Result<(), String> {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let tmp = cache.join("tmp").join(format!(
        "{}.{}.{nanos}",
        entry.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    fs::create_dir_all(&tmp).map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = std::thread::scope(|s| {
        let handles: Vec<_> = MODULES
            .iter()
            .map(|&(name, cpu, features)| {
                let target_dir = cache.join("target").join(name);
                let tmp = &tmp;
                s.spawn(move || build_module(kernels, toolchain, &target_dir, tmp, name, cpu, features))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a kernel build thread panicked".to_string())))
            .collect::<Result<Vec<()>, String>>()
    });
    if let Err(e) = result {
        let _ = fs::remove_dir_all(&tmp);
        return Err(e);
    }
    let parent = entry.parent().unwrap_or(cache);
    fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    match fs::rename(&tmp, entry) {
        Ok(()) => Ok(()),
        // Another build of the same key renamed its copy first: same inputs, same modules.
        Err(_) if entry_complete(entry) => {
            let _ = fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => {
            let _ = fs::remove_dir_all(&tmp);
            Err(format!("cannot move {} to {}: {e}", tmp.display(), entry.display()))
        }
    }
}

/// Where the cache lives: `lowp-kernels/` in the target directory, found from `OUT_DIR`
/// (`<target>[/<triple>]/<profile>/build/<pkg>-<hash>/out`, the target directory being the one
/// cargo marks with `CACHEDIR.TAG`); `OUT_DIR` itself where that layout is not found.
fn cache_dir(out_dir: &Path) -> PathBuf {
    let profile_dir = out_dir
        .ancestors()
        .nth(3)
        .filter(|_| out_dir.ancestors().nth(2).and_then(Path::file_name).is_some_and(|n| n == "build"));
    if let Some(profile_dir) = profile_dir {
        // <target>/<profile> or <target>/<triple>/<profile>
        for dir in profile_dir.ancestors().skip(1).take(2) {
            if dir.join("CACHEDIR.TAG").is_file() || dir.join(".rustc_info.json").is_file() {
                return dir.join("lowp-kernels");
            }
        }
    }
    if let Some(target) = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from) {
        if target.is_absolute() && out_dir.starts_with(&target) {
            return target.join("lowp-kernels");
        }
    }
    out_dir.join("lowp-kernels")
}

/// A hash of everything the modules depend on: this build script, the kernel crate's sources and
/// manifests, and the toolchain.
fn cache_key(kernels: &Path, toolchain: &Toolchain) -> Result<String, String> {
    let mut h = Fnv::new();
    h.field(BUILD_SCRIPT.as_bytes());
    h.field(toolchain.identity.as_bytes());
    for file in ["Cargo.toml", "Cargo.lock", "rust-toolchain.toml"] {
        let path = kernels.join(file);
        h.field(file.as_bytes());
        h.field(&fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
    }
    let mut files = Vec::new();
    list_files(&kernels.join("src"), &mut files)?;
    files.sort();
    for path in files {
        let rel = path.strip_prefix(kernels).unwrap_or(&path);
        h.field(rel.to_string_lossy().as_bytes());
        h.field(&fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?);
    }
    Ok(h.hex())
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| format!("cannot read {}: {e}", dir.display()))?.path();
        if path.is_dir() {
            list_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// Two 64-bit FNV-1a hashes with different offsets; each field is length-prefixed.
struct Fnv([u64; 2]);

impl Fnv {
    fn new() -> Fnv {
        Fnv([0xcbf2_9ce4_8422_2325, 0x6c62_272e_07bb_0142])
    }
    fn bytes(&mut self, data: &[u8]) {
        for &b in data {
            for h in &mut self.0 {
                *h = (*h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
            }
        }
    }
    fn field(&mut self, data: &[u8]) {
        self.bytes(&(data.len() as u64).to_le_bytes());
        self.bytes(data);
    }
    fn hex(&self) -> String {
        format!("{:016x}{:016x}", self.0[0], self.0[1])
    }
}

/// The toolchain that builds the kernels, checked to be usable.
struct Toolchain {
    /// The program and leading arguments that run its cargo.
    cargo: Vec<OsString>,
    /// `RUSTC` for the nested cargo, where there is no rustup to pick it.
    rustc: Option<OsString>,
    /// How it is run and its `rustc -vV`: part of the cache key.
    identity: String,
}

/// `channel` and `components` of `kernels-gpu/rust-toolchain.toml`.
struct Pinned {
    channel: String,
    components: Vec<String>,
}

impl Pinned {
    fn read(kernels: &Path) -> Result<Pinned, String> {
        let path = kernels.join("rust-toolchain.toml");
        let text = fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let quoted = |s: &str| s.split('"').skip(1).step_by(2).map(str::to_owned).collect::<Vec<_>>();
        let mut pinned = Pinned { channel: String::new(), components: Vec::new() };
        for line in text.lines().map(str::trim) {
            if let Some(v) = line.strip_prefix("channel") {
                pinned.channel = quoted(v).into_iter().next().unwrap_or_default();
            } else if let Some(v) = line.strip_prefix("components") {
                pinned.components = quoted(v);
            }
        }
        if pinned.channel.is_empty() {
            return Err(format!("{} names no `channel`", path.display()));
        }
        if !pinned.components.iter().any(|c| c == "rust-src") {
            pinned.components.push("rust-src".to_string());
        }
        Ok(pinned)
    }

    fn install_command(&self) -> String {
        format!("rustup toolchain install {} --component {}", self.channel, self.components.join(","))
    }
}

/// A command with the outer build's configuration removed: toolchain override, host flags,
/// target, jobserver.
fn clean_command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        let keep = k == "CARGO_HOME"
            || k == "CARGO_NET_OFFLINE"
            || k.starts_with("CARGO_HTTP")
            || k.starts_with("CARGO_REGISTRIES");
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
    cmd
}

/// Runs `cmd`, returning its stdout, or a one-line reason (its stderr's first line).
fn output(mut cmd: Command) -> Result<String, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        Err(err.lines().find(|l| !l.trim().is_empty()).unwrap_or("failed with no message").trim().to_string())
    }
}

/// Whether rustup installs a missing toolchain on use: `RUSTUP_AUTO_INSTALL=0` or
/// `rustup set auto-install disable` turn it off.
fn rustup_auto_install() -> bool {
    if let Some(v) = env::var_os("RUSTUP_AUTO_INSTALL") {
        return v != "0";
    }
    let home = env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")));
    let settings = home.and_then(|h| fs::read_to_string(h.join("settings.toml")).ok()).unwrap_or_default();
    !settings.lines().any(|l| {
        let l = l.replace(' ', "");
        l == "auto_install=\"disable\""
    })
}

/// What `rustc -vV` and `rustc --print sysroot` of a toolchain say, or why it is unusable.
fn probe_rustc(rustc: &[OsString], kernels: &Path) -> Result<(String, PathBuf), String> {
    let run = |args: &[&str]| {
        let mut cmd = clean_command(&rustc[0]);
        cmd.args(&rustc[1..]).args(args).current_dir(kernels);
        output(cmd)
    };
    let version = run(&["-vV"])?;
    let sysroot = PathBuf::from(run(&["--print", "sysroot"])?.trim());
    Ok((version, sysroot))
}

fn has_rust_src(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib/src/rust/library/core/Cargo.toml").is_file()
}

fn is_nightly(version: &str) -> bool {
    version.lines().any(|l| l.starts_with("release:") && (l.contains("nightly") || l.contains("-dev")))
}

fn os(s: &str) -> OsString {
    OsString::from(s)
}

impl Toolchain {
    fn find(kernels: &Path) -> Result<Toolchain, String> {
        let pinned = Pinned::read(kernels)?;
        let file = kernels.join("rust-toolchain.toml");
        // One paragraph: what is missing, the command that installs it, and LOWP_PTX_DIR.
        let explain = |what: String| {
            format!(
                "lowp compiles its GPU kernels with Rust {channel} (pinned in {file}) and its rust-src component; {what}. \
                 Install it with `{install}`{unset} (this changes no toolchain of your own project: lowp's build script runs the nightly \
                 for its device code only). Or build without it: set LOWP_PTX_DIR to a directory holding the prebuilt \
                 sm_90a.ptx and sm_80.ptx of this lowp version (a build with the toolchain leaves them in its OUT_DIR and in \
                 <target dir>/lowp-kernels/ptx/<key>/).",
                channel = pinned.channel,
                file = file.display(),
                install = pinned.install_command(),
                unset = if env::var_os("LOWP_KERNELS_CARGO").is_some() { " and unset LOWP_KERNELS_CARGO" } else { "" },
            )
        };

        if let Some(cargo) = env::var_os("LOWP_KERNELS_CARGO") {
            let shown = cargo.to_string_lossy().into_owned();
            let mut cmd = clean_command(&cargo);
            cmd.arg("-V").current_dir(kernels);
            let cargo_version =
                output(cmd).map_err(|e| explain(format!("LOWP_KERNELS_CARGO={shown} could not be run ({e})")))?;
            // Its toolchain's rustc, where one sits beside it, says whether it is a nightly with rust-src.
            let mut identity = format!("LOWP_KERNELS_CARGO={shown}\n{cargo_version}");
            let rustc = Path::new(&cargo).with_file_name("rustc");
            if rustc.is_file() {
                let (version, sysroot) = probe_rustc(&[rustc.into_os_string()], kernels)
                    .map_err(|e| explain(format!("the rustc beside LOWP_KERNELS_CARGO={shown} failed ({e})")))?;
                if !is_nightly(&version) {
                    return Err(explain(format!(
                        "LOWP_KERNELS_CARGO={shown} is not a nightly ({})",
                        first_line(&version)
                    )));
                }
                if !has_rust_src(&sysroot) {
                    return Err(explain(format!(
                        "LOWP_KERNELS_CARGO={shown} has no rust-src component (nothing at {})",
                        sysroot.join("lib/rustlib/src").display()
                    )));
                }
                identity.push_str(&version);
            }
            return Ok(Toolchain { cargo: vec![cargo], rustc: None, identity });
        }

        let rustup = output({
            let mut cmd = clean_command("rustup");
            cmd.arg("--version");
            cmd
        });
        if rustup.is_err() {
            // No rustup: the cargo and rustc building lowp, if they are a nightly with rust-src.
            let cargo = env::var_os("CARGO").unwrap_or_else(|| os("cargo"));
            let rustc = env::var_os("RUSTC").unwrap_or_else(|| os("rustc"));
            let shown = rustc.to_string_lossy().into_owned();
            let problem = match probe_rustc(std::slice::from_ref(&rustc), kernels) {
                Err(e) => format!("there is no rustup on PATH, and the rustc building lowp ({shown}) failed ({e})"),
                Ok((version, _)) if !is_nightly(&version) => format!(
                    "there is no rustup on PATH, and the rustc building lowp ({shown}) is not a nightly ({})",
                    first_line(&version)
                ),
                Ok((_, sysroot)) if !has_rust_src(&sysroot) => format!(
                    "there is no rustup on PATH, and the rustc building lowp ({shown}) has no rust-src (nothing at {})",
                    sysroot.join("lib/rustlib/src").display()
                ),
                Ok((version, _)) => {
                    let identity = format!("no rustup: {}\n{version}", cargo.to_string_lossy());
                    return Ok(Toolchain { cargo: vec![cargo], rustc: Some(rustc), identity });
                }
            };
            return Err(explain(format!("{problem}; rustup comes from https://rustup.rs")));
        }

        let channel = pinned.channel.clone();
        let via_rustup = |tool: &str| vec![os("rustup"), os("run"), os(&channel), os(tool)];
        let check = || -> Result<String, String> {
            let (version, sysroot) =
                probe_rustc(&via_rustup("rustc"), kernels).map_err(|e| format!("rustup cannot run it ({e})"))?;
            if !has_rust_src(&sysroot) {
                return Err(format!(
                    "it is installed without rust-src (nothing at {})",
                    sysroot.join("lib/rustlib/src").display()
                ));
            }
            Ok(version)
        };
        let version = match check() {
            Ok(version) => version,
            Err(problem) if !rustup_auto_install() => {
                return Err(explain(format!("{problem}, and rustup's auto-install is off")));
            }
            Err(problem) => {
                // Installed once, here, before any nested build (rustup is not safe to run
                // concurrently on one toolchain).
                println!(
                    "cargo:warning=lowp: installing Rust {channel} with rust-src for its GPU kernels (rustup auto-install is on): {problem}"
                );
                let mut cmd = clean_command("rustup");
                cmd.args(["toolchain", "install", &channel, "--profile", "minimal", "--no-self-update", "--component"])
                    .arg(pinned.components.join(","))
                    .stdin(Stdio::null())
                    .stdout(io::stderr());
                let installed = cmd.status().map(|s| s.success()).unwrap_or(false);
                match check() {
                    Ok(version) => version,
                    Err(problem) if installed => {
                        return Err(explain(format!("{problem} after `rustup toolchain install`")));
                    }
                    Err(problem) => {
                        return Err(explain(format!("{problem}, and installing it failed (rustup's output is above)")));
                    }
                }
            }
        };
        let identity = format!("rustup {channel}\n{version}");
        Ok(Toolchain { cargo: via_rustup("cargo"), rustc: None, identity })
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("").trim()
}

/// One module: the nested build writes raw PTX into `tmp`, which is checked and given its launch
/// bounds as `tmp/<name>.ptx`.
fn build_module(
    kernels: &Path,
    toolchain: &Toolchain,
    target_dir: &Path,
    tmp: &Path,
    name: &str,
    cpu: &str,
    features: &str,
) -> Result<(), String> {
    let raw = tmp.join(format!("{name}.raw.ptx"));
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

    let mut cmd = clean_command(&toolchain.cargo[0]);
    cmd.args(&toolchain.cargo[1..]);
    if let Some(rustc) = &toolchain.rustc {
        cmd.env("RUSTC", rustc);
    }
    cmd.current_dir(kernels)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .args(["rustc", "--release", "--lib", "-Zbuild-std=core", "--target", "nvptx64-nvidia-cuda"])
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--")
        .arg(format!("--emit=asm={}", raw.display()))
        .stdin(Stdio::null())
        .stdout(io::stderr());

    let status = cmd.status().map_err(|e| format!("could not run cargo to build kernels-gpu ({name}): {e}"))?;
    if !status.success() {
        return Err(format!(
            "kernels-gpu failed to build for {name} (target-cpu {cpu}); rustc's errors are printed above"
        ));
    }
    let ptx = fs::read_to_string(&raw)
        .map_err(|e| format!("kernels-gpu built for {name} but left no PTX at {}: {e}", raw.display()))?;
    let ptx = finish_module(name, &ptx, features)?;
    write_file(&tmp.join(format!("{name}.ptx")), &ptx)?;
    let _ = fs::remove_file(&raw);
    Ok(())
}

/// Checks a module (self-contained, PTX ISA version) and adds the launch bounds.
fn finish_module(name: &str, ptx: &str, features: &str) -> Result<String, String> {
    check_self_contained(name, ptx)?;
    check_ptx_version(name, ptx, features)?;
    add_launch_bounds(name, ptx)
}

/// Inserts `.maxntid N, 1, 1` after the parameter list of each kernel in `LAUNCH_BOUNDS` or
/// `MIN_CTAS_PER_SM` that the module defines (the sm_90a module must define them all), and after
/// that `.reqnctapercluster X, Y, Z` for each kernel in `CLUSTER_DIMS` or `.minnctapersm N` for
/// each in `MIN_CTAS_PER_SM`, and aligns the tensor-map parameter
/// (`TENSOR_MAP_PARAM`) of those that take one to 64 bytes (idempotent: a directive a kernel
/// already has is not added again).
fn add_launch_bounds(module: &str, ptx: &str) -> Result<String, String> {
    // Prebuilt PTX (`LOWP_PTX_DIR`) of another lowp version fails here first.
    let stale = "(PTX of another lowp version? build it from this source)";
    let mut lines: Vec<String> = ptx.lines().map(str::to_owned).collect();
    let bounds = LAUNCH_BOUNDS.iter().map(|&(k, t)| (k, t, None));
    for (kernel, threads, min_ctas) in bounds.chain(MIN_CTAS_PER_SM.iter().map(|&(k, t, n)| (k, t, Some(n)))) {
        let header = format!(".visible .entry {kernel}(");
        let Some(start) = lines.iter().position(|l| l.trim_start().starts_with(&header)) else {
            if module == "sm_90a" {
                return Err(format!("PTX module sm_90a has no kernel {kernel} {stale}"));
            }
            continue;
        };
        let close = (start..lines.len())
            .find(|&i| lines[i].trim() == ")")
            .ok_or_else(|| format!("PTX: no end of the parameter list of {kernel}"))?;
        if takes_tensor_maps(kernel) {
            let (index, bytes) = TENSOR_MAP_PARAM;
            let decl = format!(" .b8 {kernel}_param_{index}[{bytes}]");
            let param = (start..close)
                .find(|&i| lines[i].contains(&decl))
                .ok_or_else(|| format!("PTX: {kernel} has no {bytes}-byte tensor-map parameter {index} {stale}"))?;
            let aligned = [".param .align 16", ".param .align 64"]
                .iter()
                .find_map(|a| lines[param].trim_start().strip_prefix(a).filter(|rest| rest.starts_with(&decl)))
                .map(|rest| format!("\t.param .align 64{rest}"))
                .ok_or_else(|| {
                    format!("PTX: unexpected declaration of {kernel}'s tensor-map parameter: {}", lines[param].trim())
                })?;
            lines[param] = aligned;
        }
        if !lines.get(close + 1).is_some_and(|l| l.contains(".maxntid")) {
            lines.insert(close + 1, format!(".maxntid {threads}, 1, 1"));
        }
        // the second directive: a cluster shape or a block count per SM
        let second = match (CLUSTER_DIMS.iter().find(|(k, _)| *k == kernel), min_ctas) {
            (Some(_), Some(_)) => return Err(format!("build.rs: {kernel} has a cluster shape and MIN_CTAS_PER_SM")),
            (Some((_, [x, y, z])), None) => Some((".reqnctapercluster", format!("{x}, {y}, {z}"))),
            (None, Some(n)) => Some((".minnctapersm", n.to_string())),
            (None, None) => None,
        };
        if let Some((directive, args)) = second
            && !lines.get(close + 2).is_some_and(|l| l.contains(directive))
        {
            lines.insert(close + 2, format!("{directive} {args}"));
        }
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

/// Checks that the module declares at least the PTX ISA version `features` asks for (for
/// example `+ptx83`: `.version 8.3`), which its instructions need (rustc passes the feature to
/// LLVM silently). No module asks for one today: each is at its target's least version.
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
        return Err(format!(
            "PTX module {name} declares .version {}.{}; it needs {}.{} or newer",
            have / 10,
            have % 10,
            want / 10,
            want % 10
        ));
    }
    Ok(())
}

/// A module the driver can load on its own: no call to a function it does not define.
fn check_self_contained(name: &str, ptx: &str) -> Result<(), String> {
    if let Some(line) = ptx.lines().find(|l| l.contains(".extern .func")) {
        return Err(format!(
            "PTX module {name} is not self-contained: `{}` (a core/compiler-builtins function was not linked in; keep kernels free of it)",
            line.trim()
        ));
    }
    if !ptx.contains(".entry") {
        return Err(format!("PTX module {name} defines no kernel entry"));
    }
    Ok(())
}
