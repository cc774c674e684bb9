//! Every PTX instruction form lowp emits, and the common forms a kernel may add, run through the
//! simulator on a table of inputs (one row per thread, read from global memory) against results
//! worked out from the PTX ISA's description of the instruction: the semantics pseudo-code
//! transcribed as a reference where the ISA gives one, IEEE 754 arithmetic (Rust's own `f32` /
//! `f64`, which rounds to nearest even and keeps subnormals) where the ISA says "IEEE 754
//! compliant", and hand-worked values at the edges the ISA names (NaN, ±Inf, subnormals without
//! `.ftz`, ±0, shift counts past the width, wrap-around, ties, saturation, packing order).
//! Where the ISA leaves a result unspecified the table only asks that the launch succeeds.

use std::fmt;

use lowp_sim::{Config, ErrorKind, LaunchConfig, Sim, SimError};

const HEADER: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n";

// ---------------------------------------------------------------------------------------------
// The harness: one thread per row
// ---------------------------------------------------------------------------------------------

/// Input slots of a row (8 bytes each): sources `%a %b %c %e`.
const SLOTS: usize = 4;
const SRC: [&str; SLOTS] = ["%a", "%b", "%c", "%e"];

/// What a thread's result must be.
#[derive(Clone, Copy)]
enum Exp {
    /// Exactly these bits (the destination's width; the output bytes above it stay zero).
    B(u64),
    /// Any f32 NaN (the ISA leaves the NaN unspecified).
    Nan32,
    /// Any f64 NaN.
    Nan64,
    /// Anything: the ISA leaves the value unspecified; the launch must still succeed.
    Any,
    /// A named property of the bits.
    P(&'static str, fn(u64) -> bool),
}
use Exp::{Any, B, Nan32, Nan64, P};

impl Exp {
    fn ok(self, v: u64) -> bool {
        match self {
            B(x) => v == x,
            Nan32 => v >> 32 == 0 && f32::from_bits(v as u32).is_nan(),
            Nan64 => f64::from_bits(v).is_nan(),
            Any => true,
            P(_, f) => f(v),
        }
    }
}

impl fmt::Debug for Exp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            B(x) => write!(f, "{x:#x}"),
            Nan32 => write!(f, "an f32 NaN"),
            Nan64 => write!(f, "an f64 NaN"),
            Any => write!(f, "anything"),
            P(name, _) => write!(f, "{name}"),
        }
    }
}

/// A kernel around `body`, run in one CTA with one thread per row. Thread `%i` loads its sources
/// (`srcs[k]` is the type of `SRC[k]`; a `pred` source is loaded as a b32 and tested != 0) from row
/// `%i` at `%row`, runs `body`, and stores `%d` (type `dst`; a `pred` is stored as 0 or 1) to the
/// row's 8-byte output slot (zeroed first). `%base` is the start of the input table. `prelude`
/// goes before the kernel (functions, `.shared` variables), `decls` at the top of it.
fn try_rows(
    prelude: &str,
    decls: &str,
    srcs: &[&str],
    dst: &str,
    body: &str,
    rows: &[[u64; SLOTS]],
) -> Result<Vec<u64>, SimError> {
    let mut regs = String::new();
    let mut loads = String::new();
    for (k, ty) in srcs.iter().enumerate() {
        let (r, off) = (SRC[k], 8 * k);
        if *ty == "pred" {
            regs += &format!("    .reg .pred {r};\n    .reg .b32 {r}_w;\n");
            loads += &format!("    ld.global.b32 {r}_w, [%row+{off}];\n    setp.ne.b32 {r}, {r}_w, 0;\n");
        } else {
            regs += &format!("    .reg .{ty} {r};\n");
            loads += &format!("    ld.global.{ty} {r}, [%row+{off}];\n");
        }
    }
    let store = if dst == "pred" {
        regs += "    .reg .pred %d;\n    .reg .b32 %d_w;\n";
        "    selp.u32 %d_w, 1, 0, %d;\n    st.global.u32 [%out], %d_w;\n".to_string()
    } else {
        regs += &format!("    .reg .{dst} %d;\n");
        format!("    st.global.{dst} [%out], %d;\n")
    };
    let ptx = format!(
        r#"{HEADER}{prelude}
.visible .entry rows(.param .align 8 .b8 rows_param[24])
{{
{decls}
    .reg .pred %done;
    .reg .b32 %i, %n;
    .reg .b64 %base, %row, %out, %off;
{regs}
    ld.param.b64 %base, [rows_param];
    ld.param.b64 %out, [rows_param+8];
    ld.param.b32 %n, [rows_param+16];
    mov.u32 %i, %tid.x;
    setp.ge.u32 %done, %i, %n;
    @%done bra $L_end;
    mul.wide.u32 %off, %i, 32;
    add.s64 %row, %base, %off;
{loads}
{body}
    mul.wide.u32 %off, %i, 8;
    add.s64 %out, %out, %off;
{store}
$L_end:
    ret;
}}
"#
    );
    let n = rows.len();
    assert!((1..=1024).contains(&n), "one CTA: 1 to 1024 rows");
    let sim = Sim::new(Config::default());
    let m = sim.load_module(&ptx).map_err(|e| SimError { message: format!("{}\n{ptx}", e.message), ..e })?;
    let k = sim.kernel(&m, "rows").unwrap();
    let input: Vec<u8> = rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    let x = sim.alloc(input.len() as u64).unwrap();
    sim.write(x, &input).unwrap();
    let y = sim.alloc(8 * n as u64).unwrap();
    sim.memset(y, 0, 8 * n as u64).unwrap();
    let mut params = Vec::new();
    params.extend(x.to_le_bytes());
    params.extend(y.to_le_bytes());
    params.extend((n as u64).to_le_bytes());
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [n as u32, 1, 1], dynamic_smem: 0 };
    sim.launch(&k, &cfg, &params)?;
    let mut out = vec![0u8; 8 * n];
    sim.read(y, &mut out).unwrap();
    Ok(out.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect())
}

fn rows_in(prelude: &str, decls: &str, srcs: &[&str], dst: &str, body: &str, rows: &[[u64; SLOTS]]) -> Vec<u64> {
    try_rows(prelude, decls, srcs, dst, body, rows).unwrap_or_else(|e| panic!("`{}`: {e}", body.trim()))
}

/// Pads each row's sources to the slots.
fn table<const N: usize>(rows: &[([u64; N], Exp)]) -> Vec<[u64; SLOTS]> {
    rows.iter()
        .map(|(ins, _)| {
            let mut r = [0; SLOTS];
            r[..N].copy_from_slice(ins);
            r
        })
        .collect()
}

/// Runs `body` on every row and checks each result; reports every wrong row.
fn check_in<const N: usize>(
    prelude: &str,
    decls: &str,
    srcs: [&str; N],
    dst: &str,
    body: &str,
    rows: &[([u64; N], Exp)],
) {
    for chunk in rows.chunks(1024) {
        let got = rows_in(prelude, decls, &srcs, dst, body, &table(chunk));
        let bad: Vec<String> = chunk
            .iter()
            .zip(&got)
            .filter(|((_, e), g)| !e.ok(**g))
            .map(|((ins, e), g)| {
                let ins: Vec<String> = ins.iter().map(|v| format!("{v:#x}")).collect();
                format!("  ({}) gave {g:#x}, expected {e:?}", ins.join(", "))
            })
            .collect();
        assert!(bad.is_empty(), "`{}`: {} of {} rows wrong\n{}", body.trim(), bad.len(), chunk.len(), bad.join("\n"));
    }
}

fn check<const N: usize>(srcs: [&str; N], dst: &str, body: &str, rows: &[([u64; N], Exp)]) {
    check_in("", "", srcs, dst, body, rows)
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

fn f(x: f32) -> u64 {
    x.to_bits() as u64
}
fn d(x: f64) -> u64 {
    x.to_bits()
}
fn s16(x: i16) -> u64 {
    x as u16 as u64
}
fn s32(x: i32) -> u64 {
    x as u32 as u64
}
fn s64(x: i64) -> u64 {
    x as u64
}
/// 2^e exactly (as an f64; `as f32` is exact where 2^e is an f32).
fn p2(e: i32) -> f64 {
    if e >= -1022 { f64::from_bits(((e + 1023) as u64) << 52) } else { f64::from_bits(1u64 << (e + 1074)) }
}
fn p2f(e: i32) -> f32 {
    p2(e) as f32
}

const INF: u64 = 0x7f80_0000;
const NINF: u64 = 0xff80_0000;
const QNAN: u64 = 0x7fc0_0000;
/// A signalling NaN whose only payload bit is the lowest.
const SNAN: u64 = 0x7f80_0001;
const NZ: u64 = 0x8000_0000;
const MAXF: u64 = 0x7f7f_ffff;
/// The smallest f32 subnormal, the largest, and the smallest normal.
const SUB1: u64 = 1;
const SUBMAX: u64 = 0x007f_ffff;
const MINNORM: u64 = 0x0080_0000;
const DINF: u64 = 0x7ff0_0000_0000_0000;
const DNINF: u64 = 0xfff0_0000_0000_0000;
const DQNAN: u64 = 0x7ff8_0000_0000_0000;
const DNZ: u64 = 1 << 63;

/// xorshift64*: a small deterministic generator for sweeps.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// An f32 of random sign and mantissa with a biased exponent in `lo..=hi`.
    fn f32_in(&mut self, lo: u32, hi: u32) -> f32 {
        let r = self.next();
        let e = lo + (r >> 40) as u32 % (hi - lo + 1);
        f32::from_bits(((r >> 63) as u32) << 31 | e << 23 | (r as u32 & 0x7f_ffff))
    }
    fn f64_in(&mut self, lo: u64, hi: u64) -> f64 {
        let r = self.next();
        let e = lo + (r >> 40) % (hi - lo + 1);
        f64::from_bits((r & (1 << 63)) | e << 52 | (self.next() & ((1 << 52) - 1)))
    }
}

fn exp32(r: f32) -> Exp {
    if r.is_nan() { Nan32 } else { B(f(r)) }
}
fn exp64(r: f64) -> Exp {
    if r.is_nan() { Nan64 } else { B(d(r)) }
}

// ---------------------------------------------------------------------------------------------
// Integer arithmetic
// ---------------------------------------------------------------------------------------------

#[test]
fn add_sub_wrap_around() {
    let b16 = ["b16", "b16"];
    check(
        b16,
        "b16",
        "add.s16 %d, %a, %b;",
        &[([0x7fff, 1], B(0x8000)), ([0xffff, 1], B(0)), ([s16(-5), 3], B(s16(-2))), ([0x8000, 0x8000], B(0))],
    );
    check(b16, "b16", "sub.s16 %d, %a, %b;", &[([0x8000, 1], B(0x7fff)), ([0, 1], B(0xffff)), ([5, s16(-3)], B(8))]);
    let b32 = ["b32", "b32"];
    check(
        b32,
        "b32",
        "add.s32 %d, %a, %b;",
        &[([0x7fff_ffff, 1], B(0x8000_0000)), ([0xffff_ffff, 1], B(0)), ([s32(-7), 3], B(s32(-4)))],
    );
    check(
        b32,
        "b32",
        "sub.s32 %d, %a, %b;",
        &[([0x8000_0000, 1], B(0x7fff_ffff)), ([0, 1], B(0xffff_ffff)), ([3, 10], B(s32(-7)))],
    );
    check(["b32"], "b32", "add.s32 %d, %a, -1;", &[([0], B(0xffff_ffff)), ([5], B(4))]);
    let b64 = ["b64", "b64"];
    let rows64 = [
        ([i64::MAX as u64, 1], B(1 << 63)),
        ([u64::MAX, 1], B(0)),
        ([s64(-3), 1], B(s64(-2))),
        ([0xffff_ffff, 1], B(1 << 32)),
    ];
    check(b64, "b64", "add.s64 %d, %a, %b;", &rows64);
    check(b64, "b64", "add.u64 %d, %a, %b;", &rows64);
    check(
        b64,
        "b64",
        "sub.s64 %d, %a, %b;",
        &[([1 << 63, 1], B(i64::MAX as u64)), ([0, 1], B(u64::MAX)), ([1 << 32, 1], B(0xffff_ffff))],
    );
}

