//! GPU benchmarks of lowp's kernels: achieved DRAM bandwidth per kernel, against the copy
//! bandwidth this same device reaches (measured at start, not taken from a data sheet).
//!
//! ```text
//! cargo bench --bench kernels                               # every case
//! cargo bench --bench kernels -- --filter add_rmsnorm/      # cases whose name contains a pattern
//! cargo bench --bench kernels -- --json target/lowp-bench.json
//! cargo bench --bench kernels -- --list                     # names only (no GPU needed)
//! cargo bench --bench kernels -- --help
//! ```
//! A case is named `op/dtype/shape[/variant]` (`rmsnorm/bf16/16384x8192`,
//! `bf16_grouped_gemm/bf16/8x512x4096x7168/zipf`), in the characters `[a-z0-9_./x-]` only, with
//! the dtype in lowp's short names (f32, bf16, f16, e4m3, e5m2, e2m1, ue8m0). Every name is also a
//! case of `benches/compare_torch.py`, the PyTorch anchor, which `tests/bench_names.rs` checks.
//! `docs/benchmarks.md` describes the names, the families and the joined table.
//!
//! Without an NVIDIA GPU (no driver, no device, or only the lowp-sim simulator, which runs kernels
//! but cannot time them) it benchmarks nothing: it prints one line pointing to the tour
//! (`cargo run --release --example tour`, which runs every kernel on the simulator, checked against
//! the CPU reference, with its instruction counts) and exits with status 2, so that a script that
//! asked for measurements does not take the absence of any for a result.
//!
//! Run without `--bench` (`cargo test --benches`, `cargo test --all-targets`), it is a smoke test:
//! each case runs a few launches, and a machine without a GPU skips it with status 0 (status 2
//! where `LOWP_DEVICE=gpu` asked for the GPU). With `LOWP_DEVICE=sim` the smoke test runs on the
//! lowp-sim simulator, a rehearsal of the harness itself (buffer sets, launches, events, the JSON
//! file) on the cases a filter names (none named: skipped): its times are the simulator's and
//! mean nothing (`--bench` still refuses it).
//!
//! Method (`Timer::time`): each launch uses one of K sets of input and output buffers, in turn,
//! with K chosen so the sets together exceed twice the L2 cache: every launch reads its inputs
//! from DRAM, as in a model where the activations of one layer are evicted by the next. Launches
//! are timed one by one with CUDA event pairs after a warm-up, and the median (and minimum) is
//! reported. Before the timed launches the stream is given a head start of device-to-device
//! copies long enough for the host to enqueue them all, so the GPU never idles between a start
//! event and its launch (which would add the host's launch latency to short kernels).

use std::error::Error;
use std::fmt::Write as _;
use std::io::Write;
use std::process::exit;
use std::sync::Arc;
use std::time::Instant;

use lowp::cudarc::driver::sys::{CUdevice_attribute, CUevent_flags};
use lowp::cudarc::driver::{CudaContext, CudaEvent, CudaSlice, CudaStream};
use lowp::half::{bf16, f16};
use lowp::{DType, Half, Lowp, Matrix};

type BoxResult<T> = Result<T, Box<dyn Error>>;

const NO_DEVICE: &str = "no NVIDIA GPU: these benchmarks time kernels on one";
/// Where to go without a GPU.
const TOUR: &str = "`cargo run --release --example tour` runs every kernel on the lowp-sim simulator instead \
                    (checked against the CPU reference, with instruction counts, no timings)";
const MIB: usize = 1 << 20;
const GIB: usize = 1 << 30;

// ---------------------------------------------------------------------------------------------
// Command line

const USAGE: &str = "\
usage: cargo bench --bench kernels -- [options] [pattern...]
       <bench executable> --bench [options] [pattern...]

Times lowp's kernels on GPU 0 (CUDA events, inputs from DRAM) next to the device's copy bandwidth.
Case names are op/dtype/shape[/variant], e.g. rmsnorm/bf16/16384x8192 (see --list).

options:
  --list             print the names of the selected cases, one a line, and exit (no GPU needed)
  --filter PATTERN   run the cases whose name contains PATTERN (repeatable; a bare PATTERN is the
                     same; with several, a case runs if it matches any)
  --exact            patterns must equal the whole name
  --json PATH        also write the results as JSON to PATH (for compare_torch.py --join),
                     rewritten after each case (a stopped run keeps the cases before)
  --configs          also time each dense FP8 GEMM case in every kernel configuration
                     (gemm::blockwise_fp8_with), named <case>/<config>, e.g.
                     fp8_blockwise_gemm/e4m3/64x2112x7168/64x64k4 (no PyTorch anchor)
  --bench            full measurement (cargo bench passes it); without it, a smoke test of a few
                     launches per case whose numbers are not measurements
  -h, --help         print this and exit
  (--nocapture, --show-output, --quiet, --test-threads N and --color WHEN, which cargo test may
  pass to every target, are accepted and ignored)

