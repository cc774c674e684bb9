//! The device's per-block arithmetic (`kernels-gpu/src/microscaling/math.rs`, compiled into the
//! host) against the independent reference (`reference::microscaling`) and the validated
//! software conversions, on the CPU: millions of random blocks (sizes below; more with
//! `LOWP_MX_BLOCKS=<blocks per test>`), the E2M1 encoder and the scaled division over large
//! sweeps (all 2^32 inputs and every quotient in the tests marked `#[ignore]`, run with
//! `cargo test --release --lib -- --ignored microscaling`).
use super::math::{self, SoftFp8};
use crate::reference::convert as cv;
use crate::reference::microscaling as rf;
use crate::scale::ScaleRounding;

/// SplitMix64, seeded fresh per run unless `LOWP_TEST_SEED` pins it (printed, so a failure can
/// be replayed).
struct Rng(u64);

impl Rng {
    fn fresh(test: &str) -> Rng {
        let seed = std::env::var("LOWP_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        });
        eprintln!("{test}: LOWP_TEST_SEED={seed}");
        Rng(seed)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u1, u2) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    fn sign(&mut self) -> f64 {
        if self.next() & 1 == 0 { 1.0 } else { -1.0 }
    }
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.below(v.len() as u64) as usize]
    }
    /// Rounds to a storage type the kernels read (bf16, f16 or f32), like a real input.
    fn input(&mut self, v: f64) -> f32 {
        match self.below(3) {
            0 => half::bf16::from_f64(v).to_f32(),
            1 => half::f16::from_f64(v).to_f32(),
            _ => v as f32,
        }
    }
}

/// Blocks per random test (debug builds are slow; the release sweep can raise it).
fn blocks(default: usize) -> usize {
    std::env::var("LOWP_MX_BLOCKS").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// The E2M1 grid and its midpoints (the ties), both signs.
const E2M1_POINTS: [f64; 15] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0];

/// A random block of `n` values of one of several kinds: Gaussian at a random magnitude, values
/// spread over the whole f32 range (subnormals included), random bit patterns, exact E2M1 ties at
/// a power-of-two scale, near-saturation, zeros, subnormals only, and any of these with ±0, ±Inf
/// or NaN planted.
fn random_block(rng: &mut Rng, n: usize) -> Vec<f32> {
    let kind = rng.below(9);
    let mag = 2f64.powi(rng.below(80) as i32 - 40);
    let mut x: Vec<f32> = match kind {
        0 | 1 => (0..n)
            .map(|_| {
                let v = mag * rng.normal();
                rng.input(v)
            })
            .collect(),
        2 => (0..n)
            .map(|_| {
                let e = rng.below(300) as i32 - 160;
                let v = rng.sign() * (1.0 + rng.uniform()) * 2f64.powi(e);
                rng.input(v)
            })
            .collect(),
        3 => (0..n)
            .map(|_| {
                let v = f32::from_bits(rng.next() as u32);
                if v.is_nan() { 0.0 } else { v }
            })
            .collect(),
        4 => {
            // grid points and midpoints times 2^e, with the largest grid value present so the
            // block scale is 2^e for MX (OCP rule: amax in [4, 8) · 2^e ⇒ e) and the ties survive
            let e = rng.below(200) as i32 - 100;
            let mut v: Vec<f32> = (0..n).map(|_| (rng.sign() * rng.pick(&E2M1_POINTS) * 2f64.powi(e)) as f32).collect();
            v[rng.below(n as u64) as usize] = (6.0 * 2f64.powi(e)) as f32;
            v
        }
        5 => {
            // near the largest value: amax and neighbours, some one ulp apart
            let top = mag * (1.0 + rng.uniform());
            (0..n)
                .map(|_| {
                    let v = rng.sign() * top * (1.0 - 1e-3 * rng.uniform());
                    rng.input(v)
                })
                .collect()
        }
        6 => (0..n).map(|_| if rng.below(4) == 0 { -0.0 } else { 0.0 }).collect(),
        7 => (0..n)
            .map(|_| {
                let m = rng.below(1 << 23) as u32;
                f32::from_bits(((rng.next() as u32) & 0x8000_0000) | m)
            })
            .collect(),
        _ => (0..n)
            .map(|_| {
                let v = mag * rng.normal() * 2f64.powi(rng.below(16) as i32 - 8);
                rng.input(v)
            })
            .collect(),
    };
    // plant specials in some blocks
    match rng.below(16) {
        0 => {
            let i = rng.below(n as u64) as usize;
            x[i] = f32::NAN;
        }
        1 => {
            let i = rng.below(n as u64) as usize;
            x[i] = if rng.below(2) == 0 { f32::INFINITY } else { f32::NEG_INFINITY };
        }
        2 => {
            let i = rng.below(n as u64) as usize;
            x[i] = -0.0;
        }
        _ => {}
    }
    x
}