#[test]
fn multiply_lo_hi_wide_and_mad() {
    let b32 = ["b32", "b32"];
    check(
        b32,
        "b32",
        "mul.lo.s32 %d, %a, %b;",
        &[
            ([0x1_0000, 0x1_0000], B(0)),
            ([s32(-3), 7], B(s32(-21))),
            ([0x7fff_ffff, 2], B(0xffff_fffe)),
            ([0x8000_0000, s32(-1)], B(0x8000_0000)),
        ],
    );
    check(
        b32,
        "b32",
        "mul.hi.u32 %d, %a, %b;",
        &[([0xffff_ffff, 0xffff_ffff], B(0xffff_fffe)), ([0x8000_0000, 2], B(1)), ([3, 5], B(0))],
    );
    check(
        b32,
        "b32",
        "mul.hi.s32 %d, %a, %b;",
        &[
            ([s32(-1), 1], B(0xffff_ffff)),
            ([0x8000_0000, 0x8000_0000], B(0x4000_0000)),
            ([s32(-2), 0x4000_0000], B(0xffff_ffff)),
            ([3, 5], B(0)),
        ],
    );
    let b64 = ["b64", "b64"];
    check(
        b64,
        "b64",
        "mul.lo.s64 %d, %a, %b;",
        &[
            ([1 << 32, 1 << 32], B(0)),
            ([s64(-3), 7], B(s64(-21))),
            ([0x1234_5678_9abc_def0, 0x10], B(0x2345_6789_abcd_ef00)),
        ],
    );
    check(b64, "b64", "mul.hi.u64 %d, %a, %b;", &[([u64::MAX, u64::MAX], B(u64::MAX - 1)), ([1 << 63, 4], B(2))]);
    check(b64, "b64", "mul.hi.s64 %d, %a, %b;", &[([s64(-1), 5], B(u64::MAX)), ([1 << 63, 1 << 63], B(1 << 62))]);
    // .wide: the product of the sign- or zero-extended operands, twice as wide.
    check(
        ["b16", "b16"],
        "b32",
        "mul.wide.u16 %d, %a, %b;",
        &[([0xffff, 0xffff], B(0xfffe_0001)), ([0x8000, 2], B(0x1_0000))],
    );
    check(["b16"], "b32", "mul.wide.u16 %d, %a, 256;", &[([0xffff], B(0xff_ff00)), ([3], B(768))]);
    check(
        ["b16", "b16"],
        "b32",
        "mul.wide.s16 %d, %a, %b;",
        &[([0xffff, 0xffff], B(1)), ([0x8000, 0x8000], B(0x4000_0000)), ([0xffff, 1], B(0xffff_ffff))],
    );
    check(
        b32,
        "b64",
        "mul.wide.u32 %d, %a, %b;",
        &[([0xffff_ffff, 0xffff_ffff], B(0xffff_fffe_0000_0001)), ([0x8000_0000, 2], B(1 << 32))],
    );
    check(
        b32,
        "b64",
        "mul.wide.s32 %d, %a, %b;",
        &[([s32(-1), 2], B(s64(-2))), ([0x8000_0000, 0x8000_0000], B(1 << 62)), ([0xffff_ffff, 0xffff_ffff], B(1))],
    );
    let b32x3 = ["b32", "b32", "b32"];
    check(
        b32x3,
        "b32",
        "mad.lo.s32 %d, %a, %b, %c;",
        &[
            ([3, 4, 5], B(17)),
            ([0x1_0000, 0x1_0000, 7], B(7)),
            ([s32(-2), 3, 1], B(s32(-5))),
            ([u32::MAX as u64; 3], B(0)),
        ],
    );
    check(
        ["b64", "b64", "b64"],
        "b64",
        "mad.lo.s64 %d, %a, %b, %c;",
        &[([1 << 32, 1 << 32, 9], B(9)), ([s64(-2), 3, 1], B(s64(-5)))],
    );
    // hi(0xffffffff^2) = 0xfffffffe, + 2 wraps to 0.
    check(
        b32x3,
        "b32",
        "mad.hi.u32 %d, %a, %b, %c;",
        &[([0xffff_ffff, 0xffff_ffff, 2], B(0)), ([0x8000_0000, 4, 5], B(7))],
    );
    check(["b32", "b32", "b64"], "b64", "mad.wide.u32 %d, %a, %b, %c;", &[([0xffff_ffff, 2, 2], B(0x2_0000_0000))]);
}

#[test]
fn divide_and_remainder() {
    let b32 = ["b32", "b32"];
    check(
        b32,
        "b32",
        "div.u32 %d, %a, %b;",
        &[
            ([7, 2], B(3)),
            ([0xffff_ffff, 1], B(0xffff_ffff)),
            ([0xffff_ffff, 0x1_0000], B(0xffff)),
            ([1, 2], B(0)),
            ([0x8000_0000, 0x8000_0001], B(0)),
        ],
    );
    check(
        b32,
        "b32",
        "rem.u32 %d, %a, %b;",
        &[([7, 3], B(1)), ([0xffff_ffff, 0x10], B(0xf)), ([5, 7], B(5)), ([0x8000_0000, 3], B(2))],
    );
    let b64 = ["b64", "b64"];
    check(
        b64,
        "b64",
        "div.u64 %d, %a, %b;",
        &[([u64::MAX, 3], B(0x5555_5555_5555_5555)), ([1 << 40, 1 << 20], B(1 << 20)), ([1 << 63, u64::MAX], B(0))],
    );
    check(b64, "b64", "rem.u64 %d, %a, %b;", &[([u64::MAX, 10], B(5)), ([1 << 63, 3], B(2))]);
    check(["b32"], "b32", "div.u32 %d, %a, 10;", &[([99], B(9))]);
}

/// "The behavior for negative numbers is machine-dependent and depends on whether divide rounds
/// towards zero or negative infinity" (rem): whatever the rounding, quotient and remainder must
/// recompose the dividend, with |r| < |b|.
#[test]
fn signed_divide_and_remainder_recompose() {
    let vals: [i32; 7] = [7, -7, 2, -2, 1, i32::MAX, i32::MIN + 1];
    let mut rows = Vec::new();
    for &a in &vals {
        for &b in &vals {
            rows.push([s32(a), s32(b), 0, 0]);
        }
    }
    let body = "{ .reg .b32 q, r; div.s32 q, %a, %b; rem.s32 r, %a, %b; mov.b64 %d, {q, r}; }";
    let got = rows_in("", "", &["b32", "b32"], "b64", body, &rows);
    for (row, g) in rows.iter().zip(got) {
        let (a, b) = (row[0] as u32 as i32, row[1] as u32 as i32);
        let (q, r) = (g as u32 as i32, (g >> 32) as u32 as i32);
        assert_eq!(q.wrapping_mul(b).wrapping_add(r), a, "{a} / {b} gave q {q} r {r}");
        assert!(r.unsigned_abs() < b.unsigned_abs(), "{a} % {b} gave {r}");
        // For the non-negative cases the quotient is the floor of the exact quotient.
        if a >= 0 && b > 0 {
            assert_eq!((q, r), (a / b, a % b));
        }
    }
}

/// "Division by zero yields an unspecified, machine-specific value" (div, rem): only that the
/// launch succeeds; what the simulator gives is listed in its report.
#[test]
fn division_by_zero_is_unspecified_but_runs() {
    let b32 = ["b32", "b32"];
    for op in ["div.u32", "rem.u32", "div.s32", "rem.s32"] {
        check(b32, "b32", &format!("{op} %d, %a, %b;"), &[([7, 0], Any), ([0, 0], Any), ([0xffff_ffff, 0], Any)]);
    }
    for op in ["div.u64", "rem.u64", "div.s64", "rem.s64"] {
        check(["b64", "b64"], "b64", &format!("{op} %d, %a, %b;"), &[([7, 0], Any), ([u64::MAX, 0], Any)]);
    }
    // MININT / -1 overflows.
    check(b32, "b32", "div.s32 %d, %a, %b;", &[([0x8000_0000, s32(-1)], Any)]);
    check(b32, "b32", "rem.s32 %d, %a, %b;", &[([0x8000_0000, s32(-1)], Any)]);
}

#[test]
fn integer_min_max_neg_abs() {
    let b32 = ["b32", "b32"];
    check(b32, "b32", "min.u32 %d, %a, %b;", &[([0xffff_ffff, 0], B(0)), ([3, 7], B(3)), ([7, 7], B(7))]);
    check(b32, "b32", "max.u32 %d, %a, %b;", &[([0xffff_ffff, 0], B(0xffff_ffff)), ([3, 7], B(7))]);
    check(
        b32,
        "b32",
        "min.s32 %d, %a, %b;",
        &[([0xffff_ffff, 0], B(0xffff_ffff)), ([0x8000_0000, 0x7fff_ffff], B(0x8000_0000))],
    );
    check(b32, "b32", "max.s32 %d, %a, %b;", &[([0xffff_ffff, 0], B(0)), ([0x8000_0000, 0x7fff_ffff], B(0x7fff_ffff))]);
    check(["b32"], "b32", "max.s32 %d, %a, 0;", &[([s32(-9)], B(0)), ([9], B(9))]);
    let b64 = ["b64", "b64"];
    check(b64, "b64", "min.u64 %d, %a, %b;", &[([u64::MAX, 1], B(1)), ([1 << 63, 1 << 62], B(1 << 62))]);
    check(b64, "b64", "min.s64 %d, %a, %b;", &[([u64::MAX, 1], B(u64::MAX)), ([1 << 63, 1 << 62], B(1 << 63))]);
    check(b64, "b64", "max.u64 %d, %a, %b;", &[([u64::MAX, 1], B(u64::MAX))]);
    check(b64, "b64", "max.s64 %d, %a, %b;", &[([u64::MAX, 1], B(1))]);
    let b16 = ["b16", "b16"];
    check(b16, "b16", "min.u16 %d, %a, %b;", &[([0xffff, 1], B(1))]);
    check(b16, "b16", "min.s16 %d, %a, %b;", &[([0xffff, 1], B(0xffff))]);
    check(
        ["b32"],
        "b32",
        "neg.s32 %d, %a;",
        &[([1], B(0xffff_ffff)), ([0x8000_0000], B(0x8000_0000)), ([0], B(0)), ([s32(-5)], B(5))],
    );
    check(["b64"], "b64", "neg.s64 %d, %a;", &[([1], B(u64::MAX)), ([1 << 63], B(1 << 63))]);
    check(["b16"], "b16", "neg.s16 %d, %a;", &[([1], B(0xffff)), ([0x8000], B(0x8000))]);
    // |MININT| is not representable: two's complement negation wraps back to MININT.
    check(["b32"], "b32", "abs.s32 %d, %a;", &[([s32(-5)], B(5)), ([5], B(5)), ([0x8000_0000], B(0x8000_0000))]);
}

// ---------------------------------------------------------------------------------------------
// Logic, shifts, bit fields
// ---------------------------------------------------------------------------------------------

#[test]
fn logic_ops() {
    check(["b16", "b16"], "b16", "and.b16 %d, %a, %b;", &[([0xf0f0, 0xff00], B(0xf000))]);
    check(["b16", "b16"], "b16", "or.b16 %d, %a, %b;", &[([0xf0f0, 0x0f00], B(0xfff0))]);
    check(["b16", "b16"], "b16", "xor.b16 %d, %a, %b;", &[([0xf0f0, 0xff00], B(0x0ff0))]);
    check(["b32", "b32"], "b32", "and.b32 %d, %a, %b;", &[([0xffff_0000, 0x0ff0_0ff0], B(0x0ff0_0000))]);
    check(["b32", "b32"], "b32", "or.b32 %d, %a, %b;", &[([0xffff_0000, 0x0ff0_0ff0], B(0xffff_0ff0))]);
    check(["b32", "b32"], "b32", "xor.b32 %d, %a, %b;", &[([0xffff_0000, 0x0ff0_0ff0], B(0xf00f_0ff0))]);
    check(["b32"], "b32", "and.b32 %d, %a, 2147483647;", &[([0xffff_ffff], B(0x7fff_ffff))]);
    check(["b32"], "b32", "not.b32 %d, %a;", &[([0], B(0xffff_ffff)), ([0x1234_5678], B(0xedcb_a987))]);
    check(["b16"], "b16", "not.b16 %d, %a;", &[([0x00ff], B(0xff00))]);
    check(["b64", "b64"], "b64", "and.b64 %d, %a, %b;", &[([u64::MAX, 0xf << 60], B(0xf << 60))]);
    check(["b64", "b64"], "b64", "or.b64 %d, %a, %b;", &[([1 << 63, 1], B((1 << 63) | 1))]);
    check(["b64", "b64"], "b64", "xor.b64 %d, %a, %b;", &[([u64::MAX, 1 << 40], B(u64::MAX ^ (1 << 40)))]);
    check(["b64"], "b64", "not.b64 %d, %a;", &[([1], B(u64::MAX - 1))]);
    let tt = |f: fn(bool, bool) -> bool| -> Vec<([u64; 2], Exp)> {
        [(0, 0), (0, 1), (1, 0), (1, 1)].iter().map(|&(a, b)| ([a, b], B(f(a == 1, b == 1) as u64))).collect()
    };
    check(["pred", "pred"], "pred", "and.pred %d, %a, %b;", &tt(|a, b| a & b));
    check(["pred", "pred"], "pred", "or.pred %d, %a, %b;", &tt(|a, b| a | b));
    check(["pred", "pred"], "pred", "xor.pred %d, %a, %b;", &tt(|a, b| a ^ b));
    check(["pred", "pred"], "pred", "not.pred %d, %a;", &tt(|a, _| !a));
    check(["pred", "pred"], "pred", "mov.pred %d, %b;", &tt(|_, b| b));
}

/// "Shift amounts greater than the register width N are clamped to N" (shl, shr); "signed shifts
/// fill with the sign bit, unsigned and untyped shifts fill with 0". The count is a u32.
#[test]
fn shifts_clamp_the_count() {
    let big = [0xffff_ffffu64, 0x8000_0001, 1000];
    let mut shl16 = vec![([0x8001, 1], B(2)), ([1, 15], B(0x8000)), ([1, 16], B(0)), ([0x1234, 0], B(0x1234))];
    let mut shl32 = vec![
        ([1, 31], B(0x8000_0000)),
        ([1, 32], B(0)),
        ([0x1234_5678, 4], B(0x2345_6780)),
        ([0xffff_ffff, 0], B(0xffff_ffff)),
    ];
    let mut shl64 = vec![([1, 63], B(1 << 63)), ([1, 64], B(0)), ([0x1234, 32], B(0x1234 << 32))];
    let mut shru32 = vec![([0x8000_0000, 31], B(1)), ([0x8000_0000, 32], B(0)), ([0xf000_0000, 4], B(0x0f00_0000))];
    let mut shrs32 = vec![
        ([0x8000_0000, 31], B(0xffff_ffff)),
        ([0x8000_0000, 32], B(0xffff_ffff)),
        ([s32(-16), 2], B(s32(-4))),
        ([0x7fff_ffff, 32], B(0)),
        ([0x4000_0000, 30], B(1)),
    ];
    let mut shru64 = vec![([1 << 63, 63], B(1)), ([u64::MAX, 64], B(0))];
    let mut shrs64 =
        vec![([1 << 63, 1], B(0xc000_0000_0000_0000)), ([1 << 63, 64], B(u64::MAX)), ([i64::MAX as u64, 64], B(0))];
    let mut shru16 = vec![([0x8000, 15], B(1)), ([0x8000, 16], B(0))];
    let mut shrs16 = vec![([0x8000, 15], B(0xffff)), ([0x8000, 16], B(0xffff)), ([0x7fff, 16], B(0))];
    for n in big {
        shl16.push(([0xffff, n], B(0)));
        shl32.push(([0xffff_ffff, n], B(0)));
        shl64.push(([u64::MAX, n], B(0)));
        shru32.push(([0xffff_ffff, n], B(0)));
        shrs32.push(([0x8000_0000, n], B(0xffff_ffff)));
        shrs32.push(([0x7fff_ffff, n], B(0)));
        shru64.push(([u64::MAX, n], B(0)));
        shrs64.push(([1 << 63, n], B(u64::MAX)));
        shru16.push(([0xffff, n], B(0)));
        shrs16.push(([0x8000, n], B(0xffff)));
    }
    check(["b16", "b32"], "b16", "shl.b16 %d, %a, %b;", &shl16);
    check(["b32", "b32"], "b32", "shl.b32 %d, %a, %b;", &shl32);
    check(["b64", "b32"], "b64", "shl.b64 %d, %a, %b;", &shl64);
    check(["b32", "b32"], "b32", "shr.u32 %d, %a, %b;", &shru32);
    check(["b32", "b32"], "b32", "shr.b32 %d, %a, %b;", &shru32);
    check(["b32", "b32"], "b32", "shr.s32 %d, %a, %b;", &shrs32);
    check(["b64", "b32"], "b64", "shr.u64 %d, %a, %b;", &shru64);
    check(["b64", "b32"], "b64", "shr.s64 %d, %a, %b;", &shrs64);
    check(["b16", "b32"], "b16", "shr.u16 %d, %a, %b;", &shru16);
    check(["b16", "b32"], "b16", "shr.s16 %d, %a, %b;", &shrs16);
    check(["b32"], "b32", "shl.b32 %d, %a, 2;", &[([0x4000_0001], B(4))]);
    check(["b64"], "b64", "shr.u64 %d, %a, 7;", &[([1 << 63], B(1 << 56))]);
}

