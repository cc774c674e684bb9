//! The benchmark harness and its PyTorch anchor agree, without a GPU: `benches/kernels.rs` and
//! `benches/compare_torch.py --list` name the same cases in the same order, every name is
//! shell-safe and unique, the Python side lists them without importing PyTorch, and a results
//! file as the Rust side writes it joins with PyTorch results in `compare_torch.py --join`.
//!
//! The Python checks need `python3` (CI has it) and the source tree; where either is missing they
//! are skipped with a message.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[allow(dead_code)]
#[path = "../benches/kernels.rs"]
mod kernels;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `python3 -c <code>` in the repository root, with `import torch` made to fail (the Python
/// side's listing and joining must not need PyTorch); `None` where there is no python3.
fn python(code: &str) -> Option<Output> {
    if !root().join("benches/compare_torch.py").is_file() {
        // a test executable copied away from the source tree
        eprintln!("skipped: {} has no benches/compare_torch.py", root().display());
        return None;
    }
    let guarded = format!("import sys\nsys.modules['torch'] = None\n{code}");
    match Command::new("python3").arg("-c").arg(guarded).current_dir(root()).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!("skipped: python3 not found");
            None
        }
        Err(e) => panic!("running python3: {e}"),
    }
}

/// `benches/compare_torch.py <args>`, run as a script (its `__main__`), through `python`.
fn compare_torch(args: &[&str]) -> Option<Output> {
    let argv: Vec<String> = args.iter().map(|a| format!("{a:?}")).collect();
    python(&format!(
        "import runpy\nsys.argv = ['compare_torch.py', {}]\n\
         try:\n    runpy.run_path('benches/compare_torch.py', run_name='__main__')\n\
         except SystemExit as e:\n    sys.exit(e.code)\n",
        argv.join(", ")
    ))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[test]
fn case_names_are_shell_safe_and_unique() {
    let names = kernels::case_names();
    assert!(!names.is_empty());
    let mut seen = std::collections::HashSet::new();
    for name in &names {
        assert!(
            name.bytes().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'/' | b'-')),
            "case name {name:?} has a character outside [a-z0-9_./x-]"
        );
        let parts: Vec<&str> = name.split('/').collect();
        assert!(
            (3..=4).contains(&parts.len()) && parts.iter().all(|p| !p.is_empty()),
            "{name:?} is not op/dtype/shape[/variant]"
        );
        assert!(
            ["f32", "bf16", "f16", "e4m3", "e5m2", "e2m1", "ue8m0"].contains(&parts[1]),
            "{name:?}: dtype {:?} is not one of lowp's short names",
            parts[1]
        );
        assert!(seen.insert(name.clone()), "case name {name:?} appears twice");
    }
}

#[test]
fn compare_torch_lists_the_same_cases() {
    let Some(out) = compare_torch(&["--list"]) else { return };
    assert!(out.status.success(), "compare_torch.py --list failed (without PyTorch):\n{}", text(&out));
    let python: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    let rust = kernels::case_names();
    if python != rust {
        let only_rust: Vec<&String> = rust.iter().filter(|n| !python.contains(n)).collect();
        let only_python: Vec<&String> = python.iter().filter(|n| !rust.contains(n)).collect();
        panic!(
            "benches/kernels.rs and benches/compare_torch.py list different cases\n\
             only in kernels.rs: {only_rust:#?}\nonly in compare_torch.py: {only_python:#?}\n\
             (same sets, different order: {})",
            only_rust.is_empty() && only_python.is_empty()
        );
    }
}

#[test]
fn compare_torch_filters_as_the_rust_side() {
    let Some(out) = compare_torch(&["--filter", "rmsnorm/f16", "--filter=zipf", "--list"]) else {
        return;
    };
    assert!(out.status.success(), "{}", text(&out));
    let python: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    let opts = kernels_options(&["--filter", "rmsnorm/f16", "--filter=zipf", "--list"]);
    let rust: Vec<String> = kernels::case_names().into_iter().filter(|n| opts.selects(n)).collect();
    assert!(!rust.is_empty());
    assert_eq!(python, rust);
}

fn kernels_options(args: &[&str]) -> kernels::Options {
    match kernels::Options::parse(args.iter().map(|a| a.to_string())) {
        Ok(o) => o,
        Err(e) => panic!("{args:?}: {e}"),
    }
}

