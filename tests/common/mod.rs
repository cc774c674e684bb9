//! Shared by the integration tests: the device every GPU test runs on (an NVIDIA GPU, or the
//! lowp-sim simulator where there is none), size choices for the simulator, the explicit skip
//! of what the simulator does not model yet, and a small deterministic-per-run random source
//! (seeded fresh each run unless LOWP_TEST_SEED is set, printed on failure).
#![allow(dead_code)]

use std::io::Write;
use std::sync::OnceLock;

use lowp::Lowp;
use lowp_sim::Device;

/// The device name the simulator reports.
pub const SIM_DEVICE_NAME: &str = "lowp-sim";

/// The lowp handle on device 0: a GPU, or the simulator (`lowp_sim::select_device`: `LOWP_DEVICE`
/// `gpu`, `sim`, or unset for the GPU where a driver is and the simulator elsewhere).
///
/// Panics with the reason when there is no device to run on (`LOWP_DEVICE=gpu` without a driver,
/// the simulator's library not found, device 0 unsupported): a GPU test fails, it never skips
/// silently. The first call prints one line to stderr naming the device and why it was chosen;
/// stderr is written directly, so the harness does not capture it.
pub fn gpu(test: &str) -> Lowp {
    static HANDLE: OnceLock<Result<Lowp, String>> = OnceLock::new();
    match HANDLE.get_or_init(open_device) {
        Ok(lowp) => lowp.clone(),
        Err(why) => panic!("{test}: no device to run on: {why}"),
    }
}

/// Selects the driver (before any cudarc call of this process) and opens device 0.
fn open_device() -> Result<Lowp, String> {
    let asked = std::env::var("LOWP_DEVICE").ok().filter(|v| !v.trim().is_empty());
    let device = lowp_sim::select_device()?;
    let hint = match (&device, &asked) {
        (Device::Gpu, None) => " (LOWP_DEVICE=sim runs the tests on the simulator instead)",
        _ => "",
    };
    let lowp = match lowp::device_count() {
        Ok(0) => Err("the CUDA driver reports no device".to_string()),
        Ok(_) => Lowp::new(0).map_err(|e| format!("could not open device 0: {e}")),
        Err(e) => Err(e.to_string()),
    }
    .map_err(|e| format!("{e}{hint}"))?;
    let why = match (&device, &asked) {
        (Device::Sim(path), Some(v)) => format!("the simulator ({}): LOWP_DEVICE={v}", path.display()),
        (Device::Sim(path), None) => {
            format!("the simulator ({}): no NVIDIA driver here (LOWP_DEVICE=gpu demands one)", path.display())
        }
        (Device::Gpu, Some(v)) => format!("the NVIDIA driver: LOWP_DEVICE={v}"),
        (Device::Gpu, None) => "the NVIDIA driver (LOWP_DEVICE=sim runs the simulator instead)".to_string(),
    };
    let (major, minor) = lowp.compute_capability();
    let _ = writeln!(
        std::io::stderr(),
        "lowp GPU tests run on {} (compute capability {major}.{minor}, module {}, {} SMs) through {why}",
        lowp.device_name(),
        lowp.arch().name(),
        lowp.sm_count(),
    );
    Ok(lowp)
}

/// Whether `lowp` runs on the simulator.
pub fn on_sim(lowp: &Lowp) -> bool {
    lowp.device_name() == SIM_DEVICE_NAME
}

/// `gpu` on a GPU, `sim` on the simulator: a test's sizes and counts. The simulator runs about
/// 10^8 lane-instructions a second per core, so its cases are small ones of the same kinds.
/// `LOWP_TEST_SIZES=small` gives the small cases on a GPU too (a run under `compute-sanitizer`,
/// which slows kernels by orders of magnitude), `full` the GPU's cases on the simulator.
pub fn sized<T>(lowp: &Lowp, gpu: T, sim: T) -> T {
    if small_sizes(lowp) { sim } else { gpu }
}

/// Whether the tests run their small cases: on the simulator, unless `LOWP_TEST_SIZES` says
/// `small` or `full`.
pub fn small_sizes(lowp: &Lowp) -> bool {
    match std::env::var("LOWP_TEST_SIZES").ok().as_deref().map(str::trim) {
        None | Some("") => on_sim(lowp),
        Some("small") => true,
        Some("full") => false,
        Some(v) => panic!("LOWP_TEST_SIZES={v}: expected small, full or unset"),
    }
}

/// The GEMM tests' bound on the relative Frobenius norm of their error beyond the bf16 output
/// rounding: 1e-3 on a GPU, whose tensor cores accumulate FP8 products with about 14 significant
/// bits inside an instruction; 1e-6 on the simulator, which accumulates exactly (only the kernel's
/// own f32 arithmetic remains), unless `LOWP_SIM_FP8_ACC_BITS` asks it to model that loss, which
/// gets the GPU's bound.
pub fn gemm_bound(lowp: &Lowp) -> f64 {
    let modelled_loss = std::env::var("LOWP_SIM_FP8_ACC_BITS").is_ok_and(|v| !v.trim().is_empty());
    if on_sim(lowp) && !modelled_loss { 1e-6 } else { 1e-3 }
}

/// Prints `SKIP <test>: <why>` to stderr (not captured by the harness).
pub fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIP {test}: {why}");
}

/// Whether the Hopper GEMMs (wgmma, TMA, mbarrier) can run on `lowp`; prints why not when they
/// cannot: the device is not compute capability 9.0 (its module has no Hopper kernels).
pub fn hopper_gemm(test: &str, lowp: &Lowp) -> bool {
    if lowp.arch() != lowp::Arch::Sm90a {
        let (major, minor) = lowp.compute_capability();
        skip(test, &format!("{} is compute capability {major}.{minor}; the Hopper GEMMs need 9.0", lowp.device_name()));
        return false;
    }
    true
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