/// A block whose NVFP4 scale `(amax / 6) · g` lands within a few f32 ulps of a midpoint between
/// two E4M3 codes, where the order of the f32 operations decides the code; the other elements
/// are random below amax (some exact ties of the E2M1 grid relative to the scale). Returns
/// (block, g).
fn nvfp4_scale_tie_block(rng: &mut Rng) -> (Vec<f32>, f32) {
    let code = 1 + rng.below(0x7d) as u8; // midpoint between `code` and `code + 1`
    let mid = (cv::e4m3fn_to_f32(code) as f64 + cv::e4m3fn_to_f32(code + 1) as f64) / 2.0;
    let g = (2f64.powi(rng.below(24) as i32 - 12) * (1.0 + rng.uniform())) as f32;
    let centre = ((6.0 * mid / g as f64) as f32).to_bits();
    let amax = f32::from_bits(centre.wrapping_add(rng.below(7) as u32).wrapping_sub(3));
    let s = cv::e4m3fn_to_f32(code) as f64; // roughly the scale
    let mut x: Vec<f32> = (0..16)
        .map(|_| match rng.below(3) {
            0 => (rng.sign() * rng.pick(&E2M1_POINTS) * s / g as f64) as f32,
            _ => (rng.sign() * amax as f64 * rng.uniform()) as f32,
        })
        .map(|v| if v.abs() > amax { amax.copysign(v) } else { v })
        .collect();
    x[rng.below(16) as usize] = if rng.below(2) == 0 { amax } else { -amax };
    (x, g)
}

/// A block whose amax sits within a few ulps of a power of two (the OCP rule's boundary) or of
/// `max · 2^k` (the round-up rule's: the f32 division `amax / max` decides).
fn mx_boundary_block(rng: &mut Rng, max: f64) -> Vec<f32> {
    let k = rng.below(250) as i32 - 140;
    let base = if rng.below(2) == 0 { 2f64.powi(k) } else { max * 2f64.powi(k) };
    let centre = (base as f32).to_bits();
    let amax = f32::from_bits(centre.wrapping_add(rng.below(7) as u32).wrapping_sub(3));
    let mut x: Vec<f32> = (0..32).map(|_| (rng.sign() * amax as f64 * rng.uniform()) as f32).collect();
    x[rng.below(32) as usize] = if rng.below(2) == 0 { amax } else { -amax };
    x
}

/// Unpacks `W` words of E2M1 codes (8 per word) or E4M3 bytes (4 per word) to one code per element.
fn unpack(words: &[u32], fp4: bool) -> Vec<u8> {
    let mut v = Vec::new();
    for w in words {
        if fp4 {
            v.extend((0..8).map(|j| ((w >> (4 * j)) & 0xf) as u8));
        } else {
            v.extend((0..4).map(|j| ((w >> (8 * j)) & 0xff) as u8));
        }
    }
    v
}

fn fail(what: &str, x: &[f32], extra: &str, got: (u8, &[u8]), want: (u8, &[u8])) -> ! {
    let bits: Vec<String> = x.iter().map(|v| format!("{:#010x}", v.to_bits())).collect();
    panic!(
        "{what} {extra}: scale got {:#04x} want {:#04x}\n codes got  {:02x?}\n codes want {:02x?}\n block {x:?}\n bits {bits:?}",
        got.0, want.0, got.1, want.1
    )
}

