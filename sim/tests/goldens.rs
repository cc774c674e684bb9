//! The simulator against hardware goldens, bit for bit: runs the probe kernels of
//! `sim/tests/probe_kernels` on the simulator and compares each output with the file a GPU
//! wrote into `tests/data/goldens/` (repository root) through `sim/examples/goldens.rs`.
//!
//! Until a GPU has produced that directory, the test prints that there is nothing to compare and
//! passes: **its passing is then no evidence of anything**. Likewise a probe without a golden
//! (added after the goldens were made) is reported and skipped, and a golden whose inputs no
//! longer match the probe's (the kernel or its inputs changed) fails as stale.

mod probe_kernels;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;

use probe_kernels::SimGpu;

const HOW: &str = "run the probe on a GPU: cargo build --release -p lowp-sim --example goldens, then \
                   LOWP_DEVICE=gpu target/release/examples/goldens --out tests/data/goldens from the repository root";

/// Prints past the test harness's output capture, so the note shows in a plain `cargo test`.
fn note(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// The manifest's file entries (name → (bytes, input fingerprint)) and its `source:` line.
fn manifest(text: &str) -> (HashMap<String, (usize, u64)>, String) {
    let mut files = HashMap::new();
    let mut source = String::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        if let Some(s) = line.strip_prefix("source:") {
            source = s.trim().to_string();
            continue;
        }
        if let [file, bytes, fp] = line.split_whitespace().collect::<Vec<_>>()[..] {
            if let (Ok(b), Ok(f)) = (bytes.parse(), u64::from_str_radix(fp, 16)) {
                files.insert(file.to_string(), (b, f));
            }
        }
    }
    (files, source)
}

/// A short description of where `got` and `want` differ (as 32-bit little-endian words).
fn diff(got: &[u8], want: &[u8]) -> String {
    if got.len() != want.len() {
        return format!("{} bytes, the golden has {}", got.len(), want.len());
    }
    let word = |b: &[u8], i: usize| u32::from_le_bytes(b[4 * i..4 * i + 4].try_into().unwrap());
    let bad: Vec<usize> = (0..got.len() / 4).filter(|&i| word(got, i) != word(want, i)).collect();
    let first: Vec<String> = bad
        .iter()
        .take(8)
        .map(|&i| format!("word {i}: sim {:#010x}, hardware {:#010x}", word(got, i), word(want, i)))
        .collect();
    let tail = if got.len() % 4 != 0 && got[got.len() / 4 * 4..] != want[want.len() / 4 * 4..] {
        "; the trailing bytes differ"
    } else {
        ""
    };
    format!("{} of {} words differ ({}){tail}", bad.len(), got.len() / 4, first.join("; "))
}

#[test]
fn simulator_matches_hardware_goldens() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/goldens");
    let Ok(text) = std::fs::read_to_string(dir.join("MANIFEST")) else {
        note(&format!(
            "goldens: no hardware goldens in tests/data/goldens yet ({HOW}); nothing was compared, and this test passing is no evidence"
        ));
        return;
    };
    let (files, source) = manifest(&text);
    assert_eq!(
        source, "hardware",
        "tests/data/goldens/MANIFEST: the goldens must come from a GPU, not from `{source}`"
    );
    let mut failures = Vec::new();
    let mut compared = 0;
    for (name, r) in probe_kernels::run_all(&mut SimGpu::new()) {
        let file = format!("{name}.bin");
        let Some(&(_, fingerprint)) = files.get(&file) else {
            note(&format!("goldens: no golden for {file} ({HOW}); not compared"));
            continue;
        };
        let p = match r {
            Ok(p) => p,
            Err(e) => {
                failures.push(format!("{name}: the simulator fails: {e}"));
                continue;
            }
        };
        if p.fingerprint != fingerprint {
            failures
                .push(format!("{file}: stale golden (the probe's kernel or inputs changed since it was made; {HOW})"));
            continue;
        }
        let want = std::fs::read(dir.join(&file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(&file).display()));
        compared += 1;
        if p.output != want {
            failures.push(format!("{file}: {}", diff(&p.output, &want)));
        }
    }
    note(&format!("goldens: {compared} probe outputs compared with the hardware goldens, {} disagree", failures.len()));
    assert!(failures.is_empty(), "the simulator disagrees with the hardware goldens:\n{}", failures.join("\n"));
}
