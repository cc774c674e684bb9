//! The tour (`examples/tour.rs`) as a test: it passes, and a result broken on purpose
//! (`LOWP_TOUR_PERTURB=<op>`) fails it, with that op's row, and only that one, marked `FAIL`.
//!
//! Runs the example binary of this test's profile and target directory
//! (`target/<profile>/examples/tour`), which cargo builds here first if it is missing or stale,
//! with `--quick` (small shapes): on a GPU if there is one, else on the simulator, as the tour
//! chooses.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The example binary, up to date: `cargo build --example tour` in this test's target directory
/// and profile (a no-op when `cargo test` has just built the examples).
fn tour() -> &'static Path {
    static TOUR: OnceLock<PathBuf> = OnceLock::new();
    TOUR.get_or_init(|| {
        // this test runs from <target>/<profile directory>/deps/
        let exe = std::env::current_exe().expect("the test executable's path");
        let profile_dir =
            exe.parent().and_then(Path::parent).expect("the test executable is in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>/<profile>");
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev",
            Some(name) => name,
            None => panic!("no profile directory above {}", exe.display()),
        };
        let out = Command::new(env!("CARGO"))
            .args(["build", "--example", "tour", "--profile", profile, "--manifest-path"])
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"))
            .arg("--target-dir")
            .arg(target_dir)
            .output()
            .expect("run cargo");
        assert!(out.status.success(), "cargo build --example tour failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let path = profile_dir.join("examples").join(format!("tour{}", std::env::consts::EXE_SUFFIX));
        assert!(path.is_file(), "cargo built the tour, but not at {}", path.display());
        path
    })
}

/// Runs `tour --quick`, with `LOWP_TOUR_PERTURB=<perturb>` if given.
fn run(perturb: Option<&str>) -> Output {
    let mut cmd = Command::new(tour());
    cmd.arg("--quick").env_remove("LOWP_TOUR_PERTURB");
    if let Some(op) = perturb {
        cmd.env("LOWP_TOUR_PERTURB", op);
    }
    cmd.output().expect("run the tour")
}

/// (op, status) of each table row: status `ok`, `skip` or `FAIL`.
fn rows(out: &Output) -> Vec<(String, String)> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .filter_map(|line| {
            let op = line.split_whitespace().next()?;
            let status = ["  ok ", "  skip ", "  FAIL "].into_iter().find(|s| line.contains(s))?;
            Some((op.to_string(), status.trim().to_string()))
        })
        .collect()
}

fn show(out: &Output) -> String {
    format!(
        "exit status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn tour_passes_and_a_broken_result_fails_it() {
    let clean = run(None);
    let table = rows(&clean);
    assert_eq!(clean.status.code(), Some(0), "the tour failed:\n{}", show(&clean));
    assert!(table.len() >= 20, "expected a row per op:\n{}", show(&clean));
    assert!(table.iter().all(|(_, s)| s != "FAIL"), "{}", show(&clean));
    assert!(String::from_utf8_lossy(&clean.stdout).contains("every check passed"), "{}", show(&clean));

    // A tolerance check (bf16 within 1 ulp), the RoPE tolerance, a bit-exact check of codes, and
    // the GEMM's check where the GEMM runs (compute capability 9.0).
    let mut ops = vec!["add_rmsnorm", "qk_norm_rope_gptj", "mxfp8_quantize"];
    if table.iter().any(|(op, s)| op == "fp8_blockwise_gemm" && s == "ok") {
        ops.push("fp8_blockwise_gemm");
    }
    for op in ops {
        let broken = run(Some(op));
        assert_eq!(broken.status.code(), Some(1), "LOWP_TOUR_PERTURB={op} must fail the tour:\n{}", show(&broken));
        let failed: Vec<String> = rows(&broken).into_iter().filter(|(_, s)| s == "FAIL").map(|(o, _)| o).collect();
        assert_eq!(failed, vec![op.to_string()], "LOWP_TOUR_PERTURB={op}: exactly that row fails:\n{}", show(&broken));
    }
}

#[test]
fn tour_refuses_a_perturbation_of_no_op() {
    let out = run(Some("no_such_op"));
    assert_eq!(out.status.code(), Some(2), "{}", show(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names no op"), "{}", show(&out));
}
