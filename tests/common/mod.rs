//! Shared by the integration tests: the GPU-or-skip helper and a small deterministic-per-run
//! random source (seeded fresh each run unless LOWP_TEST_SEED is set, printed on failure).
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use lowp::Lowp;

/// The lowp handle on device 0, or `None` after printing why GPU tests skip. The message goes
/// straight to stderr (not captured by the test harness) so a CPU-only run shows it.
pub fn gpu(test: &str) -> Option<Lowp> {
    static HANDLE: OnceLock<Result<Lowp, String>> = OnceLock::new();
    let h = HANDLE.get_or_init(|| match lowp::device_count() {
        Ok(0) => Err("the CUDA driver reports no device".to_string()),
        Ok(_) => Lowp::new(0).map_err(|e| format!("could not open device 0: {e}")),
        Err(e) => Err(e.to_string()),
    });
    match h {
        Ok(l) => Some(l.clone()),
        Err(why) => {
            let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
            None
        }
    }
}

/// SplitMix64: small, fast, good enough for test data.
pub struct Rng(u64);

impl Rng {
    /// A fresh seed per run (time-based) unless `LOWP_TEST_SEED` pins one.
    pub fn fresh(test: &str) -> Rng {
        let seed = std::env::var("LOWP_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("{test}: LOWP_TEST_SEED={seed}");
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.uniform().max(1e-300);
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A bit pattern no kernel output should ever be: written into outputs before each launch, so an
/// element the kernel skipped is caught.
pub const POISON16: u16 = 0x7fbb; // a NaN in bf16 with a payload
pub const POISON_F16: u16 = 0x7dbb; // a NaN in f16 with a payload