Without an NVIDIA GPU it measures nothing and exits with status 2 (without --bench, a smoke
test, it skips with status 0; with LOWP_DEVICE=gpu, status 2). LOWP_DEVICE=sim runs the smoke
test of the cases a filter names on the lowp-sim simulator: a rehearsal of the harness (setup,
launches, events, JSON) whose times are the simulator's, not a GPU's (with --bench, status 2;
with no filter it skips). Unknown options are an error (status 2).
PyTorch anchors of the same cases: python3 benches/compare_torch.py --help
";

pub(crate) struct Options {
    /// `--bench` was given (cargo bench passes it): full measurement. Otherwise a smoke test.
    pub(crate) bench: bool,
    /// `--list`: print the case names and exit.
    pub(crate) list: bool,
    /// `--help`: print the usage and exit.
    pub(crate) help: bool,
    /// `--exact`: filters match whole names.
    pub(crate) exact: bool,
    /// `--filter` patterns and bare words: a case runs if its name contains any of them (all run
    /// when there is none).
    pub(crate) filters: Vec<String>,
    /// `--json PATH`.
    pub(crate) json: Option<String>,
    /// `--configs`: the GEMM configuration cases too.
    pub(crate) configs: bool,
}

impl Options {
    /// Parses the arguments after the program name; `Err` names the offending argument.
    pub(crate) fn parse(args: impl IntoIterator<Item = String>) -> Result<Options, String> {
        let mut o = Options {
            bench: false,
            list: false,
            help: false,
            exact: false,
            filters: Vec::new(),
            json: None,
            configs: false,
        };
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            // `--name=value` or `--name value`
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            let mut value = |name: &str| -> Result<String, String> {
                match inline.clone().or_else(|| args.next()) {
                    Some(v) if !v.is_empty() => Ok(v),
                    _ => Err(format!("{name} needs a value")),
                }
            };
            let flag_only =
                ["--bench", "--list", "--help", "--exact", "--configs", "--nocapture", "--show-output", "--quiet"];
            if inline.is_some() && flag_only.contains(&flag.as_str()) {
                return Err(format!("{flag} takes no value"));
            }
            match flag.as_str() {
                "--bench" => o.bench = true,
                "--list" => o.list = true,
                "-h" | "--help" => o.help = true,
                "--exact" => o.exact = true,
                "--configs" => o.configs = true,
                "--filter" => o.filters.push(value("--filter")?),
                "--json" => o.json = Some(value("--json")?),
                // what `cargo test` forwards to every target, the harness-less ones included
                "--nocapture" | "--show-output" | "-q" | "--quiet" => {}
                "--test-threads" | "--color" => {
                    value(&flag)?;
                }
                s if s.starts_with('-') => return Err(format!("unknown option {s}")),
                _ => o.filters.push(arg),
            }
        }
        Ok(o)
    }

    pub(crate) fn selects(&self, name: &str) -> bool {
        self.filters.is_empty()
            || self.filters.iter().any(|f| if self.exact { name == f } else { name.contains(f.as_str()) })
    }
}

/// Iteration counts.
#[derive(Clone, Copy)]
struct Config {
    warmup: usize,
    iters: usize,
    copy_warmup: usize,
    copy_iters: usize,
}

const BENCH: Config = Config { warmup: 20, iters: 100, copy_warmup: 5, copy_iters: 50 };
const SMOKE: Config = Config { warmup: 2, iters: 5, copy_warmup: 1, copy_iters: 3 };

// ---------------------------------------------------------------------------------------------
// Entry point

