//! The simulator's speed in lane-instructions per second, every check on, on one core.
//!
//! `cargo bench -p lowp-sim --bench speed` (or `cargo run --release -p lowp-sim --example` style:
//! this is a plain binary). Three kernels: integer/f32 arithmetic in registers, a memory-bound
//! copy with 16-byte vector loads and stores, and a shared-memory + shuffle reduction — the mix
//! lowp's memory-bound kernels are made of.

use std::time::Instant;

use lowp_sim::{Config, LaunchConfig, Sim};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n.extern .shared .align 16 .b8 smem[];\n";

const ALU: &str = r#"
.visible .entry alu(.param .align 8 .b8 p[16])
{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    mov.b32 %r2, 0;
    mov.b32 %r3, 0f3F800000;
    cvt.rn.f32.u32 %r4, %r1;
$L_loop:
    fma.rn.f32 %r3, %r3, %r4, 0f3F000000;
    mul.rn.f32 %r5, %r3, 0f3C000000;
    add.s32 %r6, %r2, %r1;
    xor.b32 %r7, %r6, %r2;
    shl.b32 %r8, %r7, 3;
    min.f32 %r3, %r5, 0f42000000;
    add.s32 %r2, %r2, 1;
    setp.lt.u32 %p1, %r2, 4096;
    @%p1 bra $L_loop;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.b32 [%rd3], %r3;
    ret;
}
"#;

const COPY: &str = r#"
.visible .entry copy(.param .align 8 .b8 p[24])
{
    .reg .pred %p<2>;
    .reg .b32 %r<16>;
    .reg .b64 %rd<16>;
    ld.param.b64 %rd1, [p];
    ld.param.b64 %rd2, [p+8];
    ld.param.b64 %rd3, [p+16];
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    cvt.u64.u32 %rd4, %r4;
    mov.u32 %r5, %nctaid.x;
    mul.lo.s32 %r6, %r5, %r2;
    cvt.u64.u32 %rd5, %r6;
$L_loop:
    setp.ge.u64 %p1, %rd4, %rd3;
    @%p1 bra $L_done;
    shl.b64 %rd6, %rd4, 4;
    add.s64 %rd7, %rd1, %rd6;
    ld.global.nc.v4.u32 {%r7, %r8, %r9, %r10}, [%rd7];
    add.s64 %rd8, %rd2, %rd6;
    st.global.v4.u32 [%rd8], {%r7, %r8, %r9, %r10};
    add.s64 %rd4, %rd4, %rd5;
    bra.uni $L_loop;
$L_done:
    ret;
}
"#;

const REDUCE: &str = r#"
.visible .entry reduce(.param .align 8 .b8 p[16])
{
    .reg .pred %p<4>;
    .reg .b32 %r<24>;
    .reg .b64 %rd<8>;
    ld.param.b64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    mov.b32 %r20, 0;
$L_rep:
    cvt.rn.f32.u32 %r2, %r1;
    shfl.sync.bfly.b32 %r3, %r2, 16, 0x1f, -1;
    add.rn.f32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 8, 0x1f, -1;
    add.rn.f32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 4, 0x1f, -1;
    add.rn.f32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 2, 0x1f, -1;
    add.rn.f32 %r2, %r2, %r3;
    shfl.sync.bfly.b32 %r3, %r2, 1, 0x1f, -1;
    add.rn.f32 %r2, %r2, %r3;
    shr.u32 %r4, %r1, 5;
    shl.b32 %r5, %r4, 2;
    mov.u32 %r6, smem;
    add.s32 %r7, %r6, %r5;
    st.volatile.shared.b32 [%r7], %r2;
    bar.sync 0;
    ld.volatile.shared.b32 %r8, [%r6];
    ld.volatile.shared.b32 %r9, [%r6+4];
    add.rn.f32 %r10, %r8, %r9;
    bar.sync 0;
    add.s32 %r20, %r20, 1;
    setp.lt.u32 %p1, %r20, 64;
    @%p1 bra $L_rep;
    mul.wide.u32 %rd2, %r1, 4;
    add.s64 %rd3, %rd1, %rd2;
    st.global.b32 [%rd3], %r10;
    ret;
}
"#;

fn main() {
    let sim = Sim::new(Config::default());
    let m = sim.load_module(&format!("{HEADER}{ALU}{COPY}{REDUCE}")).expect("the benchmark's PTX loads");
    let n: u64 = 1 << 20; // 16-byte vectors: 16 MiB copied
    let x = sim.alloc(16 * n).unwrap();
    let y = sim.alloc(16 * n).unwrap();
    sim.write(x, &vec![1u8; (16 * n) as usize]).unwrap();
    let out = sim.alloc(4 * 1024).unwrap();
    let cases: [(&str, [u32; 2], u32, Vec<u64>); 3] = [
        ("alu", [1, 1024], 0, vec![out, 0]),
        ("copy", [64, 256], 0, vec![x, y, n]),
        ("reduce", [1, 1024], 128, vec![out, 0]),
    ];
    println!(
        "{:<8} {:>14} {:>10} {:>16} {:>18}",
        "kernel", "lane-insts", "seconds", "M lane-insts/s", "(per CPU second)"
    );
    // `cargo bench -p lowp-sim --bench speed -- copy` runs the kernels whose names contain "copy".
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    for (name, [grid, block], smem, p) in cases {
        if !only.is_empty() && !only.iter().any(|o| name.contains(o.as_str())) {
            continue;
        }
        let k = sim.kernel(&m, name).unwrap();
        let params: Vec<u8> = p.iter().flat_map(|v| v.to_le_bytes()).collect();
        let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_smem: smem };
        sim.launch(&k, &cfg, &params).expect("warm-up launch");
        // Best of 5, by the clock and by the thread's CPU time (which a busy machine's other
        // processes do not inflate).
        let (mut best, mut best_cpu) = (f64::MAX, f64::MAX);
        let mut insts = 0;
        for _ in 0..5 {
            let (t, c) = (Instant::now(), cpu_seconds());
            let s = sim.launch(&k, &cfg, &params).expect("launch");
            best = best.min(t.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - c);
            insts = s.lane_insts;
        }
        let cpu = if best_cpu > 0.0 { format!("{:.1}", insts as f64 / best_cpu / 1e6) } else { "-".to_string() };
        println!("{name:<8} {insts:>14} {best:>10.3} {:>16.1} {cpu:>18}", insts as f64 / best / 1e6);
    }
}

/// CPU seconds the calling thread has used (0 where the platform gives none here).
fn cpu_seconds() -> f64 {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    {
        #[repr(C)]
        struct Timespec {
            sec: i64,
            nsec: i64,
        }
        unsafe extern "C" {
            fn clock_gettime(clock: i32, t: *mut Timespec) -> i32;
        }
        const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
        let mut t = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `clock_gettime` writes one `struct timespec` (two 64-bit fields on 64-bit Linux)
        // through the valid pointer it is given.
        if unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut t) } == 0 {
            return t.sec as f64 + t.nsec as f64 * 1e-9;
        }
    }
    0.0
}