/// The ISA's semantics of `bfe`, transcribed.
fn bfe_ref(a: u64, b: u64, c: u64, bits: u32, signed: bool) -> u64 {
    let msb = bits - 1;
    let (pos, len) = ((b & 0xff) as u32, (c & 0xff) as u32);
    let sbit = if !signed || len == 0 { 0 } else { (a >> (pos + len - 1).min(msb)) & 1 };
    (0..=msb).fold(0, |d, i| d | (if i < len && pos + i <= msb { (a >> (pos + i)) & 1 } else { sbit }) << i)
}

/// The ISA's semantics of `bfi`, transcribed (`f = b` with `len` bits of `a` inserted at `pos`).
fn bfi_ref(a: u64, b: u64, c: u64, dd: u64, bits: u32) -> u64 {
    let msb = bits - 1;
    let (pos, len) = ((c & 0xff) as u32, (dd & 0xff) as u32);
    let mut f = b;
    let mut i = 0;
    while i < len && pos + i <= msb {
        f = (f & !(1 << (pos + i))) | (((a >> i) & 1) << (pos + i));
        i += 1;
    }
    f
}

const FIELDS: [(u64, u64); 16] = [
    (0, 0),
    (0, 1),
    (4, 8),
    (28, 4),
    (28, 8),
    (31, 1),
    (31, 5),
    (32, 4),
    (40, 0),
    (0, 32),
    (0, 255),
    (255, 255),
    (0x104, 8),
    (4, 0x108),
    (60, 8),
    (63, 1),
];

#[test]
fn bit_field_extract() {
    // Hand-worked anchors of the reference itself.
    assert_eq!(bfe_ref(0x8765_4321, 4, 8, 32, false), 0x32);
    assert_eq!(bfe_ref(0x8765_4321, 28, 4, 32, true), 0xffff_fff8);
    assert_eq!(bfe_ref(0x8765_4321, 28, 8, 32, true), 0xffff_fff8); // pos+len past msb: sign = a[31]
    assert_eq!(bfe_ref(0x8765_4321, 28, 8, 32, false), 0x8);
    assert_eq!(bfe_ref(0x8765_4321, 32, 4, 32, true), 0xffff_ffff); // start past msb: all sign
    assert_eq!(bfe_ref(0x8765_4321, 32, 4, 32, false), 0);
    assert_eq!(bfe_ref(0xffff_ffff, 3, 0, 32, true), 0); // len 0
    assert_eq!(bfe_ref(0x8765_4321, 0x104, 8, 32, false), 0x32); // pos & 0xff
    let vals32 = [0x8765_4321u64, 0xf0f0_f0f0, 0x7fff_ffff, 0xffff_ffff, 0];
    let vals64 = [0x8765_4321_0fed_cba9u64, 0x7fff_ffff_ffff_ffff, u64::MAX, 0x8000_0000_0000_0000];
    for (ty, bits, vals) in
        [("u32", 32, &vals32[..]), ("s32", 32, &vals32[..]), ("u64", 64, &vals64[..]), ("s64", 64, &vals64[..])]
    {
        let mut rows = Vec::new();
        for &a in vals {
            for &(pos, len) in &FIELDS {
                rows.push(([a, pos, len], B(bfe_ref(a, pos, len, bits, ty.starts_with('s')))));
            }
        }
        let r = if bits == 32 { "b32" } else { "b64" };
        check([r, "b32", "b32"], r, &format!("bfe.{ty} %d, %a, %b, %c;"), &rows);
    }
}

#[test]
fn bit_field_insert() {
    assert_eq!(bfi_ref(0xff, 0x1234_5678, 8, 4, 32), 0x1234_5f78);
    assert_eq!(bfi_ref(0xff, 0x1234_5678, 28, 8, 32), 0xf234_5678);
    assert_eq!(bfi_ref(0xff, 0x1234_5678, 32, 8, 32), 0x1234_5678);
    for (ty, bits) in [("b32", 32u32), ("b64", 64)] {
        let mut rows = Vec::new();
        for (a, b) in [
            (0xffu64, 0x1234_5678u64),
            (0xdead_beef_cafe_f00d & ((1u128 << bits) - 1) as u64, 0),
            (0, u64::MAX >> (64 - bits)),
        ] {
            for &(pos, len) in &FIELDS {
                rows.push(([a, b, pos, len], B(bfi_ref(a, b, pos, len, bits))));
            }
        }
        check([ty, ty, "b32", "b32"], ty, &format!("bfi.{ty} %d, %a, %b, %c, %e;"), &rows);
    }
}

#[test]
fn popc_clz_brev() {
    check(
        ["b32"],
        "b32",
        "popc.b32 %d, %a;",
        &[([0], B(0)), ([0xffff_ffff], B(32)), ([0x8000_0001], B(2)), ([0x1234_5678], B(13))],
    );
    check(["b64"], "b32", "popc.b64 %d, %a;", &[([u64::MAX], B(64)), ([1 << 63], B(1)), ([0], B(0))]);
    check(["b32"], "b32", "clz.b32 %d, %a;", &[([0], B(32)), ([1], B(31)), ([0x8000_0000], B(0)), ([0x1_0000], B(15))]);
    check(["b64"], "b32", "clz.b64 %d, %a;", &[([0], B(64)), ([1], B(63)), ([1 << 32], B(31)), ([1 << 63], B(0))]);
    check(["b32"], "b32", "brev.b32 %d, %a;", &[([1], B(0x8000_0000)), ([0x1234_5678], B(0x1e6a_2c48)), ([0], B(0))]);
    check(["b64"], "b64", "brev.b64 %d, %a;", &[([1], B(1 << 63)), ([0x1234_5678], B(0x1e6a_2c48_0000_0000))]);
}

/// The ISA's `prmt` (default mode): bytes {b, a} numbered 0..7; per destination byte a nibble of
/// `c` whose 3 low bits pick the byte and whose msb replicates that byte's sign.
fn prmt_ref(a: u64, b: u64, c: u64) -> u64 {
    let tmp = (b << 32) | (a & 0xffff_ffff);
    (0..4).fold(0, |d, i| {
        let ctl = (c >> (4 * i)) & 0xf;
        let byte = (tmp >> (8 * (ctl & 7))) & 0xff;
        let v = if ctl & 8 != 0 { if byte & 0x80 != 0 { 0xff } else { 0 } } else { byte };
        d | v << (8 * i)
    })
}

#[test]
fn prmt_selects_bytes_and_replicates_signs() {
    let mut rows = vec![
        ([0x0302_0100, 0x0706_0504, 0x7531], B(0x0705_0301)),
        ([0x4433_2211, 0x8877_6655, 0x3210], B(0x4433_2211)),
        ([0x4433_2211, 0x8877_6655, 0x7654], B(0x8877_6655)),
        ([0x4433_2211, 0x8877_6655, 0xffff_3210], B(0x4433_2211)), // c above bit 15 is ignored
        ([0x0000_0080, 0, 0x0008], B(0x8080_80ff)),                // nibble 8: sign of byte 0
        ([0x0000_007f, 0, 0x0008], B(0x7f7f_7f00)),
        ([0x4433_2211, 0x8877_6655, 0xfedc], B(0xff00_0000)), // signs of bytes 4 5 6 7 (0x55 0x66 0x77 0x88) into bytes 0 1 2 3
        ([0x4433_2211, 0x8877_6655, 0x0123], B(0x1122_3344)),
    ];
    let mut rng = Rng(0x5eed);
    for _ in 0..64 {
        let (a, b, c) = (rng.next() & 0xffff_ffff, rng.next() & 0xffff_ffff, rng.next() & 0xffff_ffff);
        rows.push(([a, b, c], B(prmt_ref(a, b, c))));
    }
    assert_eq!(prmt_ref(0x0302_0100, 0x0706_0504, 0x7531), 0x0705_0301);
    check(["b32", "b32", "b32"], "b32", "prmt.b32 %d, %a, %b, %c;", &rows);
    check(["b32", "b32"], "b32", "prmt.b32 %d, %a, %b, 0x5410;", &[([0x4433_2211, 0x8877_6655], B(0x6655_2211))]);
}

// ---------------------------------------------------------------------------------------------
// Moves, selects, comparisons
// ---------------------------------------------------------------------------------------------

#[test]
fn mov_forms_and_packing() {
    check(["b16"], "b16", "mov.b16 %d, %a;", &[([0xbeef], B(0xbeef))]);
    check(["b32"], "b32", "mov.b32 %d, %a;", &[([0xdead_beef], B(0xdead_beef))]);
    check(["b32"], "b32", "mov.u32 %d, 0f3F800000;", &[([0], B(0x3f80_0000))]);
    check(["b64"], "b64", "mov.b64 %d, 0d3FF0000000000000;", &[([0], B(0x3ff0_0000_0000_0000))]);
    check(["b64"], "b64", "mov.b64 %d, %a;", &[([u64::MAX - 5], B(u64::MAX - 5))]);
    check(["b32"], "b32", "mov.u32 %d, %tid.x;", &[([0], B(0)), ([0], B(1)), ([0], B(2))]);
    // Pack: the first element is the low half. Unpack: likewise.
    check(["b32", "b32"], "b64", "mov.b64 %d, {%a, %b};", &[([0x1111_2222, 0x3333_4444], B(0x3333_4444_1111_2222))]);
    check(["b16", "b16"], "b32", "mov.b32 %d, {%a, %b};", &[([0x1122, 0x3344], B(0x3344_1122))]);
    check(
        ["b64"],
        "b32",
        "{ .reg .b32 lo, hi; mov.b64 {lo, hi}, %a; mov.b32 %d, hi; }",
        &[([0x3333_4444_1111_2222], B(0x3333_4444))],
    );
    check(["b64"], "b32", "{ .reg .b32 tmp; mov.b64 {tmp, %d}, %a; }", &[([0x3333_4444_1111_2222], B(0x3333_4444))]);
    check(["b64"], "b32", "mov.b64 {%d, _}, %a;", &[([0x3333_4444_1111_2222], B(0x1111_2222))]);
    check(["b64"], "b32", "mov.b64 {_, %d}, %a;", &[([0x3333_4444_1111_2222], B(0x3333_4444))]);
    check(["b32"], "b16", "{ .reg .b16 tmp; mov.b32 {tmp, %d}, %a; }", &[([0x3344_1122], B(0x3344))]);
    check(["b32"], "b16", "{ .reg .b16 tmp; mov.b32 {%d, tmp}, %a; }", &[([0x3344_1122], B(0x1122))]);
}

#[test]
fn selp_all_types() {
    let rows = |x: u64, y: u64| [([x, y, 1], B(x)), ([x, y, 0], B(y))];
    check(["b16", "b16", "pred"], "b16", "selp.b16 %d, %a, %b, %c;", &rows(0x1234, 0xfedc));
    check(["b32", "b32", "pred"], "b32", "selp.b32 %d, %a, %b, %c;", &rows(0x1234_5678, 0xfedc_ba98));
    check(["b64", "b64", "pred"], "b64", "selp.b64 %d, %a, %b, %c;", &rows(1 << 63, 7));
    // Floats are selected bit for bit, NaN payloads and -0 included.
    check(["b32", "b32", "pred"], "b32", "selp.f32 %d, %a, %b, %c;", &rows(0x7fc0_0001, NZ));
    check(["b64", "b64", "pred"], "b64", "selp.f64 %d, %a, %b, %c;", &rows(0x7ff0_0000_0000_0001, DNZ));
    check(["pred"], "b64", "selp.b64 %d, 1, 0, %a;", &[([1], B(1)), ([0], B(0))]);
}

/// Integer comparisons: every ordered pair of edge values, signed and unsigned.
#[test]
fn setp_integers() {
    for (bits, r) in [(16u32, "b16"), (32, "b32"), (64, "b64")] {
        let m = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let top = 1u64 << (bits - 1);
        let vals = [0, 1, top - 1, top, m, m - 1];
        let sx = |v: u64| ((v << (64 - bits)) as i64) >> (64 - bits);
        for cmp in ["eq", "ne", "lt", "le", "gt", "ge"] {
            let tys: &[&str] = if matches!(cmp, "eq" | "ne") { &["b", "u", "s"] } else { &["u", "s"] };
            for t in tys {
                let rows: Vec<([u64; 2], Exp)> = vals
                    .iter()
                    .flat_map(|&a| vals.iter().map(move |&b| (a, b)))
                    .map(|(a, b)| {
                        let o = if *t == "s" { sx(a).cmp(&sx(b)) } else { a.cmp(&b) };
                        let r = match cmp {
                            "eq" => o.is_eq(),
                            "ne" => o.is_ne(),
                            "lt" => o.is_lt(),
                            "le" => o.is_le(),
                            "gt" => o.is_gt(),
                            _ => o.is_ge(),
                        };
                        ([a, b], B(r as u64))
                    })
                    .collect();
                check([r, r], "pred", &format!("setp.{cmp}.{t}{bits} %d, %a, %b;"), &rows);
            }
        }
    }
}

