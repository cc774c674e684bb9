//! Parses the PTX files given on the command line and prints, for each, its functions,
//! instructions and the time the parse took.
//!
//! `cargo run -p lowp-sim --release --example parse_ptx -- [--dump FROM:TO] a.ptx b.ptx`
//!
//! `--dump FROM:TO` also prints the lowered instructions of PTX lines FROM..=TO (with their
//! program counter and source line), and the header of every function that starts there.

use std::time::Instant;

use lowp_sim::ir::Function;

fn main() {
    let mut failed = false;
    let mut dump: Option<(u32, u32)> = None;
    let mut args = std::env::args().skip(1);
    while let Some(path) = args.next() {
        if path == "--dump" {
            let range = args.next().unwrap_or_default();
            let (a, b) = range.split_once(':').unwrap_or((&range, &range));
            dump = a.parse().ok().zip(b.parse().ok());
            continue;
        }
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
                continue;
            }
        };
        let t0 = Instant::now();
        match lowp_sim::parse::parse_module(&text) {
            Ok(m) => {
                let dt = t0.elapsed();
                if let Some((from, to)) = dump {
                    for f in m.functions.iter().filter(|f| (from..=to).contains(&f.line)) {
                        let Function { name, start, end, reg_count, params, rets, param_bytes, .. } = f;
                        println!(
                            "fn {name}: pc {start}..{end}, {reg_count} regs, params {params:?} rets {rets:?} ({param_bytes} bytes), frame {}+{}+{}",
                            f.frame_params, f.local_bytes, f.call_param_bytes
                        );
                    }
                    for (pc, i) in m.code.iter().enumerate().filter(|(_, i)| (from..=to).contains(&i.line)) {
                        println!("{pc:6} {:5} {:<50} {:?}{:?}", i.line, m.source_line(i.line), i.guard, i.op);
                    }
                }
                let entries = m.functions.iter().filter(|f| f.is_entry).count();
                let max_regs = m.functions.iter().map(|f| f.reg_count).max().unwrap_or(0);
                println!(
                    "{path}: {} bytes, {} lines, {} functions ({entries} entries), {} instructions, {} branch tables, \
                     max {max_regs} registers, target {} version {}, parsed in {:.1} ms",
                    text.len(),
                    m.lines.len(),
                    m.functions.len(),
                    m.code.len(),
                    m.branch_tables.len(),
                    m.target,
                    m.version,
                    dt.as_secs_f64() * 1e3
                );
            }
            Err(e) => {
                eprintln!("{path}: {e}");
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}