#[test]
fn bench_options() {
    let o = kernels_options(&["--bench", "--json", "out.json", "--filter", "cast", "gemm", "--nocapture"]);
    assert!(o.bench && !o.list && !o.help);
    assert_eq!(o.json.as_deref(), Some("out.json"));
    assert_eq!(o.filters, ["cast", "gemm"]);
    assert!(kernels_options(&["--bench", "--help"]).help);
    assert!(kernels_options(&["--json=x.json"]).json.is_some());
    for bad in [&["--bogus"][..], &["--json"], &["--filter"], &["--bench", "-x"], &["--list=yes"]] {
        assert!(kernels::Options::parse(bad.iter().map(|a| a.to_string())).is_err(), "{bad:?} was accepted");
    }
    let exact = kernels_options(&["--exact", "rmsnorm/f16/16384x8192"]);
    assert!(exact.selects("rmsnorm/f16/16384x8192") && !exact.selects("add_rmsnorm/f16/16384x8192"));
}

/// A results file as `--json` writes it (two cases, one skipped) joins with PyTorch results,
/// taken from two files (two passes: the second's torch.compile row replaces the first's).
#[test]
fn rust_results_join_with_torch_results() {
    let dir = std::env::temp_dir().join(format!("lowp-bench-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lowp_json = dir.join("lowp.json");
    let torch_json = dir.join("torch.json");
    let compile_json = dir.join("torch-compile.json");
    let name = "rmsnorm/bf16/16384x8192";
    let gemm = "fp8_blockwise_gemm/e4m3/4096x2112x7168";
    let mut rows = Vec::new();
    for case in kernels::cases() {
        let outcome = if case.name() == name {
            kernels::Outcome::Done {
                timing: kernels::Timing { median_us: 200.0, min_us: 180.0, iters: 100, starved: 0 },
                bytes: 2 * 16384 * 8192 * 2 + 8192 * 2,
                flops: 0,
                sets: 2,
            }
        } else if case.name() == gemm {
            kernels::Outcome::Skipped("needs compute capability 9.0".into())
        } else {
            continue;
        };
        rows.push(kernels::json_row(&case, &outcome, None, "Test GPU \"x\"", 4000.0));
    }
    assert_eq!(rows.len(), 2);
    let info = kernels::RunInfo {
        bench: true,
        device: "Test GPU \"x\"".into(),
        compute_capability: (9, 0),
        module: "sm_90a",
        sms: 132,
        l2_bytes: 50 << 20,
        total_memory_bytes: 140 << 30,
        warmup: 20,
        iters: 100,
        copy_gbps: 4000.0,
    };
    std::fs::write(&lowp_json, kernels::json_doc(&info, &rows)).unwrap();
    let torch = format!(
        r#"{{"harness": "torch", "device": {{"name": "Test GPU \"x\"", "compute_capability": [9, 0]}},
            "torch": "0", "compile_mode": "default", "iters": 100, "copy_gbps": 3900.0, "results": [
            {{"name": "{name}", "impl": "eager", "status": "ok", "median_us": 400.0, "min_us": 390.0, "gbps": 1342.2,
              "pct_copy": 34.4, "tflops": null, "bytes": 536887296, "sets": 2, "iters": 100, "starved": 0}},
            {{"name": "{name}", "impl": "compile", "status": "failed", "reason": "stopped"}},
            {{"name": "{gemm}", "impl": "cublas", "status": "n/a", "reason": "cuBLAS refuses N = 2112"}}]}}"#
    );
    let compile = format!(
        r#"{{"harness": "torch", "device": {{"name": "Test GPU \"x\"", "compute_capability": [9, 0]}},
            "torch": "0", "compile_mode": "default", "iters": 100, "copy_gbps": 3950.0, "results": [
            {{"name": "{name}", "impl": "compile", "status": "ok", "median_us": 300.0, "min_us": 290.0, "gbps": 1789.6,
              "pct_copy": 45.9, "tflops": null, "bytes": 536887296, "sets": 2, "iters": 100, "starved": 0}}]}}"#
    );
    std::fs::write(&torch_json, torch).unwrap();
    std::fs::write(&compile_json, compile).unwrap();
    let (l, t, c) = (path_str(&lowp_json), path_str(&torch_json), path_str(&compile_json));
    let Some(out) = compare_torch(&["--join", &l, "--anchors", &t, "--anchors", &c]) else {
        return;
    };
    let shown = text(&out);
    assert!(out.status.success(), "compare_torch.py --join failed:\n{shown}");
    let line = shown.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no row for {name}:\n{shown}"));
    // lowp 200 µs against the fastest anchor (torch.compile, 300 µs): 1.50x
    for cell in ["200.00", "400.00", "300.00", "1.50x"] {
        assert!(line.contains(cell), "{cell} missing from {line:?}\n{shown}");
    }
    assert!(shown.contains(&format!("{gemm} cublas: n/a: cuBLAS refuses N = 2112")), "{shown}");
    assert!(shown.contains(&format!("{gemm} lowp: skipped: needs compute capability 9.0")), "{shown}");
    assert!(!shown.contains("stopped"), "the second file's row did not replace the first's:\n{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn path_str(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}