#[test]
fn e2m1_code_matches_the_soft_encoder_on_a_sweep_of_f32() {
    let check = |bits: u32| {
        let v = f32::from_bits(bits);
        let (got, want) = (math::e2m1_code(v) as u8, cv::f32_to_e2m1_sat(v));
        assert_eq!(got, want, "e2m1_code({v:e} = {bits:#010x})");
        if !v.is_nan() {
            assert_eq!(got, rf::e2m1_by_value(v), "e2m1_code vs reference ({v:e} = {bits:#010x})");
        }
    };
    // every 4099th bit pattern (1M inputs, all exponents and signs) ...
    let mut b = 0u64;
    while b < 1 << 32 {
        check(b as u32);
        b += 4099;
    }
    // ... and every input within 2^14 ulps of each grid point and tie, both signs, plus zeros,
    // subnormals and the saturation boundary region.
    for p in E2M1_POINTS.iter().chain(&[6.5, 7.0, 8.0, 1e30]) {
        let c = (*p as f32).to_bits();
        for d in 0..(1u32 << 14) {
            for s in [0u32, 0x8000_0000] {
                check(c.wrapping_add(d) | s);
                check(c.wrapping_sub(d) | s);
            }
        }
    }
}

/// Runs `check(lo, hi)` over `[0, n)` split into one range per available thread.
fn in_parallel(n: u64, check: impl Fn(u64, u64) + Sync) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let check = &check;
    std::thread::scope(|sc| {
        for t in 0..threads {
            sc.spawn(move || check(n * t / threads, n * (t + 1) / threads));
        }
    });
}

#[test]
#[ignore = "exhaustive over 2^32 inputs: run with --release"]
fn e2m1_code_matches_the_soft_encoder_on_every_f32() {
    in_parallel(1 << 32, |lo, hi| {
        for b in lo..hi {
            let v = f32::from_bits(b as u32);
            assert_eq!(math::e2m1_code(v) as u8, cv::f32_to_e2m1_sat(v), "e2m1_code({v:e} = {b:#010x})");
        }
    });
}

/// Every f32 `a` in `[m / 8, 8m)` (`step` apart) against the IEEE quotient, for the 8
/// significands an E4M3 scale can have (`div_by_scale` is exact there; dividing by `m · 2^k`
/// only shifts exponents, all normal in this range, so these cover every scale).
fn check_division(step: u32) {
    for k in 0..8 {
        let s = 1.0 + k as f32 / 8.0;
        let r = 1.0 / s;
        let (lo, hi) = ((s / 8.0).to_bits(), (8.0 * s).to_bits());
        let mut b = lo;
        while b < hi {
            let a = f32::from_bits(b);
            let (got, want) = (math::div_by_scale(a, s, r), a / s);
            assert_eq!(got.to_bits(), want.to_bits(), "div_by_scale({a:e}, {s}) = {got:e}, IEEE {want:e}");
            b += step;
        }
    }
}

#[test]
fn div_by_scale_is_the_ieee_quotient() {
    check_division(61);
    // The actual scales: all 126 positive finite E4M3 values, random a in [0, 8s] (exact for
    // quotients >= 1/8, below 0.25 for smaller ones, which all encode as 0).
    let mut rng = Rng::fresh("div_by_scale_is_the_ieee_quotient");
    for code in 1u8..=0x7e {
        let s = cv::e4m3fn_to_f32(code);
        let r = 1.0 / s;
        for i in 0..2000 {
            let a = if i % 2 == 0 {
                (8.0 * s as f64 * rng.uniform()) as f32
            } else {
                // tiny quotients, down to subnormal a
                f32::from_bits(rng.below((s / 8.0).to_bits() as u64) as u32)
            };
            let (got, want) = (math::div_by_scale(a, s, r), a / s);
            if want >= 0.125 {
                assert_eq!(got.to_bits(), want.to_bits(), "div_by_scale({a:e}, {s:e})");
            } else {
                assert!(
                    got < 0.25 && math::e2m1_code(got) == math::e2m1_code(want),
                    "div_by_scale({a:e}, {s:e}) = {got:e}"
                );
            }
        }
    }
}