fn main() {
    let opts = match Options::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(why) => {
            eprintln!("error: {why}\n\n{USAGE}");
            exit(2);
        }
    };
    if opts.help {
        print!("{USAGE}");
        return;
    }
    if opts.list {
        for name in cases_of(&opts).iter().map(Case::name).filter(|n| opts.selects(n)) {
            println!("{name}");
        }
        return;
    }
    // LOWP_DEVICE chooses the driver as the tests do (`sim`: the simulator, for a smoke test)
    let asked = std::env::var("LOWP_DEVICE").ok().filter(|v| !v.trim().is_empty());
    let device = if asked.is_some() {
        match lowp_sim::select_device() {
            Ok(d) => Some(d),
            Err(why) => {
                eprintln!("error: {why}");
                exit(2);
            }
        }
    } else {
        None
    };
    let rehearsal = matches!(device, Some(lowp_sim::Device::Sim(_)));
    if rehearsal && !opts.bench {
        if opts.filters.is_empty() {
            // every case at its GPU size would take the simulator hours
            eprintln!(
                "LOWP_DEVICE=sim: smoke test skipped; on the simulator name the cases to rehearse (--filter, --exact)"
            );
            return;
        }
        println!("LOWP_DEVICE=sim: a rehearsal of the harness on the lowp-sim simulator; its times mean nothing");
    } else if let Err(why) = device_present() {
        if opts.bench {
            eprintln!("{NO_DEVICE} ({why}); {TOUR}");
            exit(2);
        }
        eprintln!("{NO_DEVICE} ({why}); smoke test skipped; {TOUR}");
        return;
    }
    if let Err(e) = run(&opts) {
        eprintln!("error: {e}");
        let mut source = e.source();
        while let Some(s) = source {
            eprintln!("  caused by: {s}");
            source = s.source();
        }
        exit(1);
    }
}