/// Float comparisons: ordered ones are false with a NaN (`ne` included), the `u` forms true;
/// -0 == +0; subnormals compare as values.
#[test]
fn setp_floats() {
    let f32s = [0.0f32, -0.0, 1.0, -1.0, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, p2f(-149), -p2f(-149), f32::MAX];
    let f64s = [0.0f64, -0.0, 1.0, -1.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, p2(-1074), f64::MIN_POSITIVE];
    let eval = |cmp: &str, a: f64, b: f64| -> bool {
        let nan = a.is_nan() || b.is_nan();
        let base = cmp.trim_end_matches('u');
        let r = match base {
            "eq" => a == b,
            "ne" => !nan && a != b,
            "lt" => a < b,
            "le" => a <= b,
            "gt" => a > b,
            "ge" => a >= b,
            "num" => !nan,
            "nan" => nan,
            _ => unreachable!(),
        };
        if cmp.len() == 3 && cmp.ends_with('u') { nan || r } else { r }
    };
    for cmp in ["eq", "ne", "lt", "le", "gt", "ge", "equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"] {
        let rows: Vec<([u64; 2], Exp)> = f32s
            .iter()
            .flat_map(|&a| f32s.iter().map(move |&b| ([f(a), f(b)], B(eval(cmp, a as f64, b as f64) as u64))))
            .collect();
        check(["b32", "b32"], "pred", &format!("setp.{cmp}.f32 %d, %a, %b;"), &rows);
        let rows: Vec<([u64; 2], Exp)> =
            f64s.iter().flat_map(|&a| f64s.iter().map(move |&b| ([d(a), d(b)], B(eval(cmp, a, b) as u64)))).collect();
        check(["b64", "b64"], "pred", &format!("setp.{cmp}.f64 %d, %a, %b;"), &rows);
    }
}

/// `setp.CmpOp.BoolOp p|q, a, b, {!}c`: p = BoolOp(t, c), q = BoolOp(!t, c). The result is p + 2q.
#[test]
fn setp_combiners_and_complement() {
    setp_combiners(&[false]);
    // Without a combiner, q is the complement; a float compare with a NaN: t = 0 for gt, 1 for gtu.
    let body = "{ .reg .pred p, q; setp.gt.f32 p|q, %a, %b; selp.u32 %d, 1, 0, p; @q add.u32 %d, %d, 2; }";
    check(["b32", "b32"], "b32", body, &[([f(2.0), f(1.0)], B(1)), ([f(1.0), f(2.0)], B(2)), ([QNAN, f(1.0)], B(2))]);
    let body = "{ .reg .pred p, q; setp.gtu.and.f32 p|q, %a, %b, %c; selp.u32 %d, 1, 0, p; @q add.u32 %d, %d, 2; }";
    check(
        ["b32", "b32", "pred"],
        "b32",
        body,
        &[([QNAN, f(1.0), 1], B(1)), ([QNAN, f(1.0), 0], B(0)), ([f(0.0), f(1.0), 1], B(2))],
    );
}

/// The negated combiner operand `!c` of `setp.CmpOp.BoolOp p|q, a, b, {!}c`.
#[test]
fn setp_negated_combiner_operand() {
    setp_combiners(&[true]);
}

/// "The sink symbol '_' may be used in place of any one of the destination operands" (setp).
#[test]
fn setp_sink_destination() {
    check(["b32", "b32"], "pred", "setp.lt.s32 _|%d, %a, %b;", &[([1, 2], B(0)), ([2, 1], B(1))]);
    check(["b32", "b32"], "pred", "setp.lt.s32 %d|_, %a, %b;", &[([1, 2], B(1)), ([2, 1], B(0))]);
}