#[test]
#[ignore = "every quotient in [1/8, 8): run with --release"]
fn div_by_scale_is_the_ieee_quotient_everywhere() {
    check_division(1);
}

/// `div6` against the IEEE `a / 6` for the non-negative f32 bit patterns `lo..hi` (`step`
/// apart): the same bits, NaN for NaN.
fn check_div6(lo: u64, hi: u64, step: u64) {
    let mut b = lo;
    while b < hi {
        let a = f32::from_bits(b as u32);
        let (got, want) = (math::div6(a), a / 6.0);
        assert!(
            got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
            "div6({a:e} = {b:#010x}) = {got:e}, IEEE {want:e}"
        );
        b += step;
    }
}

#[test]
fn div6_is_the_ieee_quotient() {
    // every 127th non-negative pattern (zeros, subnormals, normals, +Inf, NaNs) ...
    check_div6(0, 1 << 31, 127);
    // ... every subnormal and the bottom of the normals, where the residual is smallest ...
    check_div6(0, 0x0180_0000, 1);
    // ... the top of the range and the special values.
    check_div6(0x7f00_0000, 1 << 31, 1);
}

#[test]
#[ignore = "exhaustive over the 2^31 non-negative f32: run with --release"]
fn div6_is_the_ieee_quotient_on_every_non_negative_f32() {
    in_parallel(1 << 31, |lo, hi| check_div6(lo, hi, 1));
}

#[test]
fn nvfp4_blocks_match_the_reference() {
    let mut rng = Rng::fresh("nvfp4_blocks_match_the_reference");
    let n = blocks(400_000);
    let mut order_matters = 0;
    for i in 0..n {
        if i % 4 == 3 {
            // scale ties: the specified order (amax / 6) · g must be the one computed
            let (x, g) = nvfp4_scale_tie_block(&mut rng);
            let amax = rf::tensor_amax(&x);
            if cv::f32_to_e4m3fn_sat((amax / 6.0) * g) != cv::f32_to_e4m3fn_sat((amax * g) / 6.0) {
                order_matters += 1;
            }
            let xa: [f32; 16] = x.clone().try_into().unwrap();
            let (s, words) = math::nvfp4_block::<SoftFp8>(&xa, g);
            let codes = unpack(&words, true);
            let (ws, wc) = rf::nvfp4_block(&x, g);
            if s != ws || codes != wc {
                fail("nvfp4_block (scale tie)", &x, &format!("g = {g:e}"), (s, &codes), (ws, &wc));
            }
            continue;
        }
        let x = random_block(&mut rng, 16);
        let amax = rf::tensor_amax(&x);
        let g = match i % 6 {
            0 => 1.0,
            1 => rf::nvfp4_global_scale(amax),
            2 => rf::nvfp4_global_scale(amax) * (1.0 + rng.uniform() as f32), // some scales saturate
            3 => (2f64.powi(rng.below(80) as i32 - 40) * (1.0 + rng.uniform())) as f32,
            4 => rng.pick(&[1e30f32, 3.0e38, f32::MAX, 1e-30, 1.4e-45, 2688.0]),
            _ => rf::nvfp4_global_scale(amax) * 0.5,
        };
        let xa: [f32; 16] = x.clone().try_into().unwrap();
        let (s, words) = math::nvfp4_block::<SoftFp8>(&xa, g);
        let codes = unpack(&words, true);
        let (ws, wc) = rf::nvfp4_block(&x, g);
        if s != ws || codes != wc {
            fail("nvfp4_block", &x, &format!("g = {g:e}"), (s, &codes), (ws, &wc));
        }
    }
    eprintln!("nvfp4: {n} random blocks bit-exact ({order_matters} where (amax·g)/6 would give another scale)");
    assert!(n < 1000 || order_matters > 0, "the scale-tie blocks never exercised the operation order");
}