/// `Err(reason)` where there is no CUDA device to time kernels on: no driver, no device, or a
/// driver that is the lowp-sim simulator (loaded as `libcuda.so`; its device is named `lowp-sim`).
fn device_present() -> Result<(), String> {
    if !lowp::driver_available() {
        return Err("the CUDA driver library could not be loaded".into());
    }
    match lowp::device_count() {
        Ok(0) => Err("the driver reports no device".into()),
        Ok(_) => match device_name(0) {
            Ok(name) if name == "lowp-sim" => {
                Err("the driver is the lowp-sim simulator, which runs kernels but cannot time them".into())
            }
            // a name the driver cannot give: the benchmarks report its error themselves
            _ => Ok(()),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// The name of device `ordinal`, from the driver (`device_count` has initialized it).
fn device_name(ordinal: i32) -> Result<String, lowp::cudarc::driver::DriverError> {
    use lowp::cudarc::driver::result::device;
    device::get_name(device::get(ordinal)?)
}

fn run(opts: &Options) -> BoxResult<()> {
    let selected: Vec<Case> = cases_of(opts).into_iter().filter(|c| opts.selects(&c.name())).collect();
    if selected.is_empty() {
        println!("no benchmark matches {:?} (see --list)", opts.filters);
        return Ok(());
    }
    let cfg = if opts.bench { BENCH } else { SMOKE };

    let lowp = Lowp::new(0)?;
    let ctx = lowp.context().clone();
    // The context's default stream and no other: cudarc then stays out of its multi-stream mode,
    // in which every buffer use would also record an event into the stream being timed.
    let stream = lowp.default_stream();
    let sms = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
    let l2_bytes = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?.max(0) as usize;
    let (free, total) = ctx.mem_get_info()?;
    let (major, minor) = lowp.compute_capability();
    let device = lowp.device_name().to_owned();
    println!(
        "device: {device} (compute capability {major}.{minor}), lowp module {}, {sms} SMs, L2 {:.1} MiB, {:.1} GiB memory ({:.1} GiB free)",
        lowp.arch().name(),
        l2_bytes as f64 / MIB as f64,
        total as f64 / GIB as f64,
        free as f64 / GIB as f64,
    );

    let timer = Timer::new(ctx.clone(), stream.clone(), cfg, free)?;
    let copy_gbps = timer.copy_gbps;
    let peak = match peak_dram_gbps(&ctx) {
        Some(p) => format!("; {:.1}% of the {p:.0} GB/s theoretical DRAM peak", 100.0 * timer.copy_gbps / p),
        None => String::new(),
    };
    println!(
        "copy bandwidth: {:.0} GB/s (device-to-device {} MiB -> {} MiB, read + written bytes, median of {}{peak})",
        timer.copy_gbps,
        timer.pad_bytes() / MIB,
        timer.pad_bytes() / MIB,
        cfg.copy_iters,
    );
    if !opts.bench {
        println!("smoke test (no --bench): {} timed launches per case, numbers are not measurements", cfg.iters);
    }
    println!();
    let w = selected.iter().map(|c| c.name().len()).max().unwrap_or(0).max(4);
    println!(
        "{:<w$} {:>10} {:>10} {:>9} {:>7} {:>8} {:>6}",
        "case", "median µs", "min µs", "GB/s", "% copy", "TFLOP/s", "sets"
    );

    let info = RunInfo {
        bench: opts.bench,
        device: device.clone(),
        compute_capability: (major, minor),
        module: lowp.arch().name(),
        sms,
        l2_bytes,
        total_memory_bytes: total,
        warmup: cfg.warmup,
        iters: cfg.iters,
        copy_gbps,
    };
    // The JSON file is rewritten after every case, so a run that is stopped (a time limit, a
    // kernel fault) leaves the cases measured before it.
    // Each write goes to a temporary file renamed over the path: a reader (or a run stopped
    // mid-write) never sees half a file. Written once before the first case too, with the device
    // and its copy bandwidth.
    let write_json = |rows: &[String]| -> BoxResult<()> {
        if let Some(path) = &opts.json {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, json_doc(&info, rows)).map_err(|e| format!("writing {tmp}: {e}"))?;
            std::fs::rename(&tmp, path).map_err(|e| format!("renaming {tmp} to {path}: {e}"))?;
        }
        Ok(())
    };
    write_json(&[])?;
    let mut bench = Bench { lowp, stream, ctx, l2_bytes, timer, note: None };
    let mut host_bound = false;
    let mut rows = Vec::new();
    for case in &selected {
        let name = case.name();
        let outcome = (case.run)(&mut bench)?;
        let note = bench.note.take();
        let lead = format!("{name:<w$}");
        match &outcome {
            Outcome::Skipped(why) => println!("{lead}  skipped: {why}"),
            Outcome::Done { timing, bytes, flops, sets } => {
                let gbps = *bytes as f64 / (timing.median_us * 1e3);
                let mark = if timing.starved * 10 > timing.iters {
                    host_bound = true;
                    format!("  ! {} of {} launches host-bound", timing.starved, timing.iters)
                } else {
                    String::new()
                };
                let tflops =
                    if *flops > 0 { format!("{:.1}", *flops as f64 / (timing.median_us * 1e6)) } else { "-".into() };
                let note = note.as_deref().map_or(String::new(), |n| format!("  {n}"));
                println!(
                    "{lead} {:>10.2} {:>10.2} {:>9.1} {:>6.1}% {tflops:>8} {sets:>6}{mark}{note}",
                    timing.median_us,
                    timing.min_us,
                    gbps,
                    100.0 * gbps / copy_gbps,
                );
            }
        }
        rows.push(json_row(case, &outcome, note.as_deref(), &device, copy_gbps));
        write_json(&rows)?;
        std::io::stdout().flush()?;
    }
    println!();
    if host_bound {
        println!(
            "!: the GPU idled between timed launches (the host could not keep it fed), so those times may include launch latency"
        );
    }
    for note in [rmsnorm::BYTES, cast::BYTES, qk_norm_rope::BYTES, fp8::BYTES, microscaling::BYTES, gemm::BYTES] {
        if !note.is_empty() {
            println!("bytes: {note}");
        }
    }
    if let Some(path) = &opts.json {
        println!("wrote {path}");
    }
    println!(
        "note: `python3 benches/compare_torch.py` times the same cases with PyTorch eager / torch.compile / cuBLAS; \
         `--join` with this run's --json file prints both side by side"
    );
    Ok(())
}

/// What the JSON results file says about the run.
pub(crate) struct RunInfo {
    /// `--bench` (a measurement) or not (a smoke test).
    pub(crate) bench: bool,
    pub(crate) device: String,
    pub(crate) compute_capability: (i32, i32),
    pub(crate) module: &'static str,
    pub(crate) sms: i32,
    pub(crate) l2_bytes: usize,
    pub(crate) total_memory_bytes: usize,
    pub(crate) warmup: usize,
    pub(crate) iters: usize,
    pub(crate) copy_gbps: f64,
}

/// The JSON results file (`--json`): the run, then one object per case (`json_row`), the input
/// of `compare_torch.py --join`.
pub(crate) fn json_doc(info: &RunInfo, rows: &[String]) -> String {
    let mut doc = String::from("{\n");
    let _ = writeln!(doc, "  \"harness\": \"lowp\",");
    let _ = writeln!(doc, "  \"mode\": {},", json_str(if info.bench { "bench" } else { "smoke" }));
    let _ = writeln!(
        doc,
        "  \"device\": {{\"name\": {}, \"compute_capability\": [{}, {}], \"module\": {}, \"sms\": {}, \
         \"l2_bytes\": {}, \"total_memory_bytes\": {}}},",
        json_str(&info.device),
        info.compute_capability.0,
        info.compute_capability.1,
        json_str(info.module),
        info.sms,
        info.l2_bytes,
        info.total_memory_bytes,
    );
    let _ = writeln!(doc, "  \"warmup\": {},", info.warmup);
    let _ = writeln!(doc, "  \"iters\": {},", info.iters);
    let _ = writeln!(doc, "  \"copy_gbps\": {},", json_num(info.copy_gbps));
    if rows.is_empty() {
        doc.push_str("  \"results\": []\n");
    } else {
        let _ = writeln!(doc, "  \"results\": [\n    {}\n  ]", rows.join(",\n    "));
    }
    doc.push_str("}\n");
    doc
}

/// One result as a JSON object (one line), with the case's `note` (null without one).
pub(crate) fn json_row(case: &Case, outcome: &Outcome, note: Option<&str>, device: &str, copy_gbps: f64) -> String {
    let variant = case.variant.as_deref().map_or("null".to_owned(), json_str);
    let mut s = format!(
        "{{\"name\": {}, \"family\": {}, \"op\": {}, \"dtype\": {}, \"shape\": {}, \"variant\": {variant}, ",
        json_str(&case.name()),
        json_str(case.family),
        json_str(case.op),
        json_str(dtype_name(case.dtype)),
        json_str(&case.shape),
    );
    match outcome {
        Outcome::Skipped(why) => {
            let _ = write!(s, "\"status\": \"skipped\", \"reason\": {}, ", json_str(why));
        }
        Outcome::Done { timing, bytes, flops, sets } => {
            let gbps = *bytes as f64 / (timing.median_us * 1e3);
            let tflops = if *flops > 0 { json_num(*flops as f64 / (timing.median_us * 1e6)) } else { "null".into() };
            let _ = write!(
                s,
                "\"status\": \"ok\", \"median_us\": {}, \"min_us\": {}, \"gbps\": {}, \"pct_copy\": {}, \
                 \"tflops\": {tflops}, \
                 \"bytes\": {bytes}, \"flops\": {flops}, \"sets\": {sets}, \"iters\": {}, \"starved\": {}, ",
                json_num(timing.median_us),
                json_num(timing.min_us),
                json_num(gbps),
                json_num(100.0 * gbps / copy_gbps),
                timing.iters,
                timing.starved,
            );
        }
    }
    let note = note.map_or("null".to_owned(), json_str);
    let _ = write!(s, "\"note\": {note}, \"device\": {}, \"copy_gbps\": {}}}", json_str(device), json_num(copy_gbps));
    s
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `x` as a JSON number (`null` where it is not finite).
fn json_num(x: f64) -> String {
    if x.is_finite() { format!("{x}") } else { "null".into() }
}

/// Theoretical DRAM bandwidth from the memory clock and bus width (double data rate), where the
/// driver reports them.
fn peak_dram_gbps(ctx: &CudaContext) -> Option<f64> {
    let khz = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE).ok()?;
    let bits = ctx.attribute(CUdevice_attribute::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH).ok()?;
    (khz > 0 && bits > 0).then(|| 2.0 * khz as f64 * 1e3 * (bits as f64 / 8.0) / 1e9)
}

// ---------------------------------------------------------------------------------------------
// Timing

/// Median and minimum of the timed launches, in microseconds.
pub(crate) struct Timing {
    pub(crate) median_us: f64,
    pub(crate) min_us: f64,
    pub(crate) iters: usize,
    /// Timed launches before which the GPU sat idle (see `Timer::time`).
    pub(crate) starved: usize,
}

/// Event-timed launches on one stream, with a pair of large device buffers that measure the copy
/// bandwidth at start and later give the stream its head start before each timed batch.
struct Timer {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    cfg: Config,
    pad_src: CudaSlice<u8>,
    pad_dst: CudaSlice<u8>,
    /// Device-to-device copy bandwidth, GB/s counting bytes read + bytes written.
    copy_gbps: f64,
}

/// A gap this long between one timed launch's end event and the next one's start event means
/// the GPU waited for the host.
const STARVED_GAP_US: f64 = 5.0;
/// The longest head start given to the GPU before a timed batch.
const MAX_HEAD_START_S: f64 = 0.25;

impl Timer {
    /// Allocates the copy buffers (1 GiB each, less where memory is short) and measures the copy
    /// bandwidth with them.
    fn new(ctx: Arc<CudaContext>, stream: Arc<CudaStream>, cfg: Config, free: usize) -> BoxResult<Timer> {
        let pad = (free / 8).min(GIB) / MIB * MIB;
        if pad < 64 * MIB {
            return Err(format!("only {} MiB of device memory free", free / MIB).into());
        }
        let pad_src = stream.alloc_zeros::<u8>(pad)?;
        let pad_dst = stream.alloc_zeros::<u8>(pad)?;
        let mut t = Timer { ctx, stream, cfg, pad_src, pad_dst, copy_gbps: 0.0 };
        t.copy_gbps = t.measure_copy()?;
        Ok(t)
    }

    fn pad_bytes(&self) -> usize {
        self.pad_src.len()
    }

    fn events(&self, n: usize) -> BoxResult<Vec<CudaEvent>> {
        Ok((0..n).map(|_| self.ctx.new_event(Some(CUevent_flags::CU_EVENT_DEFAULT))).collect::<Result<_, _>>()?)
    }

    fn copy(&mut self, bytes: usize) -> BoxResult<()> {
        let bytes = bytes.min(self.pad_src.len());
        self.stream.memcpy_dtod(&self.pad_src.slice(..bytes), &mut self.pad_dst.slice_mut(..bytes))?;
        Ok(())
    }

    /// Median bandwidth of whole-buffer copies, GB/s of bytes read + written.
    fn measure_copy(&mut self) -> BoxResult<f64> {
        let bytes = self.pad_src.len();
        for _ in 0..self.cfg.copy_warmup {
            self.copy(bytes)?;
        }
        let n = self.cfg.copy_iters;
        let (starts, ends) = (self.events(n)?, self.events(n)?);
        for i in 0..n {
            starts[i].record(&self.stream)?;
            self.copy(bytes)?;
            ends[i].record(&self.stream)?;
        }
        self.stream.synchronize()?;
        let mut us = elapsed_us(&starts, &ends)?;
        let (median, _) = median_min(&mut us);
        Ok(2.0 * bytes as f64 / (median * 1e3))
    }

    /// Enqueues about `seconds` of copies: the GPU works through them while the host enqueues
    /// the batch that follows.
    fn head_start(&mut self, seconds: f64) -> BoxResult<()> {
        let mut left = (seconds.min(MAX_HEAD_START_S) * self.copy_gbps * 1e9 / 2.0) as usize;
        while left > 0 {
            let chunk = left.clamp(MIB, self.pad_src.len());
            self.copy(chunk)?;
            left = left.saturating_sub(chunk);
        }
        Ok(())
    }

    /// Times `enqueue(i)`, a closure that enqueues one launch on this timer's stream using
    /// buffer set `i` (in `0..sets`), asynchronously.
    ///
    /// One untimed launch first (it surfaces errors before anything is measured), then
    /// `cfg.warmup` launches, a head start of copies, and `cfg.iters` launches each between its
    /// own pair of events; the sets are used in turn throughout. The warm-up loop has the timed
    /// loop's shape, so its host time tells how long a head start the timed loop needs.
    fn time<E>(&mut self, sets: usize, mut enqueue: impl FnMut(usize) -> Result<(), E>) -> BoxResult<Timing>
    where
        E: Into<Box<dyn Error>>,
    {
        let sets = sets.max(1);
        let (warmup, iters) = (self.cfg.warmup.max(1), self.cfg.iters.max(2));
        let (starts, ends) = (self.events(iters)?, self.events(iters)?);

        enqueue(0).map_err(Into::into)?;
        self.stream.synchronize()?;

        let t0 = Instant::now();
        for j in 1..=warmup {
            starts[0].record(&self.stream)?;
            enqueue(j % sets).map_err(Into::into)?;
            ends[0].record(&self.stream)?;
        }
        let host_per_launch = t0.elapsed().as_secs_f64() / warmup as f64;
        self.stream.synchronize()?;

        self.head_start(2.0 * host_per_launch * iters as f64 + 200e-6)?;
        for j in 0..iters {
            starts[j].record(&self.stream)?;
            enqueue((warmup + 1 + j) % sets).map_err(Into::into)?;
            ends[j].record(&self.stream)?;
        }
        self.stream.synchronize()?;

        let mut us = elapsed_us(&starts, &ends)?;
        let gaps = elapsed_us(&ends[..iters - 1], &starts[1..])?;
        let starved = gaps.iter().filter(|&&g| g > STARVED_GAP_US).count();
        let (median_us, min_us) = median_min(&mut us);
        Ok(Timing { median_us, min_us, iters, starved })
    }
}

/// `ends[i] - starts[i]` in microseconds (the events must have completed).
fn elapsed_us(starts: &[CudaEvent], ends: &[CudaEvent]) -> BoxResult<Vec<f64>> {
    Ok(starts.iter().zip(ends).map(|(s, e)| s.elapsed_ms(e).map(|ms| ms as f64 * 1e3)).collect::<Result<_, _>>()?)
}

/// (median, minimum); sorts `v`, which must not be empty.
fn median_min(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
    (median, v[0])
}

/// How many buffer sets of `set_bytes` to rotate through so that together they exceed twice
/// the L2 cache (at least 2, so no launch finds its predecessor's buffers).
fn sets_for(set_bytes: usize, l2_bytes: usize) -> usize {
    (2 * l2_bytes / set_bytes.max(1) + 1).max(2)
}

// ---------------------------------------------------------------------------------------------
// Cases

/// What a case needs: the lowp handle, its stream and the timer.
struct Bench {
    lowp: Lowp,
    stream: Arc<CudaStream>,
    ctx: Arc<CudaContext>,
    l2_bytes: usize,
    timer: Timer,
    /// What the case ran, where a case says (a GEMM's kernel configuration): printed after its
    /// line and kept in its JSON row as `note`.
    note: Option<String>,
}

impl Bench {
    /// `Some(reason)` when `bytes` more device memory would not fit.
    fn lacks_memory(&self, bytes: usize) -> BoxResult<Option<String>> {
        self.stream.synchronize()?; // let the buffers of the previous case go back
        let (free, _) = self.ctx.mem_get_info()?;
        Ok((bytes + 256 * MIB > free).then(|| {
            format!(
                "needs {:.2} GiB of device memory, {:.2} GiB free",
                bytes as f64 / GIB as f64,
                free as f64 / GIB as f64
            )
        }))
    }

    /// `n` fresh random values on the device (copied before this returns).
    fn random<T: Half>(&self, n: usize, seed: u64) -> BoxResult<CudaSlice<T>> {
        let host = random_vec::<T>(n, seed);
        let buf = self.stream.clone_htod(&host)?;
        self.stream.synchronize()?;
        Ok(buf)
    }

    /// `n` fresh random f32 values on the device (copied before this returns).
    fn random_f32(&self, n: usize, seed: u64) -> BoxResult<CudaSlice<f32>> {
        let host = random_vec_with(n, seed, |x| x as f32);
        let buf = self.stream.clone_htod(&host)?;
        self.stream.synchronize()?;
        Ok(buf)
    }
}

pub(crate) enum Outcome {
    /// `flops` 0 for memory-bound cases (the TFLOP/s column shows `-`).
    Done {
        timing: Timing,
        bytes: u64,
        flops: u64,
        sets: usize,
    },
    Skipped(String),
}

/// Sets up, times and tears down one case.
type RunCase = dyn Fn(&mut Bench) -> BoxResult<Outcome>;

/// One benchmark case: `op/dtype/shape[/variant]`.
pub(crate) struct Case {
    /// The kernel family (the file under `cases/`), set by `cases()`.
    family: &'static str,
    /// The operation, named as the lowp function it times (`docs/benchmarks.md` lists them).
    op: &'static str,
    /// The element type the case is about: the input of norms and quantizers, the destination
    /// of casts, the operands of GEMMs.
    dtype: DType,
    /// Dimensions joined by `x` (and `-` between head counts), as `docs/benchmarks.md` reads them.
    shape: String,
    /// A variant of the same op and shape (`computed`, `zipf`, `masked`, a GEMM configuration),
    /// if any.
    variant: Option<String>,
    run: Box<RunCase>,
}

impl Case {
    fn new(op: &'static str, dtype: DType, shape: String, run: Box<RunCase>) -> Case {
        Case { family: "", op, dtype, shape, variant: None, run }
    }

    fn variant(self, variant: Option<&str>) -> Case {
        Case { variant: variant.map(str::to_owned), ..self }
    }

    pub(crate) fn name(&self) -> String {
        let mut name = format!("{}/{}/{}", self.op, dtype_name(self.dtype), self.shape);
        if let Some(v) = &self.variant {
            name.push('/');
            name.push_str(v);
        }
        name
    }
}

/// The dtype vocabulary of case names (`compare_torch.py` uses the same).
fn dtype_name(dtype: DType) -> &'static str {
    match dtype {
        DType::F32 => "f32",
        DType::Bf16 => "bf16",
        DType::F16 => "f16",
        DType::E4M3 => "e4m3",
        DType::E5M2 => "e5m2",
        DType::E2M1x2 => "e2m1",
        DType::Ue8m0 => "ue8m0",
    }
}

/// Every case, in the order they run and print: the launch floor, then one file per kernel
/// family under `cases/` (memory-bound families first, the GEMMs last).
pub(crate) fn cases() -> Vec<Case> {
    let families: [(&'static str, fn() -> Vec<Case>); 6] = [
        ("rmsnorm", rmsnorm::cases),
        ("cast", cast::cases),
        ("qk_norm_rope", qk_norm_rope::cases),
        ("fp8", fp8::cases),
        ("microscaling", microscaling::cases),
        ("gemm", gemm::cases),
    ];
    let empty = Case::new("empty_kernel", DType::F32, "1x1".into(), Box::new(bench_empty));
    let mut v = vec![Case { family: "launch", ..empty }];
    for (family, list) in families {
        v.extend(list().into_iter().map(|c| Case { family, ..c }));
    }
    v
}

/// The cases `opts` asks for: [`cases`], with `--configs` the GEMM configuration cases after
/// them.
fn cases_of(opts: &Options) -> Vec<Case> {
    let mut v = cases();
    if opts.configs {
        v.extend(gemm::config_cases().into_iter().map(|c| Case { family: "gemm", ..c }));
    }
    v
}

/// The names of the default cases, in order (what `--list` prints with no filter and
/// `compare_torch.py --list` names too).
#[allow(dead_code)] // read by tests/bench_names.rs, which includes this file
pub(crate) fn case_names() -> Vec<String> {
    cases().iter().map(Case::name).collect()
}

/// An empty kernel: the launch floor that latency-bound cases (decode-sized qk_norm_rope) are
/// read against.
fn bench_empty(b: &mut Bench) -> BoxResult<Outcome> {
    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(1, |_| lowp.launch_empty(&stream))?;
    Ok(Outcome::Done { timing, bytes: 0, flops: 0, sets: 1 })
}

// Benchmark cases, one module per kernel family (the family's byte count is documented there).
// Declared with paths relative to this file (not inside an inline module), so that
// `tests/bench_names.rs` can include this file as a module.
#[path = "cases/cast.rs"]
mod cast;
#[path = "cases/fp8.rs"]
mod fp8;
#[path = "cases/gemm.rs"]
mod gemm;
#[path = "cases/microscaling.rs"]
mod microscaling;
#[path = "cases/qk_norm_rope.rs"]
mod qk_norm_rope;
#[path = "cases/rmsnorm.rs"]
mod rmsnorm;

// ---------------------------------------------------------------------------------------------
// Inputs

/// SplitMix64 (Steele, Lea & Flood): small, fast, good enough for benchmark inputs.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Roughly N(0, 1): the sum of four 16-bit uniforms, centred and scaled to unit variance
    /// (range about ±3.5), pushed away from zero to at least 1/64 in magnitude.
    fn normal(&mut self) -> f64 {
        let r = self.next_u64();
        let sum: u64 = (0..4).map(|k| (r >> (16 * k)) & 0xffff).sum();
        let v = (sum as f64 - 2.0 * 65535.0) * (3.0f64.sqrt() / 65536.0);
        if v.abs() < 1.0 / 64.0 { (1.0 / 64.0f64).copysign(v) } else { v }
    }
}

/// `n` values of `normal()` rounded to `T`, generated on all host cores.
fn random_vec<T: Half>(n: usize, seed: u64) -> Vec<T> {
    random_vec_with(n, seed, T::from_f64)
}

/// `n` values of `normal()` converted by `convert`, generated on all host cores.
fn random_vec_with<T: Copy + Default + Send>(n: usize, seed: u64, convert: fn(f64) -> T) -> Vec<T> {
    let mut v = vec![T::default(); n];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(32);
    let chunk = n.div_ceil(threads).max(1 << 16);
    std::thread::scope(|s| {
        for (i, part) in v.chunks_mut(chunk).enumerate() {
            s.spawn(move || {
                let mut rng = SplitMix64(seed ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03));
                for e in part {
                    *e = convert(rng.normal());
                }
            });
        }
    });
    v
}