fn setp_combiners(negs: &[bool]) {
    type Combine = fn(bool, bool) -> bool;
    let combos: [(&str, Combine); 3] = [("and", |x, y| x & y), ("or", |x, y| x | y), ("xor", |x, y| x ^ y)];
    for (op, fun) in combos {
        for &neg in negs {
            let mut rows = Vec::new();
            for (a, b) in [(1u64, 2u64), (2, 1), (s32(-1), 0)] {
                for c in [0u64, 1] {
                    let t = (a as u32 as i32) < (b as u32 as i32);
                    let cc = (c == 1) ^ neg;
                    rows.push(([a, b, c], B(fun(t, cc) as u64 + 2 * fun(!t, cc) as u64)));
                }
            }
            let c = if neg { "!%c" } else { "%c" };
            let body = format!(
                "{{ .reg .pred p, q; setp.lt.{op}.s32 p|q, %a, %b, {c}; selp.u32 %d, 1, 0, p; @q add.u32 %d, %d, 2; }}"
            );
            check(["b32", "b32", "pred"], "b32", &body, &rows);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Floating point: add sub mul fma div rcp sqrt abs neg min max (all `.rn`, no `.ftz`)
// ---------------------------------------------------------------------------------------------

/// Random f32 pairs with nearby exponents (so sums round), with the specials mixed in; `op`'s
/// IEEE 754 result (Rust's) is the expectation.
fn sweep32<const N: usize>(seed: u64, n: usize, op: fn([f32; N]) -> f32) -> Vec<([u64; N], Exp)> {
    let specials = [
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        1.0,
        p2f(-149),
        f32::from_bits(SUBMAX as u32),
        f32::MIN_POSITIVE,
        f32::MAX,
    ];
    let mut rng = Rng(seed);
    (0..n)
        .map(|k| {
            let e = 1 + (rng.next() % 253) as u32;
            let ins: [f32; N] = std::array::from_fn(|j| {
                let r = rng.next();
                if r % 16 == 0 {
                    specials[(r >> 8) as usize % specials.len()]
                } else if k % 8 == 0 {
                    rng.f32_in(0, 30)
                } else {
                    rng.f32_in(e.saturating_sub(12 * j as u32).max(1), (e + 12).min(254))
                }
            });
            (ins.map(f), exp32(op(ins)))
        })
        .collect()
}

fn sweep64<const N: usize>(seed: u64, n: usize, op: fn([f64; N]) -> f64) -> Vec<([u64; N], Exp)> {
    let specials = [0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1.0, p2(-1074), f64::MIN_POSITIVE, f64::MAX];
    let mut rng = Rng(seed);
    (0..n)
        .map(|k| {
            let e = 1 + rng.next() % 2045;
            let ins: [f64; N] = std::array::from_fn(|j| {
                let r = rng.next();
                if r % 16 == 0 {
                    specials[(r >> 8) as usize % specials.len()]
                } else if k % 8 == 0 {
                    rng.f64_in(0, 60)
                } else {
                    rng.f64_in(e.saturating_sub(30 * j as u64).max(1), (e + 30).min(2046))
                }
            });
            (ins.map(d), exp64(op(ins)))
        })
        .collect()
}

#[test]
fn f32_add_sub() {
    let one = f(1.0);
    let rows = [
        ([one, f(2.0)], B(f(3.0))),
        ([one, f(p2f(-24))], B(one)),                             // tie: to even (down)
        ([f(1.0 + p2f(-23)), f(p2f(-24))], B(f(1.0 + p2f(-22)))), // tie: to even (up)
        ([one, f(3.0 * p2f(-25))], B(f(1.0 + p2f(-23)))),         // past the tie
        ([f(-1.0), f(-p2f(-24))], B(f(-1.0))),
        ([SUB1, SUB1], B(2)), // subnormals kept
        ([SUBMAX | NZ, MINNORM], B(SUB1)),
        ([NZ, NZ], B(NZ)),
        ([NZ, 0], B(0)),
        ([one, f(-1.0)], B(0)), // exact zero is +0
        ([MAXF, MAXF], B(INF)),
        ([MAXF, f(p2f(103))], B(INF)), // tie at the top: to even = overflow
        ([MAXF, f(p2f(102))], B(MAXF)),
        ([INF, one], B(INF)),
        ([NINF, NINF], B(NINF)),
        ([INF, NINF], Nan32),
        ([QNAN, one], Nan32),
        ([one, SNAN], Nan32),
    ];
    check(["b32", "b32"], "b32", "add.rn.f32 %d, %a, %b;", &rows);
    check(["b32", "b32"], "b32", "add.f32 %d, %a, %b;", &rows);
    check(["b32", "b32"], "b32", "add.rn.f32 %d, %a, %b;", &sweep32(1, 512, |[a, b]| a + b));
    check(
        ["b32", "b32"],
        "b32",
        "sub.rn.f32 %d, %a, %b;",
        &[([one, one], B(0)), ([NZ, 0], B(NZ)), ([NZ, NZ], B(0)), ([INF, INF], Nan32), ([0, SUB1], B(SUB1 | NZ))],
    );
    check(["b32", "b32"], "b32", "sub.rn.f32 %d, %a, %b;", &sweep32(2, 256, |[a, b]| a - b));
    check(["b32"], "b32", "add.rn.f32 %d, %a, 0fBF800000;", &[([f(3.0)], B(f(2.0)))]);
}

#[test]
fn f32_mul_fma() {
    let rows = [
        ([f(0.0), INF], Nan32),
        ([NZ, f(5.0)], B(NZ)),
        ([f(-1.0), NZ], B(0)),
        ([SUB1, f(0.5)], B(0)), // 2^-150: tie to even = 0
        ([3, f(0.5)], B(2)),    // 1.5 * 2^-149: tie to even = 2
        ([MINNORM, f(0.5)], B(0x0040_0000)),
        ([MAXF, f(2.0)], B(INF)),
        ([MAXF | NZ, f(2.0)], B(NINF)),
        ([f(1.0 + p2f(-23)), f(1.0 + p2f(-23))], B(f(1.0 + p2f(-22)))),
        ([QNAN, f(0.0)], Nan32),
    ];
    check(["b32", "b32"], "b32", "mul.rn.f32 %d, %a, %b;", &rows);
    check(["b32", "b32"], "b32", "mul.rn.f32 %d, %a, %b;", &sweep32(3, 512, |[a, b]| a * b));
    check(["b32"], "b32", "mul.rn.f32 %d, %a, 0f3B000000;", &[([f(512.0)], B(f(1.0)))]);
    let e = 1.0 + p2f(-23);
    let rows = [
        ([f(e), f(e), f(-(1.0 + p2f(-22)))], B(f(p2f(-46)))), // one rounding: the product is exact
        ([f(0.0), INF, f(1.0)], Nan32),
        ([INF, f(1.0), NINF], Nan32),
        ([f(1.0), f(1.0), QNAN], Nan32),
        ([f(-1.0), f(0.0), f(0.0)], B(0)),
        ([f(-1.0), f(0.0), NZ], B(NZ)),
        ([f(p2f(-100)), f(p2f(-49)), f(0.0)], B(SUB1)),
        ([f(p2f(-100)), f(p2f(-50)), f(0.0)], B(0)),
        ([MAXF, f(2.0), MAXF | NZ], B(MAXF)), // no overflow inside
    ];
    check(["b32", "b32", "b32"], "b32", "fma.rn.f32 %d, %a, %b, %c;", &rows);
    check(["b32", "b32", "b32"], "b32", "fma.rn.f32 %d, %a, %b, %c;", &sweep32(4, 512, |[a, b, c]| a.mul_add(b, c)));
}

#[test]
fn f32_div_rcp_sqrt() {
    let rows = [
        ([f(1.0), f(3.0)], B(f(1.0 / 3.0))),
        ([f(1.0), f(0.0)], B(INF)),
        ([f(-1.0), f(0.0)], B(NINF)),
        ([f(1.0), NZ], B(NINF)),
        ([f(0.0), f(0.0)], Nan32),
        ([INF, INF], Nan32),
        ([f(1.0), INF], B(0)),
        ([f(-1.0), INF], B(NZ)),
        ([MINNORM, f(4.0)], B(0x0020_0000)),
        ([SUB1, f(2.0)], B(0)),
        ([MAXF, f(0.5)], B(INF)),
        ([SUB1, SUB1], B(f(1.0))),
    ];
    check(["b32", "b32"], "b32", "div.rn.f32 %d, %a, %b;", &rows);
    check(["b32", "b32"], "b32", "div.rn.f32 %d, %a, %b;", &sweep32(5, 512, |[a, b]| a / b));
    let rows = [
        ([f(3.0)], B(f(1.0 / 3.0))),
        ([NZ], B(NINF)),
        ([0], B(INF)),
        ([INF], B(0)),
        ([NINF], B(NZ)),
        ([f(p2f(127))], B(0x0040_0000)), // 2^-127: a subnormal, kept
        ([SUB1], B(INF)),
        ([SUBMAX], B(f(1.0 / f32::from_bits(SUBMAX as u32)))),
        ([QNAN], Nan32),
    ];
    check(["b32"], "b32", "rcp.rn.f32 %d, %a;", &rows);
    check(["b32"], "b32", "rcp.rn.f32 %d, %a;", &sweep32(6, 256, |[a]| 1.0 / a));
    let rows = [
        ([f(2.0)], B(f(2f32.sqrt()))),
        ([f(4.0)], B(f(2.0))),
        ([f(-1.0)], Nan32),
        ([NZ], B(NZ)),
        ([0], B(0)),
        ([INF], B(INF)),
        ([NINF], Nan32),
        ([2], B(f(p2f(-74)))),
        ([SUB1], B(f(p2f(-149).sqrt()))),
        ([QNAN], Nan32),
    ];
    check(["b32"], "b32", "sqrt.rn.f32 %d, %a;", &rows);
    check(["b32"], "b32", "sqrt.rn.f32 %d, %a;", &sweep32(7, 256, |[a]| a.sqrt()));
}

#[test]
fn f32_abs_neg_min_max() {
    // abs/neg touch only the sign ("NaN inputs yield an unspecified NaN").
    check(
        ["b32"],
        "b32",
        "abs.f32 %d, %a;",
        &[([NZ], B(0)), ([NINF], B(INF)), ([f(-1.5)], B(f(1.5))), ([SUB1 | NZ], B(SUB1)), ([0xffc0_0000], Nan32)],
    );
    check(
        ["b32"],
        "b32",
        "neg.f32 %d, %a;",
        &[
            ([0], B(NZ)),
            ([NZ], B(0)),
            ([f(1.0)], B(f(-1.0))),
            ([INF], B(NINF)),
            ([SUB1], B(SUB1 | NZ)),
            ([QNAN], Nan32),
        ],
    );
    check(
        ["b64"],
        "b64",
        "neg.f64 %d, %a;",
        &[([0], B(DNZ)), ([d(1.0)], B(d(-1.0))), ([1], B(DNZ | 1)), ([DINF], B(DNINF)), ([DQNAN], Nan64)],
    );
    check(["b64"], "b64", "abs.f64 %d, %a;", &[([DNZ], B(0)), ([d(-2.5)], B(d(2.5)))]);
    // min/max: a NaN operand yields the other; two NaNs a NaN; "+0.0 > -0.0".
    let two = f(2.0);
    check(
        ["b32", "b32"],
        "b32",
        "min.f32 %d, %a, %b;",
        &[
            ([f(1.0), two], B(f(1.0))),
            ([QNAN, two], B(two)),
            ([two, QNAN], B(two)),
            ([SNAN, two], B(two)),
            ([QNAN, QNAN], Nan32),
            ([NZ, 0], B(NZ)),
            ([0, NZ], B(NZ)),
            ([NINF, QNAN], B(NINF)),
            ([two, SUB1], B(SUB1)),
            ([f(-1.0), INF], B(f(-1.0))),
        ],
    );
    check(
        ["b32", "b32"],
        "b32",
        "max.f32 %d, %a, %b;",
        &[
            ([f(1.0), two], B(two)),
            ([QNAN, two], B(two)),
            ([two, QNAN], B(two)),
            ([QNAN, QNAN], Nan32),
            ([NZ, 0], B(0)),
            ([0, NZ], B(0)),
            ([SUB1, 0], B(SUB1)),
            ([NINF, f(-1.0)], B(f(-1.0))),
        ],
    );
    check(
        ["b64", "b64"],
        "b64",
        "min.f64 %d, %a, %b;",
        &[
            ([DQNAN, d(2.0)], B(d(2.0))),
            ([d(2.0), DQNAN], B(d(2.0))),
            ([DNZ, 0], B(DNZ)),
            ([0, DNZ], B(DNZ)),
            ([1, 2], B(1)),
            ([DQNAN, DQNAN], Nan64),
        ],
    );
    check(
        ["b64", "b64"],
        "b64",
        "max.f64 %d, %a, %b;",
        &[([DQNAN, d(2.0)], B(d(2.0))), ([DNZ, 0], B(0)), ([0, DNZ], B(0)), ([DNINF, 1], B(1))],
    );
}

#[test]
fn f64_add_mul_fma() {
    let one = d(1.0);
    let rows = [
        ([one, d(p2(-53))], B(one)),
        ([d(1.0 + p2(-52)), d(p2(-53))], B(d(1.0 + p2(-51)))),
        ([1, 1], B(2)),
        ([DINF, DNINF], Nan64),
        ([DNZ, DNZ], B(DNZ)),
        ([DNZ, 0], B(0)),
        ([d(f64::MAX), d(f64::MAX)], B(DINF)),
    ];
    check(["b64", "b64"], "b64", "add.rn.f64 %d, %a, %b;", &rows);
    check(["b64", "b64"], "b64", "add.rn.f64 %d, %a, %b;", &sweep64(8, 512, |[a, b]| a + b));
    check(
        ["b64", "b64"],
        "b64",
        "mul.rn.f64 %d, %a, %b;",
        &[([1, d(0.5)], B(0)), ([3, d(0.5)], B(2)), ([0, DINF], Nan64), ([DNZ, d(3.0)], B(DNZ))],
    );
    check(["b64", "b64"], "b64", "mul.rn.f64 %d, %a, %b;", &sweep64(9, 512, |[a, b]| a * b));
    let e = 1.0 + p2(-52);
    check(
        ["b64", "b64", "b64"],
        "b64",
        "fma.rn.f64 %d, %a, %b, %c;",
        &[([d(e), d(e), d(-(1.0 + p2(-51)))], B(d(p2(-104)))), ([0, DINF, one], Nan64), ([d(-1.0), 0, DNZ], B(DNZ))],
    );
    check(["b64", "b64", "b64"], "b64", "fma.rn.f64 %d, %a, %b, %c;", &sweep64(10, 512, |[a, b, c]| a.mul_add(b, c)));
}

/// NVIDIA GPUs return one NaN, 0x7fffffff, from every f32 operation whose result is NaN (the
/// ISA itself only promises "a NaN" for these). Inputs with other payloads and signs.
#[test]
fn f32_nan_results_are_the_canonical_nan() {
    let canon = B(0x7fff_ffff);
    check(
        ["b32", "b32"],
        "b32",
        "add.rn.f32 %d, %a, %b;",
        &[([0x7fc0_1234, f(1.0)], canon), ([INF, NINF], canon), ([f(1.0), 0xffc0_0000], canon)],
    );
    check(["b32", "b32"], "b32", "mul.rn.f32 %d, %a, %b;", &[([0, INF], canon), ([SNAN, f(2.0)], canon)]);
    check(
        ["b32", "b32", "b32"],
        "b32",
        "fma.rn.f32 %d, %a, %b, %c;",
        &[([0, INF, f(1.0)], canon), ([f(1.0), f(1.0), 0xffc0_0001], canon)],
    );
    check(["b32", "b32"], "b32", "div.rn.f32 %d, %a, %b;", &[([0, 0], canon), ([0x7fc0_0042, f(3.0)], canon)]);
    check(["b32"], "b32", "sqrt.rn.f32 %d, %a;", &[([f(-1.0)], canon)]);
    check(["b32"], "b32", "rcp.rn.f32 %d, %a;", &[([0xffc0_0001], canon)]);
}

// ---------------------------------------------------------------------------------------------
// Half-precision min / max
// ---------------------------------------------------------------------------------------------

/// The exact value of an f16 (`bf` false) or bf16 bit pattern, NaN for a NaN.
fn half_value(x: u16, bf: bool) -> f64 {
    let (mant_bits, bias): (i32, i32) = if bf { (7, 127) } else { (10, 15) };
    let e = ((x & 0x7fff) >> mant_bits) as i32;
    let m = (x & ((1 << mant_bits) - 1)) as f64;
    let emax = (1 << (15 - mant_bits)) - 1;
    let mag = if e == emax {
        if m == 0.0 { f64::INFINITY } else { f64::NAN }
    } else if e == 0 {
        m * p2(1 - bias - mant_bits)
    } else {
        (m + p2(mant_bits)) * p2(e - bias - mant_bits)
    };
    if x >> 15 != 0 { -mag } else { mag }
}

/// PTX ISA §9.7.4.7/8 (half-precision `min`/`max`), transcribed: two NaNs, or one with `.NaN`,
/// give the canonical NaN 0x7fff; one NaN without `.NaN` the other operand; otherwise
/// `(a > b) ? a : b` (`<` for min), with +0.0 > -0.0; subnormals are values (no `.ftz`).
fn minmax16_ref(a: u16, b: u16, bf: bool, max: bool, nan: bool) -> u16 {
    let (fa, fb) = (half_value(a, bf), half_value(b, bf));
    if fa.is_nan() && fb.is_nan() || nan && (fa.is_nan() || fb.is_nan()) {
        return 0x7fff;
    }
    if fa.is_nan() {
        return b;
    }
    if fb.is_nan() {
        return a;
    }
    if fa == 0.0 && fb == 0.0 {
        // the positive zero is the larger
        let a_wins = (a >> 15 == 0) == max;
        return if a_wins { a } else { b };
    }
    if (fa > fb) == max && fa != fb { a } else { b }
}

/// Edge values of a 16-bit float format: ±0, ±1, ±2, the smallest and largest subnormals and
/// the smallest normal (both signs), the largest finite, ±Inf, and NaNs: quiet, signalling,
/// negative, all payload bits set, of both signs.
fn half_edges(bf: bool) -> Vec<u16> {
    if bf {
        vec![
            0x0000, 0x8000, 0x3f80, 0xbf80, 0x4000, 0xc000, 0x0001, 0x8001, 0x007f, 0x807f, 0x0080, 0x8080, 0x7f7f,
            0xff7f, 0x7f80, 0xff80, 0x7fc0, 0x7f81, 0xffc0, 0xff81, 0x7fff, 0xffff,
        ]
    } else {
        vec![
            0x0000, 0x8000, 0x3c00, 0xbc00, 0x4000, 0xc000, 0x0001, 0x8001, 0x03ff, 0x83ff, 0x0400, 0x8400, 0x7bff,
            0xfbff, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0xfe00, 0xfc01, 0x7fff, 0xffff,
        ]
    }
}

/// `min`/`max{.NaN}` on `.f16x2` / `.bf16x2` (and the scalar `.f16` / `.bf16`): every pair of
/// edge values in the low halves, the pairs in another order in the high halves (the halves are
/// independent), and random bit patterns, against the ISA's pseudo-code.
#[test]
fn half_min_max() {
    for bf in [false, true] {
        let edges = half_edges(bf);
        let mut pairs = Vec::new();
        for &a in &edges {
            for &b in &edges {
                pairs.push((a, b));
            }
        }
        let mut rng = Rng(if bf { 0x5eed_bf16 } else { 0x5eed_f016 });
        for _ in 0..512 {
            let r = rng.next();
            pairs.push((r as u16, (r >> 16) as u16));
        }
        let name = if bf { "bf16" } else { "f16" };
        for (op, max) in [("min", false), ("max", true)] {
            for nan in [false, true] {
                let form = format!("{op}{}.{name}", if nan { ".NaN" } else { "" });
                let n = pairs.len();
                let rows: Vec<([u64; 2], Exp)> = (0..n)
                    .map(|i| {
                        let (a0, b0) = pairs[i];
                        let (a1, b1) = pairs[(i * 7 + 3) % n];
                        let lo = minmax16_ref(a0, b0, bf, max, nan) as u64;
                        let hi = minmax16_ref(a1, b1, bf, max, nan) as u64;
                        ([a0 as u64 | (a1 as u64) << 16, b0 as u64 | (b1 as u64) << 16], B(lo | hi << 16))
                    })
                    .collect();
                check(["b32", "b32"], "b32", &format!("{form}x2 %d, %a, %b;"), &rows);
                let rows: Vec<([u64; 2], Exp)> = pairs
                    .iter()
                    .map(|&(a, b)| ([a as u64, b as u64], B(minmax16_ref(a, b, bf, max, nan) as u64)))
                    .collect();
                check(["b16", "b16"], "b16", &format!("{form} %d, %a, %b;"), &rows);
            }
        }
    }
    // Hand-worked rows, so the reference above is not the only witness.
    let bmax = "max.bf16x2 %d, %a, %b;";
    check(
        ["b32", "b32"],
        "b32",
        bmax,
        &[
            // +0 > -0 in either order; a NaN gives the other operand
            ([0x8000_0000, 0x0000_8000], B(0x0000_0000)),
            ([0x7fc0_3f80, 0x4000_7fc0], B(0x4000_3f80)),
            ([0xffc0_7fc0, 0xff80_ffc0], B(0xff80_7fff)),
            // subnormals compare as values
            ([0x0001_8001, 0x0000_0000], B(0x0001_0000)),
        ],
    );
    check(
        ["b32", "b32"],
        "b32",
        "max.NaN.bf16x2 %d, %a, %b;",
        &[([0x7f81_3f80, 0x7f80_ffc0], B(0x7fff_7fff)), ([0x7f80_0001, 0x7f7f_0000], B(0x7f80_0001))],
    );
    check(
        ["b32", "b32"],
        "b32",
        "min.f16x2 %d, %a, %b;",
        &[([0x8000_0000, 0x0000_8000], B(0x8000_8000)), ([0x7e00_fc00, 0x3c00_7e00], B(0x3c00_fc00))],
    );
    check(["b32", "b32"], "b32", "min.NaN.f16x2 %d, %a, %b;", &[([0xfe00_0001, 0x3c00_8001], B(0x7fff_8001))]);
    check(["b32", "b32"], "b32", "max.NaN.f16x2 %d, %a, %b;", &[([0x7c00_03ff, 0x7bff_0400], B(0x7c00_0400))]);
    // Forms the simulator does not model are refused at load, not run with other semantics.
    for body in ["max.ftz.f16x2 %d, %a, %b;", "max.xorsign.abs.bf16x2 %d, %a, %b;", "max.NaN.ftz.f16x2 %d, %a, %b;"] {
        assert!(try_rows("", "", &["b32", "b32"], "b32", body, &[[0; SLOTS]]).is_err(), "`{body}` loaded");
    }
}

// ---------------------------------------------------------------------------------------------
// Conversions
// ---------------------------------------------------------------------------------------------

/// Integer to integer: narrowing chops, widening sign- or zero-extends by the source type;
/// `.sat` clamps to the destination's range.
#[test]
fn cvt_integer_to_integer() {
    check(
        ["b16"],
        "b16",
        "cvt.s16.s8 %d, %a;",
        &[([0x0080], B(0xff80)), ([0x127f], B(0x007f)), ([0xabff], B(0xffff)), ([0], B(0))],
    );
    check(["b32"], "b16", "cvt.u16.u32 %d, %a;", &[([0x1234_5678], B(0x5678)), ([0xffff_0000], B(0))]);
    check(["b64"], "b16", "cvt.u16.u64 %d, %a;", &[([0x1_0000_ffff], B(0xffff))]);
    check(["b16"], "b32", "cvt.u32.u16 %d, %a;", &[([0xffff], B(0xffff)), ([0x8000], B(0x8000))]);
    check(["b64"], "b32", "cvt.u32.u64 %d, %a;", &[([0xffff_ffff_0000_0005], B(5))]);
    check(["b16"], "b64", "cvt.u64.u16 %d, %a;", &[([0x8000], B(0x8000))]);
    check(["b32"], "b64", "cvt.u64.u32 %d, %a;", &[([0x8000_0000], B(0x8000_0000))]);
    check(["b32"], "b64", "cvt.s64.s32 %d, %a;", &[([0x8000_0000], B(0xffff_ffff_8000_0000)), ([5], B(5))]);
    check(["b16"], "b32", "cvt.s32.s16 %d, %a;", &[([0x8000], B(0xffff_8000)), ([0x7fff], B(0x7fff))]);
    check(["b32"], "b32", "cvt.s32.s8 %d, %a;", &[([0x0000_0180], B(0xffff_ff80))]);
    check(
        ["b32"],
        "b16",
        "cvt.sat.s16.s32 %d, %a;",
        &[([40000], B(0x7fff)), ([s32(-40000)], B(0x8000)), ([s32(-5)], B(0xfffb)), ([5], B(5))],
    );
    check(["b32"], "b16", "cvt.sat.u16.s32 %d, %a;", &[([s32(-5)], B(0)), ([70000], B(0xffff)), ([65535], B(0xffff))]);
    check(["b32"], "b32", "cvt.sat.u32.s32 %d, %a;", &[([s32(-1)], B(0)), ([0x7fff_ffff], B(0x7fff_ffff))]);
    check(["b32"], "b32", "cvt.sat.s32.u32 %d, %a;", &[([0x8000_0000], B(0x7fff_ffff)), ([5], B(5))]);
    check(["b32"], "b16", "cvt.sat.u8.u32 %d, %a;", &[([300], B(255)), ([7], B(7))]);
    check(["b32"], "b16", "cvt.sat.s8.s32 %d, %a;", &[([200], B(0x7f)), ([5], B(5))]);
}

/// "The result of conversion is sign-extended to the destination register width for signed
/// integers" (cvt): an integer-to-integer result narrower than its register. (Float-to-integer
/// results, `cvt.rzi.s8.f32` into 16 bits, and `ld.s8` already are.)
#[test]
fn cvt_signed_result_sign_extends_to_a_wider_register() {
    check(["b32"], "b16", "cvt.s8.s32 %d, %a;", &[([0x180], B(0xff80))]);
    check(["b32"], "b32", "cvt.s16.s32 %d, %a;", &[([0x1_8000], B(0xffff_8000))]);
    check(["b32"], "b16", "cvt.sat.s8.s32 %d, %a;", &[([s32(-200)], B(0xff80)), ([s32(-1)], B(0xffff))]);
}

/// Integer to float rounds to nearest even.
#[test]
fn cvt_integer_to_float() {
    check(
        ["b32"],
        "b32",
        "cvt.rn.f32.u32 %d, %a;",
        &[
            ([0xffff_ffff], B(f(p2f(32)))),
            ([16_777_217], B(f(16_777_216.0))),
            ([16_777_219], B(f(16_777_220.0))),
            ([0x8000_0001], B(f(p2f(31)))),
            ([1], B(f(1.0))),
            ([0], B(0)),
        ],
    );
    check(
        ["b32"],
        "b32",
        "cvt.rn.f32.s32 %d, %a;",
        &[([s32(-1)], B(f(-1.0))), ([0x8000_0000], B(f(-p2f(31)))), ([0x7fff_ffff], B(f(p2f(31))))],
    );
    check(
        ["b16"],
        "b32",
        "cvt.rn.f32.u16 %d, %a;",
        &[([0xffff], B(f(65535.0))), ([0x8000], B(f(32768.0))), ([0], B(0))],
    );
    check(
        ["b64"],
        "b64",
        "cvt.rn.f64.s64 %d, %a;",
        &[
            ([0], B(0)),
            ([s64(-1)], B(d(-1.0))),
            ([(1 << 53) + 1], B(d(p2(53)))),
            ([(1 << 53) + 3], B(d(p2(53) + 4.0))),
            ([1 << 63], B(d(-p2(63)))),
            ([i64::MAX as u64], B(d(p2(63)))),
        ],
    );
    let mut rng = Rng(11);
    let rows: Vec<([u64; 1], Exp)> =
        (0..256).map(|k| rng.next() >> (k % 64)).map(|v| ([v & 0xffff_ffff], B(f(v as u32 as f32)))).collect();
    check(["b32"], "b32", "cvt.rn.f32.u32 %d, %a;", &rows);
    let rows: Vec<([u64; 1], Exp)> =
        (0..256).map(|k| rng.next() >> (k % 64)).map(|v| ([v], B(d(v as i64 as f64)))).collect();
    check(["b64"], "b64", "cvt.rn.f64.s64 %d, %a;", &rows);
}

/// Float to integer: the integer rounding modifier, then clamped to the destination's range.
/// NaN: "Zero if source is not .f64 and destination is not .s64, .u64. Otherwise
/// 1 << (BitWidth(dst) - 1)".
#[test]
fn cvt_float_to_integer() {
    let rows = [
        ([d(2.9)], B(2)),
        ([d(-2.9)], B(s64(-2))),
        ([d(-0.5)], B(0)),
        ([d(1e19)], B(i64::MAX as u64)),
        ([d(-1e19)], B(1 << 63)),
        ([DINF], B(i64::MAX as u64)),
        ([DNINF], B(1 << 63)),
        ([d(p2(63))], B(i64::MAX as u64)),
        ([d(-p2(63))], B(1 << 63)),
        ([d(4.5e15 + 0.5)], B(4_500_000_000_000_000)),
        ([DQNAN], B(1 << 63)),
        ([0xfff0_0000_0000_0001], B(1 << 63)),
    ];
    check(["b64"], "b64", "cvt.rzi.s64.f64 %d, %a;", &rows);
    let mut rng = Rng(12);
    let rows: Vec<([u64; 1], Exp)> =
        (0..256).map(|_| rng.f64_in(1000, 1100)).map(|x| ([d(x)], B(x as i64 as u64))).collect();
    check(["b64"], "b64", "cvt.rzi.s64.f64 %d, %a;", &rows);
    check(
        ["b32"],
        "b32",
        "cvt.rzi.s32.f32 %d, %a;",
        &[
            ([QNAN], B(0)),
            ([f(3e9)], B(0x7fff_ffff)),
            ([f(-3e9)], B(0x8000_0000)),
            ([f(-1.9)], B(s32(-1))),
            ([INF], B(0x7fff_ffff)),
            ([SUB1], B(0)),
        ],
    );
    check(
        ["b64"],
        "b32",
        "cvt.rzi.s32.f64 %d, %a;",
        &[([DQNAN], B(0x8000_0000)), ([d(1e10)], B(0x7fff_ffff)), ([d(-7.99)], B(s32(-7)))],
    );
    check(
        ["b32"],
        "b32",
        "cvt.rzi.u32.f32 %d, %a;",
        &[
            ([QNAN], B(0)),
            ([f(-1.0)], B(0)),
            ([f(5e9)], B(0xffff_ffff)),
            ([f(4_294_967_040.0)], B(4_294_967_040)),
            ([f(-0.9)], B(0)),
        ],
    );
    check(
        ["b64"],
        "b64",
        "cvt.rzi.u64.f64 %d, %a;",
        &[([DQNAN], B(1 << 63)), ([d(-5.0)], B(0)), ([d(2e19)], B(u64::MAX))],
    );
    check(["b32"], "b64", "cvt.rzi.s64.f32 %d, %a;", &[([QNAN], B(1 << 63)), ([f(-2.5)], B(s64(-2)))]);
    check(
        ["b32"],
        "b16",
        "cvt.rzi.s8.f32 %d, %a;",
        &[([f(-3.0)], B(0xfffd)), ([f(300.0)], B(0x7f)), ([f(-300.0)], B(0xff80))],
    );
    let halves = [0.5f32, 1.5, 2.5, -2.5, -3.5, 2.499_999_8, -0.0, -0.1, 2.1, -2.9, 1e-4];
    let rint =
        |o: fn(f32) -> f32| -> Vec<([u64; 1], Exp)> { halves.iter().map(|&x| ([f(x)], B(s32(o(x) as i32)))).collect() };
    check(["b32"], "b32", "cvt.rni.s32.f32 %d, %a;", &rint(f32::round_ties_even));
    check(["b32"], "b32", "cvt.rmi.s32.f32 %d, %a;", &rint(f32::floor));
    check(["b32"], "b32", "cvt.rpi.s32.f32 %d, %a;", &rint(f32::ceil));
    check(["b32"], "b32", "cvt.rzi.s32.f32 %d, %a;", &rint(f32::trunc));
    // Same-size float to float with integer rounding: an integral value, ±0 and specials kept.
    let rintf = |o: fn(f32) -> f32| -> Vec<([u64; 1], Exp)> {
        halves
            .iter()
            .chain(&[f32::INFINITY, -f32::INFINITY, p2f(-149), -p2f(-149)])
            .map(|&x| ([f(x)], B(f(o(x)))))
            .chain([([QNAN], Nan32)])
            .collect()
    };
    check(["b32"], "b32", "cvt.rni.f32.f32 %d, %a;", &rintf(f32::round_ties_even));
    check(["b32"], "b32", "cvt.rmi.f32.f32 %d, %a;", &rintf(f32::floor));
    check(["b32"], "b32", "cvt.rpi.f32.f32 %d, %a;", &rintf(f32::ceil));
    check(["b32"], "b32", "cvt.rzi.f32.f32 %d, %a;", &rintf(f32::trunc));
    // Float destination with .sat: [0.0, 1.0], NaN to +0.0.
    check(
        ["b32"],
        "b32",
        "cvt.sat.f32.f32 %d, %a;",
        &[
            ([f(1.5)], B(f(1.0))),
            ([f(-0.5)], B(0)),
            ([f(0.25)], B(f(0.25))),
            ([QNAN], B(0)),
            ([INF], B(f(1.0))),
            ([NINF], B(0)),
        ],
    );
}

#[test]
fn cvt_f64_to_f32() {
    let rows = [
        ([d(1.0)], B(f(1.0))),
        ([d(1.0 + p2(-24))], B(f(1.0))),
        ([d(1.0 + 3.0 * p2(-24))], B(f(1.0 + p2f(-22)))),
        ([d(1.0 + p2(-24) + p2(-50))], B(f(1.0 + p2f(-23)))),
        ([d(f32::MAX as f64)], B(MAXF)),
        ([d(f32::MAX as f64 + p2(103))], B(INF)),
        ([d(1e300)], B(INF)),
        ([d(-1e300)], B(NINF)),
        ([d(p2(-149))], B(SUB1)),
        ([d(p2(-150))], B(0)),
        ([d(p2(-150) + p2(-200))], B(SUB1)),
        ([d(3.0 * p2(-150))], B(2)),
        ([d(-p2(-151))], B(NZ)),
        ([d(1e-300)], B(0)),
        ([DINF], B(INF)),
        ([DNZ], B(NZ)),
        ([DQNAN], Nan32),
        ([0x7ff0_0000_0000_0001], Nan32),
    ];
    check(["b64"], "b32", "cvt.rn.f32.f64 %d, %a;", &rows);
    let mut rng = Rng(13);
    let rows: Vec<([u64; 1], Exp)> =
        (0..512).map(|_| rng.f64_in(1023 - 160, 1023 + 130)).map(|x| ([d(x)], exp32(x as f32))).collect();
    check(["b64"], "b32", "cvt.rn.f32.f64 %d, %a;", &rows);
}

fn is_f16_nan(v: u64) -> bool {
    v >> 16 == 0 && v & 0x7c00 == 0x7c00 && v & 0x3ff != 0
}
fn is_bf16_nan(v: u64) -> bool {
    v >> 16 == 0 && v & 0x7f80 == 0x7f80 && v & 0x7f != 0
}

/// f16 values worked from its definition: 1 sign, 5 exponent bits (bias 15), 10 mantissa bits,
/// subnormals m * 2^-24, max 65504, rounding to nearest even (ties at 65520 overflow to Inf).
#[test]
fn cvt_f16() {
    let rows = [
        ([f(1.0)], B(0x3c00)),
        ([f(-2.0)], B(0xc000)),
        ([f(0.5)], B(0x3800)),
        ([f(65504.0)], B(0x7bff)),
        ([f(65519.0)], B(0x7bff)),
        ([f(65520.0)], B(0x7c00)),
        ([f(1e10)], B(0x7c00)),
        ([f(-65520.0)], B(0xfc00)),
        ([f(1.0 + p2f(-11))], B(0x3c00)),
        ([f(1.0 + 3.0 * p2f(-11))], B(0x3c02)),
        ([f(1.0 + p2f(-11) + p2f(-20))], B(0x3c01)),
        ([f(p2f(-24))], B(0x0001)),
        ([f(p2f(-25))], B(0x0000)),
        ([f(p2f(-25) + p2f(-40))], B(0x0001)),
        ([f(3.0 * p2f(-25))], B(0x0002)),
        ([f(p2f(-14))], B(0x0400)),
        ([f(p2f(-14) - p2f(-25))], B(0x0400)),
        ([NZ], B(0x8000)),
        ([f(-p2f(-26))], B(0x8000)),
        ([SUB1], B(0)),
        ([INF], B(0x7c00)),
        ([NINF], B(0xfc00)),
        ([QNAN], P("an f16 NaN", is_f16_nan)),
        ([SNAN], P("an f16 NaN", is_f16_nan)),
    ];
    check(["b32"], "b16", "cvt.rn.f16.f32 %d, %a;", &rows);
    // Back to f32: exact.
    let rows = [
        ([0x3c00], B(f(1.0))),
        ([0xc000], B(f(-2.0))),
        ([0x0001], B(f(p2f(-24)))),
        ([0x03ff], B(f(1023.0 * p2f(-24)))),
        ([0x0400], B(f(p2f(-14)))),
        ([0x7bff], B(f(65504.0))),
        ([0x3555], B(f(1365.0 * p2f(-12)))),
        ([0x7c00], B(INF)),
        ([0xfc00], B(NINF)),
        ([0x8000], B(NZ)),
        ([0x7e00], Nan32),
        ([0x7c01], Nan32),
    ];
    check(["b16"], "b32", "cvt.f32.f16 %d, %a;", &rows);
    // a goes to the upper half.
    check(
        ["b32", "b32"],
        "b32",
        "cvt.rn.f16x2.f32 %d, %a, %b;",
        &[([f(1.0), f(2.0)], B(0x3c00_4000)), ([NZ, INF], B(0x8000_7c00)), ([f(65520.0), f(p2f(-25))], B(0x7c00_0000))],
    );
}

/// bf16: the upper half of an f32, rounded to nearest even; a NaN stays a NaN.
#[test]
fn cvt_bf16() {
    let rows = [
        ([0x3f80_0000], B(0x3f80)),
        ([0x3f80_8000], B(0x3f80)),
        ([0x3f81_8000], B(0x3f82)),
        ([0x3f80_8001], B(0x3f81)),
        ([0x3f80_ffff], B(0x3f81)),
        ([MAXF], B(0x7f80)),
        ([0x7f7f_7fff], B(0x7f7f)),
        ([0x7f7f_8000], B(0x7f80)),
        ([SUB1], B(0)),
        ([0x0001_0000], B(0x0001)),
        ([0x0001_8000], B(0x0002)),
        ([0x0000_8000], B(0)),
        ([0x0000_8001], B(0x0001)),
        ([SUBMAX | NZ], B(0x8080)),
        ([NZ], B(0x8000)),
        ([INF], B(0x7f80)),
        ([NINF], B(0xff80)),
        ([QNAN], P("a bf16 NaN", is_bf16_nan)),
        ([SNAN], P("a bf16 NaN", is_bf16_nan)),
        ([0xff80_0001], P("a bf16 NaN", is_bf16_nan)),
    ];
    check(["b32"], "b16", "cvt.rn.bf16.f32 %d, %a;", &rows);
    check(
        ["b32", "b32"],
        "b32",
        "cvt.rn.bf16x2.f32 %d, %a, %b;",
        &[
            ([f(1.0), f(-2.0)], B(0x3f80_c000)),
            ([0x3f80_8000, 0x3f81_8000], B(0x3f80_3f82)),
            (
                [QNAN, f(1.0)],
                P("NaN in the upper half, 0x3f80 in the lower", |v| is_bf16_nan(v >> 16) && v & 0xffff == 0x3f80),
            ),
            (
                [f(1.0), SNAN],
                P("0x3f80 in the upper half, NaN in the lower", |v| v >> 16 == 0x3f80 && is_bf16_nan(v & 0xffff)),
            ),
        ],
    );
}

/// FP8 pairs: a goes to the upper byte. `.satfinite`: |x| > MAX_NORM (Inf included) gives the
/// signed MAX_NORM; a NaN gives a NaN. e4m3: bias 7, 3 mantissa bits, subnormals m * 2^-9, max
/// 448 (0x7e), NaN 0x7f/0xff. e5m2: bias 15, 2 mantissa bits, subnormals m * 2^-16, max 57344
/// (0x7b), NaN exponent 31 with a nonzero mantissa.
#[test]
fn cvt_fp8_pairs() {
    let e4m3: [(f32, u64); 26] = [
        (1.0, 0x38),
        (-1.0, 0xb8),
        (448.0, 0x7e),
        (-448.0, 0xfe),
        (449.0, 0x7e),
        (464.0, 0x7e),
        (480.0, 0x7e),
        (1e9, 0x7e),
        (f32::INFINITY, 0x7e),
        (f32::NEG_INFINITY, 0xfe),
        (0.0, 0x00),
        (-0.0, 0x80),
        (p2f(-9), 0x01),
        (p2f(-10), 0x00),
        (p2f(-10) + p2f(-20), 0x01),
        (3.0 * p2f(-10), 0x02),
        (p2f(-6), 0x08),
        (7.0 * p2f(-9), 0x07),
        (15.0 * p2f(-10), 0x08),
        (1.0625, 0x38),
        (1.1875, 0x3a),
        (1.0625 + p2f(-10), 0x39),
        (240.0, 0x77),
        (256.0, 0x78),
        (432.0, 0x7e),
        (-p2f(-11), 0x80),
    ];
    let e5m2: [(f32, u64); 19] = [
        (1.0, 0x3c),
        (-2.0, 0xc0),
        (57344.0, 0x7b),
        (61440.0, 0x7b),
        (1e9, 0x7b),
        (f32::INFINITY, 0x7b),
        (f32::NEG_INFINITY, 0xfb),
        (0.0, 0x00),
        (-0.0, 0x80),
        (p2f(-16), 0x01),
        (p2f(-17), 0x00),
        (3.0 * p2f(-17), 0x02),
        (p2f(-14), 0x04),
        (1.125, 0x3c),
        (1.375, 0x3e),
        (1.125 + p2f(-10), 0x3d),
        (0.75, 0x3a),
        (49152.0, 0x7a),
        (-p2f(-18), 0x80),
    ];
    for (ty, vals) in [("e4m3x2", &e4m3[..]), ("e5m2x2", &e5m2[..])] {
        let n = vals.len();
        let rows: Vec<([u64; 2], Exp)> =
            (0..n).map(|k| ([f(vals[k].0), f(vals[(k + 1) % n].0)], B(vals[k].1 << 8 | vals[(k + 1) % n].1))).collect();
        check(["b32", "b32"], "b16", &format!("cvt.rn.satfinite.{ty}.f32 %d, %a, %b;"), &rows);
    }
    check(
        ["b32", "b32"],
        "b16",
        "cvt.rn.satfinite.e4m3x2.f32 %d, %a, %b;",
        &[
            ([QNAN, f(1.0)], P("an e4m3 NaN above 0x38", |v| v >> 8 & 0x7f == 0x7f && v & 0xff == 0x38)),
            ([f(1.0), 0xffc0_0000], P("0x38 above an e4m3 NaN", |v| v >> 8 == 0x38 && v & 0x7f == 0x7f)),
        ],
    );
    check(
        ["b32", "b32"],
        "b16",
        "cvt.rn.satfinite.e5m2x2.f32 %d, %a, %b;",
        &[
            (
                [QNAN, f(1.0)],
                P("an e5m2 NaN above 0x3c", |v| v >> 8 & 0x7c == 0x7c && v >> 8 & 3 != 0 && v & 0xff == 0x3c),
            ),
            ([f(1.0), SNAN], P("0x3c above an e5m2 NaN", |v| v >> 8 == 0x3c && v & 0x7c == 0x7c && v & 3 != 0)),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// Warp shuffles
// ---------------------------------------------------------------------------------------------

/// The ISA's `shfl.sync` semantics, transcribed: lane `lane` gets `(value, p)`.
fn shfl_ref(mode: &str, a: &[u64], b: &[u64], c: u32) -> Vec<(u64, bool)> {
    (0..32)
        .map(|lane: usize| {
            let (bval, cval, mask) = (b[lane] as u32 & 31, c & 31, (c >> 8) & 31);
            let max_lane = ((lane as u32 & mask) | (cval & !mask)) as i32;
            let min_lane = lane as u32 & mask;
            let (j, p) = match mode {
                "up" => (lane as i32 - bval as i32, lane as i32 - bval as i32 >= max_lane),
                "down" => (lane as i32 + bval as i32, lane as i32 + bval as i32 <= max_lane),
                "bfly" => ((lane as u32 ^ bval) as i32, ((lane as u32 ^ bval) as i32) <= max_lane),
                _ => ((min_lane | (bval & !mask)) as i32, ((min_lane | (bval & !mask)) as i32) <= max_lane),
            };
            (a[if p { j as usize } else { lane }], p)
        })
        .collect()
}

/// Every mode, with clamps and segment masks in `c` and per-lane `b` (out-of-range ones too);
/// the result is the value with the `p` output in bit 32.
#[test]
fn shfl_sync_modes_clamps_and_segments() {
    let a: Vec<u64> = (0..32).map(|l| 1000 + 3 * l).collect();
    let varied: Vec<u64> = (0..32).map(|l| (l * 7 + 3) % 45).collect();
    let same = |v: u64| vec![v; 32];
    let cases: Vec<(&str, Vec<u64>, u32)> = vec![
        ("bfly", same(1), 0x1f),
        ("bfly", same(16), 0x1f),
        ("bfly", same(0x25), 0x1f), // only b[4:0] counts
        ("bfly", varied.clone(), 0x1f),
        ("bfly", same(4), 0x181f), // segments of 8
        ("bfly", same(8), 0x181f), // partner outside the segment: own value, p false
        ("bfly", same(8), 0x0f),   // clamp 15
        ("up", same(1), 0),
        ("up", same(3), 0),
        ("up", same(2), 0x1800),
        ("up", varied.clone(), 0),
        ("down", same(1), 0x1f),
        ("down", same(3), 0x181f),
        ("down", same(2), 0x0f),
        ("down", varied.clone(), 0x1f),
        ("idx", varied.clone(), 0x1f),
        ("idx", same(9), 0x181f),
        ("idx", same(20), 0x0f),
        ("idx", same(0), 0x1f),
    ];
    for (mode, b, c) in cases {
        let rows: Vec<([u64; 2], Exp)> = shfl_ref(mode, &a, &b, c)
            .into_iter()
            .enumerate()
            .map(|(l, (v, p))| ([a[l], b[l]], B(v | (p as u64) << 32)))
            .collect();
        let body = format!(
            "{{ .reg .b32 v, pw; .reg .pred p; shfl.sync.{mode}.b32 v|p, %a, %b, {c:#x}, -1; selp.u32 pw, 1, 0, p; mov.b64 %d, {{v, pw}}; }}"
        );
        check(["b32", "b32"], "b64", &body, &rows);
    }
    // lowp's form: no p, the lane offset and member mask in registers.
    let rows: Vec<([u64; 2], Exp)> = (0..32).map(|l| ([a[l], 2], B(a[l ^ 2]))).collect();
    check(
        ["b32", "b32"],
        "b32",
        "{ .reg .b32 m; mov.b32 m, -1; bar.warp.sync m; shfl.sync.bfly.b32 %d, %a, %b, 0x1f, m; }",
        &rows,
    );
}

/// Two half-warps in divergent branches, each with its own member mask.
#[test]
fn bar_warp_sync_and_shfl_with_partial_masks() {
    let body = r#"
    {
        .reg .pred low;
        setp.lt.u32 low, %i, 16;
        @!low bra $L_hi;
        bar.warp.sync 0xffff;
        shfl.sync.bfly.b32 %d, %a, 1, 0x1f, 0xffff;
        bra.uni $L_join;
    $L_hi:
        bar.warp.sync 0xffff0000;
        shfl.sync.bfly.b32 %d, %a, 1, 0x1f, 0xffff0000;
    $L_join:
        bar.warp.sync -1;
    }"#;
    let rows: Vec<([u64; 1], Exp)> = (0..32u64).map(|l| ([l * l], B((l ^ 1) * (l ^ 1)))).collect();
    check(["b32"], "b32", body, &rows);
}

// ---------------------------------------------------------------------------------------------
// Memory: every load/store form, local and shared memory through generic addresses
// ---------------------------------------------------------------------------------------------

/// One thread runs lowp's load/store forms over `src` and writes what it read to `dst`.
#[test]
fn load_store_forms() {
    let ptx = format!(
        r#"{HEADER}
.visible .entry mem(.param .align 8 .b8 mem_param[24])
{{
    .local .align 16 .b8 __local_depot0[32];
    .reg .b64 %SP, %SPL;
    .reg .b16 %rs<8>;
    .reg .b32 %r<12>;
    .reg .b64 %rd<8>;
    mov.b64 %SPL, __local_depot0;
    cvta.local.u64 %SP, %SPL;
    ld.param.b64 %rd1, [mem_param];
    ld.param.b64 %rd2, [mem_param+8];
    ld.param.b8 %rs1, [mem_param+16];
    ld.param.b32 %r1, [mem_param+20];
    {{ .reg .u64 g; cvta.to.global.u64 g, %rd1; ld.global.nc.v4.u32 {{%r2, %r3, %r4, %r5}}, [g]; }}
    {{ .reg .u64 g; cvta.to.global.u64 g, %rd2; st.global.v4.b32 [g], {{%r2, %r3, %r4, %r5}}; }}
    ld.global.nc.v2.u32 {{%r6, %r7}}, [%rd1+16];
    st.global.v2.b32 [%rd2+16], {{%r6, %r7}};
    ld.global.v2.b64 {{%rd3, %rd4}}, [%rd1+32];
    st.global.v2.b64 [%rd2+32], {{%rd3, %rd4}};
    ld.s8 %r8, [%rd1];
    st.b32 [%rd2+48], %r8;
    ld.s8 %rs2, [%rd1];
    st.b16 [%rd2+52], %rs2;
    ld.b8 %rs3, [%rd1];
    st.b16 [%rd2+54], %rs3;
    ld.s32 %rd5, [%rd1+4];
    st.b64 [%rd2+56], %rd5;
    ld.b16 %rs4, [%rd1+2];
    st.b16 [%rd2+64], %rs4;
    ld.b64 %rd6, [%rd1+8];
    st.b64 [%rd2+72], %rd6;
    st.b8 [%rd2+80], %r8;
    st.b8 [%rd2+81], %rs1;
    st.global.b16 [%rd2+82], %r1;
    st.b32 [%rd2+84], %r1;
    st.local.b32 [%SPL], %r2;
    ld.b32 %r9, [%SP];
    st.b32 [%rd2+88], %r9;
    st.b16 [%SP+4], %rs4;
    ld.local.b16 %rs5, [%SPL+4];
    st.b16 [%rd2+92], %rs5;
    ld.local.b8 %rs6, [%SPL+1];
    st.b8 [%rd2+94], %rs6;
    st.local.b16 [%SPL+8], %rs4;
    ld.b8 %rs7, [%SP+9];
    st.b8 [%rd2+95], %rs7;
    ret;
}}
"#
    );
    let sim = Sim::new(Config::default());
    let m = sim.load_module(&ptx).unwrap_or_else(|e| panic!("{e}"));
    let k = sim.kernel(&m, "mem").unwrap();
    let src: Vec<u8> = (0..48u32).map(|i| (i * 37 + 0x80) as u8).collect();
    let x = sim.alloc(48).unwrap();
    sim.write(x, &src).unwrap();
    let y = sim.alloc(96).unwrap();
    sim.memset(y, 0, 96).unwrap();
    let mut params = Vec::new();
    params.extend(x.to_le_bytes());
    params.extend(y.to_le_bytes());
    params.extend([0xa5u8, 0, 0, 0]);
    params.extend(0x1234_5678u32.to_le_bytes());
    sim.launch(&k, &LaunchConfig { grid: [1, 1, 1], block: [1, 1, 1], dynamic_smem: 0 }, &params).unwrap();
    let mut out = vec![0u8; 96];
    sim.read(y, &mut out).unwrap();
    let le16 = |o: usize| u16::from_le_bytes([src[o], src[o + 1]]);
    let mut want = Vec::new();
    want.extend(&src[..24]); // the v4 and v2 copies
    want.extend([0; 8]);
    want.extend(&src[32..48]); // the v2.b64 copy
    want.extend((src[0] as i8 as i32).to_le_bytes()); // ld.s8 into 32 bits: sign-extended
    want.extend((src[0] as i8 as i16).to_le_bytes()); // into 16 bits
    want.extend((src[0] as u16).to_le_bytes()); // ld.b8: zero-extended
    want.extend((i32::from_le_bytes(src[4..8].try_into().unwrap()) as i64).to_le_bytes()); // ld.s32 into 64 bits
    want.extend(le16(2).to_le_bytes());
    want.extend([0; 6]);
    want.extend(&src[8..16]);
    want.push(src[0]); // st.b8 of a 32-bit register: its low byte
    want.push(0xa5);
    want.extend(0x5678u16.to_le_bytes()); // st.b16 of a 32-bit register
    want.extend(0x1234_5678u32.to_le_bytes());
    want.extend(&src[0..4]); // local, read back through the generic window
    want.extend(le16(2).to_le_bytes());
    want.push(src[1]);
    want.push(src[3]);
    assert_eq!(out.len(), want.len());
    let bad: Vec<String> = (0..96)
        .filter(|&i| out[i] != want[i])
        .map(|i| format!("byte {i}: {:#04x}, expected {:#04x}", out[i], want[i]))
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

/// Shared memory through the shared window and through generic addresses (`cvta.shared`,
/// `cvta.to.shared` back), across two warps with `bar.sync`.
#[test]
fn shared_memory_generic_addresses_and_barriers() {
    let prelude = ".shared .align 16 .b8 sbuf[512];";
    let body = r#"
    {
        .reg .b64 s, g, back, o, t, tg;
        .reg .b32 j, v, w, flag;
        .reg .pred same, same2;
        mov.u64 s, sbuf;
        mul.wide.u32 o, %i, 4;
        add.s64 s, s, o;
        cvta.shared.u64 g, s;
        st.b32 [g], %a;
        bar.sync 0;
        add.u32 j, %i, 32;
        and.b32 j, j, 63;
        mul.wide.u32 o, j, 4;
        mov.u64 t, sbuf;
        add.s64 t, t, o;
        ld.volatile.shared.b32 v, [t];
        cvta.shared.u64 tg, t;
        ld.b32 w, [tg];
        cvta.to.shared.u64 back, g;
        setp.eq.b32 same, v, w;
        setp.eq.b64 same2, back, s;
        and.pred same, same, same2;
        selp.u32 flag, 1, 0, same;
        bar.sync 1, 64;
        st.volatile.shared.b32 [s], %b;
        barrier.sync 0;
        ld.volatile.shared.b32 w, [t];
        add.u32 v, v, w;
        mov.b64 %d, {v, flag};
    }"#;
    let a: Vec<u64> = (0..64).map(|i| 7 * i + 1).collect();
    let b: Vec<u64> = (0..64).map(|i| 1000 * i).collect();
    let rows: Vec<([u64; 2], Exp)> =
        (0..64).map(|i| ([a[i], b[i]], B((a[(i + 32) % 64] + b[(i + 32) % 64]) | 1 << 32))).collect();
    check_in(prelude, "", ["b32", "b32"], "b64", body, &rows);
}

/// Atomics: many threads of two warps on one word; old values and the final word must be those
/// of some order of the operations.
#[test]
fn atomics() {
    let n = 64;
    let run = |body: &str, a: &dyn Fn(u64) -> u64| -> (Vec<u64>, u64) {
        let rows: Vec<[u64; SLOTS]> = (0..n).map(|i| [a(i), 0, 0, 0]).collect();
        let full = format!(
            "{{ .reg .b32 old, fin; .reg .b64 ctr; add.s64 ctr, %base, 24; {body} bar.sync 0; ld.global.b32 fin, [ctr]; mov.b64 %d, {{old, fin}}; }}"
        );
        let got = rows_in("", "", &["b32"], "b64", &full, &rows);
        let fin = got[0] >> 32;
        assert!(got.iter().all(|g| g >> 32 == fin), "{body}: threads saw different final values");
        (got.iter().map(|g| g & 0xffff_ffff).collect(), fin)
    };
    let sorted = |mut v: Vec<u64>| {
        v.sort_unstable();
        v
    };
    let (old, fin) = run("atom.global.add.u32 old, [ctr], %a;", &|_| 1);
    assert_eq!((sorted(old), fin), ((0..n).collect(), n));
    let (old, fin) = run("atom.add.u32 old, [ctr], %a;", &|i| i);
    assert_eq!(fin, n * (n - 1) / 2);
    assert!(old.iter().all(|&o| o <= fin));
    let val = |i: u64| (i * 2_654_435_761) & 0xffff_ffff;
    let (old, fin) = run("atom.global.max.u32 old, [ctr], %a;", &val);
    assert_eq!(fin, (0..n).map(val).max().unwrap());
    assert!(old.iter().all(|&o| o == 0 || (0..n).map(val).any(|v| v == o)));
    let (old, fin) = run("atom.or.b32 old, [ctr], %a;", &|i| 1 << (i % 32));
    assert_eq!(fin, 0xffff_ffff);
    assert!(old.contains(&0));
    let (old, fin) = run("atom.global.exch.b32 old, [ctr], %a;", &|i| i + 1);
    let mut all = old.clone();
    all.push(fin);
    assert_eq!(sorted(all), (0..=n).collect::<Vec<_>>());
    // A compare-and-swap increment loop.
    let cas = "{ .reg .b32 cur, nxt; .reg .pred again; ld.global.b32 cur, [ctr]; $L_retry: add.u32 nxt, cur, 1; atom.global.cas.b32 old, [ctr], cur, nxt; setp.ne.u32 again, old, cur; mov.b32 cur, old; @again bra $L_retry; }";
    let (old, fin) = run(cas, &|_| 0);
    assert_eq!((sorted(old), fin), ((0..n).collect(), n));
    // Shared memory, 64-bit add.
    let prelude = ".shared .align 8 .b64 sctr;";
    let body = "{ .reg .pred first; .reg .b64 one, old, fin; setp.eq.u32 first, %i, 0; @first st.shared.b64 [sctr], 0; bar.sync 0; cvt.u64.u32 one, %a; atom.shared.add.u64 old, [sctr], one; bar.sync 0; ld.shared.b64 fin, [sctr]; sub.s64 %d, fin, old; }";
    let rows: Vec<([u64; 1], Exp)> = (0..64)
        .map(|_| {
            ([1 << 20], P("final - old in 2^20..=2^26", |v| v % (1 << 20) == 0 && (1 << 20..=1 << 26).contains(&v)))
        })
        .collect();
    check_in(prelude, "", ["b32"], "b64", body, &rows);
}

// ---------------------------------------------------------------------------------------------
// Control: brx.idx, calls, trap
// ---------------------------------------------------------------------------------------------

/// A jump table with a different target per lane (the warp diverges and reconverges).
#[test]
fn brx_idx_jump_table() {
    let body = r#"
    {
        .reg .b32 idx;
        and.b32 idx, %a, 3;
        $L_tab: .branchtargets $L_t0, $L_t1, $L_t2, $L_t3;
        brx.idx idx, $L_tab;
    $L_t0:
        mov.u32 %d, 100;
        bra.uni $L_join;
    $L_t1:
        mov.u32 %d, 101;
        bra.uni $L_join;
    $L_t2:
        mov.u32 %d, 102;
        bra.uni $L_join;
    $L_t3:
        mov.u32 %d, 103;
    $L_join:
        add.u32 %d, %d, %a;
    }"#;
    let rows: Vec<([u64; 1], Exp)> = (0..64u64).map(|i| ([i * 5], B(100 + (i * 5) % 4 + i * 5))).collect();
    check(["b32"], "b32", body, &rows);
}

const FUNCS: &str = r#"
.func (.param .b32 sum_ret) sum3(.param .b32 sum_a, .param .b64 sum_b, .param .b32 sum_c)
{
    .reg .b16 %h<2>;
    .reg .b32 %q<6>;
    .reg .b64 %qd<2>;
    ld.param.b32 %q1, [sum_a];
    ld.param.b64 %qd1, [sum_b];
    ld.param.b8 %h1, [sum_c];
    cvt.u32.u64 %q2, %qd1;
    cvt.u32.u16 %q3, %h1;
    mad.lo.s32 %q4, %q1, 3, %q2;
    add.s32 %q5, %q4, %q3;
    st.param.b32 [sum_ret], %q5;
    ret;
}

.func (.param .b32 nest_ret) nested(.param .b32 nest_a)
{
    .reg .b32 %v<6>;
    .reg .b64 %vd<2>;
    ld.param.b32 %v1, [nest_a];
    mov.b64 %vd1, 1;
    mov.b32 %v4, 0;
    {
        .param .b32 param0;
        .param .b64 param1;
        .param .b32 param2;
        .param .b32 retval0;
        st.param.b32 [param0], %v1;
        st.param.b64 [param1], %vd1;
        st.param.b32 [param2], %v4;
        call.uni (retval0), sum3, (param0, param1, param2);
        ld.param.b32 %v2, [retval0];
    }
    add.s32 %v3, %v2, %v1;
    st.param.b32 [nest_ret], %v3;
    ret;
}

.func scale_in_place(.param .b64 sip_p, .param .b32 sip_k)
{
    .reg .b32 %t<4>;
    .reg .b64 %u<2>;
    ld.param.b64 %u1, [sip_p];
    ld.param.b32 %t1, [sip_k];
    ld.b32 %t2, [%u1];
    mul.lo.s32 %t3, %t2, %t1;
    st.b32 [%u1+4], %t3;
    ret;
}
"#;

/// `call.uni` with arguments (a .b8 read of a .b32 argument included) and a return value, a
/// nested call, and lowp's pattern: a generic pointer to the caller's local memory as argument.
#[test]
fn calls_with_params_returns_and_local_pointers() {
    let body = r#"
    {
        .param .b32 param0;
        .param .b64 param1;
        .param .b32 param2;
        .param .b32 retval0;
        st.param.b32 [param0], %a;
        st.param.b64 [param1], %b;
        st.param.b32 [param2], %c;
        call.uni (retval0), sum3, (param0, param1, param2);
        ld.param.b32 %d, [retval0];
    }"#;
    let rows = [
        ([5, 7, 0x1234_56ff], B(15 + 7 + 0xff)),
        ([s32(-1), 0xffff_ffff_0000_0002, 0x100], B(s32(-3 + 2))),
        ([0x8000_0000, 0, 1], B(0x8000_0001)),
    ];
    check_in(FUNCS, "", ["b32", "b64", "b32"], "b32", body, &rows);
    let body = "{ .param .b32 param0; .param .b32 retval0; st.param.b32 [param0], %a; call.uni (retval0), nested, (param0); ld.param.b32 %d, [retval0]; }";
    check_in(FUNCS, "", ["b32"], "b32", body, &[([5], B(21)), ([0], B(1))]);
    let decls = "    .local .align 8 .b8 __local_depot0[16];\n    .reg .b64 %SP, %SPL;";
    let body = r#"
    mov.b64 %SPL, __local_depot0;
    cvta.local.u64 %SP, %SPL;
    st.local.b32 [%SPL], %a;
    {
        .param .b64 param0;
        .param .b32 param1;
        st.param.b64 [param0], %SP;
        st.param.b32 [param1], %b;
        call.uni scale_in_place, (param0, param1);
    }
    ld.local.b32 %d, [%SPL+4];"#;
    let rows: Vec<([u64; 2], Exp)> = (0..40u64).map(|i| ([i + 3, 7 * i], B((i + 3) * 7 * i))).collect();
    check_in(FUNCS, decls, ["b32", "b32"], "b32", body, &rows);
}

#[test]
fn trap_only_when_executed() {
    let body = "{ .reg .pred hit; setp.eq.u32 hit, %a, 12345; @hit trap; mov.b32 %d, %a; }";
    check(["b32"], "b32", body, &[([1], B(1)), ([2], B(2))]);
    let e = try_rows("", "", &["b32"], "b32", body, &[[1, 0, 0, 0], [12345, 0, 0, 0]]).expect_err("the trap fires");
    assert_eq!(e.kind, ErrorKind::LaunchFailed, "{e}");
    assert!(e.message.contains("trap"), "{e}");
}

/// Atomics from many CTAs on the same words (lowp raises an error flag with `atom.or` from any
/// thread of any CTA): not a race between CTAs, and every operation counts.
#[test]
fn atomics_across_ctas() {
    let ptx = format!(
        r#"{HEADER}
.visible .entry flags(.param .align 8 .b8 flags_param[8])
{{
    .reg .b32 %r<8>;
    .reg .b64 %rd<4>;
    ld.param.b64 %rd1, [flags_param];
    mov.u32 %r1, %ctaid.x;
    mov.u32 %r2, %ntid.x;
    mov.u32 %r3, %tid.x;
    mad.lo.s32 %r4, %r1, %r2, %r3;
    atom.global.add.u32 %r5, [%rd1], 1;
    shl.b32 %r6, 1, %r1;
    atom.or.b32 %r7, [%rd1+4], %r6;
    atom.global.max.u32 %r5, [%rd1+8], %r4;
    ret;
}}
"#
    );
    let sim = Sim::new(Config::default());
    let k = sim.kernel(&sim.load_module(&ptx).unwrap(), "flags").unwrap();
    let x = sim.alloc(12).unwrap();
    sim.memset(x, 0, 12).unwrap();
    sim.launch(&k, &LaunchConfig { grid: [8, 1, 1], block: [64, 1, 1], dynamic_smem: 0 }, &x.to_le_bytes()).unwrap();
    let mut out = [0u8; 12];
    sim.read(x, &mut out).unwrap();
    let w = |i: usize| u32::from_le_bytes(out[4 * i..4 * i + 4].try_into().unwrap());
    assert_eq!((w(0), w(1), w(2)), (512, 0xff, 511));
}