fn mx_blocks(test: &str, fp8: bool) {
    let mut rng = Rng::fresh(test);
    let n = blocks(300_000);
    for i in 0..n {
        let x = if i % 8 == 7 {
            mx_boundary_block(&mut rng, if fp8 { 448.0 } else { 6.0 })
        } else {
            random_block(&mut rng, 32)
        };
        let rule = if i % 2 == 0 { ScaleRounding::Floor } else { ScaleRounding::Ceil };
        let xa: [f32; 32] = x.clone().try_into().unwrap();
        let up = rule == ScaleRounding::Ceil;
        let (s, codes) = if fp8 {
            let (s, w) = math::mxfp8_block::<SoftFp8>(&xa, up);
            (s, unpack(&w, false))
        } else {
            let (s, w) = math::mxfp4_block(&xa, up);
            (s, unpack(&w, true))
        };
        let elem = if fp8 { rf::MxElement::E4m3 } else { rf::MxElement::E2m1 };
        let (ws, wc) = rf::mx_block(&x, elem, rule).expect("an MX rounding");
        if s != ws || codes != wc {
            fail(test, &x, &format!("{rule:?}"), (s, &codes), (ws, &wc));
        }
    }
    eprintln!("{test}: {n} random blocks bit-exact");
}

#[test]
fn mxfp4_blocks_match_the_reference() {
    mx_blocks("mxfp4_blocks_match_the_reference", false);
}

#[test]
fn mxfp8_blocks_match_the_reference() {
    mx_blocks("mxfp8_blocks_match_the_reference", true);
}

#[test]
fn special_blocks_follow_the_documented_rules() {
    let z16 = [0.0f32; 16];
    assert_eq!(math::nvfp4_block::<SoftFp8>(&z16, 1.0), (0, [0, 0]));
    let mut negz = [-0.0f32; 16];
    assert_eq!(math::nvfp4_block::<SoftFp8>(&negz, 1.0), (0, [0, 0]), "a zero scale writes +0 codes");
    negz[3] = 1.0;
    let (s, w) = math::nvfp4_block::<SoftFp8>(&negz, 1.0);
    assert_eq!(s, cv::f32_to_e4m3fn_sat(1.0 / 6.0));
    assert_eq!(unpack(&w, true)[0], 0x8, "−0 in a live block keeps its sign");
    let mut nan = [1.0f32; 16];
    nan[7] = f32::NAN;
    assert_eq!(math::nvfp4_block::<SoftFp8>(&nan, 1.0), (0x7f, [0, 0]), "NaN block: scale NaN, codes 0");
    let mut inf = [1.0f32; 16];
    inf[2] = f32::NEG_INFINITY;
    let (s, w) = math::nvfp4_block::<SoftFp8>(&inf, 1.0);
    let c = unpack(&w, true);
    assert_eq!((s, c[2], c[0]), (0x7e, 0xf, 0x0), "Inf: scale saturates to 448, the Inf element to −6, 1/448 to 0");
    // MX
    let mut b = [0.0f32; 32];
    assert_eq!(math::mxfp4_block(&b, false), (0, [0; 4]));
    b[0] = f32::INFINITY;
    assert_eq!(math::mxfp4_block(&b, false), (0xff, [0; 4]));
    assert_eq!(math::mxfp8_block::<SoftFp8>(&b, true), (0xff, [0; 8]));
    b[0] = f32::NAN;
    assert_eq!(math::mxfp4_block(&b, true), (0xff, [0; 4]));
    // OCP: amax 1.0 → 2^(0 − 2) → code 125; 1.0 / 0.25 = 4 → code 6
    b[0] = 1.0;
    let (s, w) = math::mxfp4_block(&b, false);
    assert_eq!((s, unpack(&w, true)[0]), (125, 6));
    // round-up: 1.0 / 6 → ceil log2 = −2 → code 125 too; 7.0 → OCP 2^0 (7 saturates to 6), up 2^1
    b[0] = 7.0;
    let (s, w) = math::mxfp4_block(&b, false);
    assert_eq!((s, unpack(&w, true)[0]), (127, 7));
    let (s, w) = math::mxfp4_block(&b, true);
    assert_eq!((s, unpack(&w, true)[0]), (128, 6), "7 / 2 = 3.5, a tie between 3 and 4: the even code 6 (4)");
}

#[test]
fn mx_scales_at_the_edges_of_the_f32_range() {
    // amax subnormal → code 0 (2^-127): values are multiplied by 2^127
    let mut b = [0.0f32; 32];
    b[1] = f32::from_bits(1); // 2^-149
    for up in [false, true] {
        let (s, w) = math::mxfp4_block(&b, up);
        assert_eq!(s, 0, "round_up = {up}");
        assert_eq!(unpack(&w, true)[1], 0, "2^-149 · 2^127 = 2^-22 rounds to 0");
        assert_eq!(
            rf::mx_block(&b, rf::MxElement::E2m1, if up { ScaleRounding::Ceil } else { ScaleRounding::Floor })
                .expect("an MX rounding")
                .0,
            0
        );
    }
    // amax = f32::MAX: OCP 2^(127 − 2), round-up 2^126 (3.4e38 / 6 ≈ 2^125.4)
    b[1] = f32::MAX;
    assert_eq!(math::mxfp4_block(&b, false).0, 252);
    assert_eq!(math::mxfp4_block(&b, true).0, 253);
    assert_eq!(math::mxfp8_block::<SoftFp8>(&b, false).0, 246);
    for code in 0..=254u8 {
        let m = math::mx_multiplier(code);
        assert_eq!(m as f64, 2f64.powi(127 - code as i32), "mx_multiplier({code})");
    }
}

#[test]
fn dequantized_blocks_match_the_reference() {
    let mut rng = Rng::fresh("dequantized_blocks_match_the_reference");
    let same = |got: f32, want: f32| got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan());
    for _ in 0..blocks(50_000) {
        let scale = rng.next() as u8;
        let g = rng.pick(&[1.0f32, 2688.0 / 3.7, 1e-3, 1e30, 0.75]);
        let w2 = [rng.next() as u32, rng.next() as u32];
        let codes: Vec<u8> = unpack(&w2, true).chunks(2).map(|p| p[0] | (p[1] << 4)).collect();
        let got = math::nvfp4_dequant_block(w2, scale, g);
        let want = rf::dequantize(&codes, &[scale], 1, 16, rf::Format::Nvfp4 { g });
        for i in 0..16 {
            assert!(same(got[i], want[i]), "nvfp4 element {i}: scale {scale:#04x} g {g:e}: {} vs {}", got[i], want[i]);
        }
        let w4 = [rng.next() as u32, rng.next() as u32, rng.next() as u32, rng.next() as u32];
        let codes: Vec<u8> = unpack(&w4, true).chunks(2).map(|p| p[0] | (p[1] << 4)).collect();
        let got = math::mxfp4_dequant_block(w4, scale);
        let want = rf::dequantize(&codes, &[scale], 1, 32, rf::Format::Mxfp4(ScaleRounding::Floor));
        for i in 0..32 {
            assert!(same(got[i], want[i]), "mxfp4 element {i}: scale {scale:#04x}: {} vs {}", got[i], want[i]);
        }
        let w8: [u32; 8] = std::array::from_fn(|_| rng.next() as u32);
        let codes = unpack(&w8, false);
        let got = math::mxfp8_dequant_block(w8, scale);
        let want = rf::dequantize(&codes, &[scale], 1, 32, rf::Format::Mxfp8(ScaleRounding::Floor));
        for i in 0..32 {
            assert!(same(got[i], want[i]), "mxfp8 element {i}: scale {scale:#04x}: {} vs {}", got[i], want[i]);
        }
    }
}

#[test]
fn swizzled_offsets_match_the_reference_and_invert() {
    let mut rng = Rng::fresh("swizzled_offsets_match_the_reference_and_invert");
    for _ in 0..100_000 {
        let cols = 1 + rng.below(700) as usize;
        let (r, c) = (rng.below(5000) as usize, rng.below(cols as u64) as usize);
        let tiles = cols.div_ceil(4) as u32;
        let off = math::swizzled_offset(r as u32, c as u32, tiles);
        assert_eq!(off as usize, rf::swizzled_offset(r, c, cols), "({r}, {c}) of {cols} columns");
        let (wr, wc) = math::swizzled_word_position(off & !3, tiles as u64);
        assert_eq!((wr as usize, wc as usize), (r, c & !3), "word of ({r}, {c})");
    }
    assert_eq!(math::swizzled_rows(0), 0);
    assert_eq!(math::swizzled_rows(129), 256);
    assert_eq!(math::swizzled_cols(9), 12);
}

#[test]
fn group_clamping_matches_the_reference_layout() {
    let mut rng = Rng::fresh("group_clamping_matches_the_reference_layout");
    for _ in 0..20_000 {
        let rows = rng.below(3000) as u32;
        let e = 1 + rng.below(40) as usize;
        let mut offs: Vec<i32> = (0..e).map(|_| rng.below(rows as u64 + 1) as i32).collect();
        offs.sort();
        // sometimes break them: negative, past the end, decreasing
        if rng.below(3) == 0 {
            let i = rng.below(e as u64) as usize;
            offs[i] = rng.pick(&[-5, -1, rows as i32 + 7, i32::MAX, i32::MIN, 0]);
        }
        let (ranges, want) = rf::group_layout(&offs, rows as usize);
        // the device's two scans, done sequentially
        let mut ends = Vec::new();
        let mut prev = 0u32;
        for &o in &offs {
            prev = math::clamp_group_end(prev, o, rows);
            ends.push(prev);
        }
        let mut starts = vec![0u32];
        for (j, &end) in ends.iter().enumerate() {
            let start = if j == 0 { 0 } else { ends[j - 1] };
            starts.push(starts[j] + math::group_scale_rows(start, end));
        }
        let got: Vec<i32> = starts.iter().map(|&s| s as i32).collect();
        assert_eq!(got, want, "offs {offs:?}, rows {rows}");
        for (j, r) in ranges.iter().enumerate() {
            assert_eq!(r.end, ends[j] as usize);
        }
        // and the worst-case buffer holds them
        assert!(*want.last().unwrap() as usize * 4 <= super::plan::grouped_scale_len(rows as usize, 4, e));
    }
}

#[test]
fn e4m3_scale_values_match_the_decoder() {
    for code in 1u8..=0x7e {
        let (got, want) = (math::e4m3_scale_value(code), cv::e4m3fn_to_f32(code));
        assert_eq!(got.to_bits(), want.to_bits(), "code {code:#04x}");
        assert_eq!(got as f64, rf::e4m3_value(code), "code {code:#04x}");
        // the reciprocal from the table, whatever the bits above the index's low 3 (the GPU's
        // shuffle reads 5 of them)
        let want = 1.0 / want;
        for high in [0u32, 8, 24, 0xffff_fff8] {
            let r = math::e4m3_scale_recip(got, |i| math::recip_table_entry(i.wrapping_add(high)));
            assert_eq!(r.to_bits(), want.to_bits(), "1 / value of code {code:#04x}");
        }
        let (s, r, six_s) = math::nvfp4_scale_params(code, math::recip_table_entry);
        assert_eq!((s, r.to_bits(), six_s), (got, want.to_bits(), 6.0 * got), "code {code:#04x}");
    }
    // a large tile index still gives a 64-bit offset
    assert_eq!(math::swizzled_offset(128 * 40_000, 0, 40_000), 40_000u64 * 40_000 * 512);
}

#[test]
fn the_global_scale_matches_the_reference() {
    for a in [
        0.0f32,
        -0.0,
        1.0,
        6.0,
        2688.0,
        448.0,
        1e-30,
        1e-36,
        f32::from_bits(1),
        f32::MAX,
        f32::INFINITY,
        f32::NAN,
        3.7e5,
    ] {
        let (got, want) = (math::nvfp4_global_scale(a), rf::nvfp4_global_scale(a));
        assert_eq!(got.to_bits(), want.to_bits(), "amax {a:e}");
        assert!(got.is_finite() && got > 0.0, "amax {a:e} → g {got:e}");
    }
    assert_eq!(math::nvfp4_global_scale(2688.0), 1.0);
    assert_eq!(math::nvfp4_global_scale(f32::from_bits(1)), f32::MAX);
    for g in [f32::NAN, -1.0, 0.0, f32::INFINITY] {
        assert_eq!(math::sanitize_global_scale(g), 1.0);
    }
    assert_eq!(math::sanitize_global_scale(3.5), 3.5);
}
