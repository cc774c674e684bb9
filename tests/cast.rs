//! The numeric conversions against outside implementations (PyTorch CUDA casts and ml_dtypes,
//! `tests/data/`), on the CPU; then the device casts (`lowp::cast`) against the host reference,
//! bit for bit, and their argument checks (on a GPU, or on the simulator where there is none).

mod common;

use std::sync::Arc;

use lowp::cast::{self, CastTarget};
use lowp::cudarc::driver::{CudaSlice, CudaStream};
use lowp::reference::convert as cv;
use lowp::{Error, F4E2M1x2, F8E4M3, F8E5M2, Lowp, ScaleRounding, Ue8m0};

struct Row {
    input: f32,
    e4m3_sat: u8,
    e5m2_sat: u8,
    e4m3_mldtypes: u8,
    e4m3_torch: u8,
    e2m1_sat: u8,
    e8m0: u8,
}

fn load(name: &str) -> Vec<Row> {
    // Compiled in: the test executable runs wherever it is copied, without the source tree.
    let text = match name {
        "conversions_f32.csv" => include_str!("data/conversions_f32.csv"),
        "conversions_bf16.csv" => include_str!("data/conversions_bf16.csv"),
        _ => panic!("no test vectors named {name}"),
    };
    let path = format!("tests/data/{name}");
    let h = |s: &str| u32::from_str_radix(s, 16).unwrap_or_else(|e| panic!("{path}: bad hex {s:?}: {e}"));
    let rows: Vec<Row> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split(',').collect();
            assert_eq!(c.len(), 9, "{path}: {l}");
            Row {
                input: f32::from_bits(h(c[0])),
                e4m3_torch: h(c[1]) as u8,
                e4m3_sat: h(c[2]) as u8,
                e5m2_sat: h(c[4]) as u8,
                e4m3_mldtypes: h(c[5]) as u8,
                e2m1_sat: h(c[7]) as u8,
                e8m0: h(c[8]) as u8,
            }
        })
        .collect();
    assert!(rows.len() > 6000, "{path}: only {} rows", rows.len());
    rows
}

/// The one place lowp's FP8 bits differ from PyTorch's: lowp encodes every NaN as `0x7f` (E4M3
/// and E5M2) whatever its sign, as NVIDIA's `cvt.rn.satfinite` does, while PyTorch's casts keep the
/// sign (`0xff` for a negative NaN). Given PyTorch's code for `x`, the code lowp must give.
fn negative_nan_is_0x7f(x: f32, torch: u8) -> u8 {
    if x.is_nan() && x.is_sign_negative() && torch == 0xff { 0x7f } else { torch }
}

fn check_all(file: &str) {
    let rows = load(file);
    let mut failures = Vec::new();
    for r in &rows {
        let x = r.input;
        let bits = x.to_bits();
        let mut check = |what: &str, got: u8, want: u8| {
            if got != want {
                failures.push(format!("{what}({x:e} = {bits:#010x}): got {got:#04x}, want {want:#04x}"));
            }
        };
        check("e4m3fn_sat", cv::f32_to_e4m3fn_sat(x), negative_nan_is_0x7f(x, r.e4m3_sat));
        check("e5m2_sat", cv::f32_to_e5m2_sat(x), negative_nan_is_0x7f(x, r.e5m2_sat));
        // The non-saturating casts agree with ours wherever the input is in range.
        if x.abs() <= 448.0 {
            check("e4m3fn vs torch", cv::f32_to_e4m3fn_sat(x), r.e4m3_torch);
            check("e4m3fn vs ml_dtypes", cv::f32_to_e4m3fn_sat(x), r.e4m3_mldtypes);
        }
        // E2M1 has no NaN: lowp maps NaN to ±6 (documented), ml_dtypes to 0x8.
        if !x.is_nan() {
            check("e2m1_sat", cv::f32_to_e2m1_sat(x), r.e2m1_sat);
        }
        // Decoding is exact: every code decodes to a value that encodes back to itself.
        let d = cv::e4m3fn_to_f32(r.e4m3_sat);
        if !d.is_nan() {
            check("e4m3fn round trip", cv::f32_to_e4m3fn_sat(d), r.e4m3_sat);
        }
        let d = cv::e5m2_to_f32(r.e5m2_sat);
        if !d.is_nan() {
            check("e5m2 round trip", cv::f32_to_e5m2_sat(d), r.e5m2_sat);
        }
        // ml_dtypes' e8m0 cast rounds |x| to the nearest power of two (in the mantissa, ties up);
        // ours rounds down (floor) or up (ceil): the reference must lie between the two.
        let a = x.abs();
        if a.is_finite() && a >= f32::MIN_POSITIVE && r.e8m0 != 0xff {
            let (lo, hi) = (cv::f32_to_ue8m0_floor(a), cv::f32_to_ue8m0_ceil(a));
            if !(lo <= r.e8m0 && r.e8m0 <= hi) {
                failures
                    .push(format!("ue8m0({a:e}): ml_dtypes {:#04x} outside [floor {lo:#04x}, ceil {hi:#04x}]", r.e8m0));
            }
            if cv::ue8m0_to_f32(lo) > a || cv::ue8m0_to_f32(hi) < a {
                failures.push(format!("ue8m0({a:e}): floor/ceil do not bracket the input"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} mismatches, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(20)]
    );
}

#[test]
fn conversions_match_pytorch_and_ml_dtypes_f32_inputs() {
    check_all("conversions_f32.csv");
}

#[test]
fn conversions_match_pytorch_and_ml_dtypes_bf16_inputs() {
    check_all("conversions_bf16.csv");
}

#[test]
fn every_fp8_and_fp4_code_decodes_and_re_encodes_to_itself() {
    for code in 0..=255u8 {
        let v = cv::e4m3fn_to_f32(code);
        if code & 0x7f == 0x7f {
            assert!(v.is_nan(), "e4m3 {code:#04x}");
        } else {
            assert_eq!(cv::f32_to_e4m3fn_sat(v), code, "e4m3 {code:#04x} = {v}");
        }
        let v = cv::e5m2_to_f32(code);
        if code & 0x7f > 0x7c {
            assert!(v.is_nan(), "e5m2 {code:#04x}");
        } else if code & 0x7f == 0x7c {
            assert!(v.is_infinite(), "e5m2 {code:#04x}");
        } else {
            assert_eq!(cv::f32_to_e5m2_sat(v), code, "e5m2 {code:#04x} = {v}");
        }
    }
    let grid = [0.0f32, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0];
    for code in 0..16u8 {
        let v = cv::e2m1_to_f32(code);
        let want = if code & 8 != 0 { -grid[(code & 7) as usize] } else { grid[code as usize] };
        assert_eq!(v.to_bits(), want.to_bits(), "e2m1 {code:#x}");
        assert_eq!(cv::f32_to_e2m1_sat(v), code, "e2m1 {code:#x}");
    }
    for code in 0..255u8 {
        let v = cv::ue8m0_to_f32(code);
        assert_eq!(cv::f32_to_ue8m0_floor(v), code, "ue8m0 floor {code}");
        assert_eq!(cv::f32_to_ue8m0_ceil(v), code, "ue8m0 ceil {code}");
    }
    assert!(cv::ue8m0_to_f32(0xff).is_nan());
}

/// NaNs of both signs and several payloads (quiet and signalling, the smallest and largest).
const NANS: [u32; 8] =
    [0x7fc0_0000, 0xffc0_0000, 0x7f80_0001, 0xff80_0001, 0x7fbf_ffff, 0xffbf_ffff, 0x7fff_ffff, 0xffff_ffff];

#[test]
fn every_fp8_nan_encodes_as_0x7f_whatever_its_sign() {
    for bits in NANS {
        let x = f32::from_bits(bits);
        assert_eq!(cv::f32_to_e4m3fn_sat(x), 0x7f, "e4m3fn({bits:#010x})");
        assert_eq!(cv::f32_to_e5m2_sat(x), 0x7f, "e5m2({bits:#010x})");
        assert_eq!(lowp::reference::microscaling::e4m3_by_value(x), 0x7f, "e4m3_by_value({bits:#010x})");
    }
}

#[test]
fn bf16_rounding_matches_the_half_crate() {
    let mut rng = common::Rng::fresh("bf16_rounding_matches_the_half_crate");
    for _ in 0..200_000 {
        let x = f32::from_bits(rng.next_u64() as u32);
        let ours = cv::f32_to_bf16_bits(x);
        let theirs = half::bf16::from_f32(x).to_bits();
        if x.is_nan() {
            assert!(half::bf16::from_bits(ours).is_nan(), "{x:e}");
        } else {
            assert_eq!(ours, theirs, "{x:e} ({:#010x})", x.to_bits());
        }
        let h = half::f16::from_bits(rng.next_u64() as u16);
        let a = cv::f16_bits_to_f32(h.to_bits());
        if h.is_nan() {
            assert!(a.is_nan());
        } else {
            assert_eq!(a.to_bits(), h.to_f32().to_bits(), "f16 {:#06x}", h.to_bits());
        }
    }
}

/// Device casts (`cvt` on sm_89+ for FP8, the software path elsewhere) against the host
/// reference, on the test-vector inputs and NaNs of both signs plus fresh random bit patterns
/// (fewer on the simulator).
#[test]
fn device_casts_match_the_reference_bit_for_bit() {
    let lowp = common::gpu("device_casts_match_the_reference_bit_for_bit");
    let stream = lowp.new_stream().expect("stream");
    let mut rng = common::Rng::fresh("device_casts_match_the_reference_bit_for_bit");
    let mut inputs: Vec<f32> = load("conversions_f32.csv").iter().map(|r| r.input).collect();
    inputs.extend(NANS.map(f32::from_bits));
    let random = common::sized(&lowp, 100_000, 20_000);
    inputs.extend((0..random).map(|_| f32::from_bits(rng.next_u64() as u32)));
    if inputs.len() % 2 == 1 {
        inputs.push(1.0);
    }
    let n = inputs.len();
    let src = stream.clone_htod(&inputs).expect("htod");

    /// Poison: every output byte starts as 0xa5.
    fn poisoned<D: lowp::Element>(stream: &Arc<CudaStream>, units: usize) -> CudaSlice<D> {
        let poison: D = bytemuck::cast_slice::<u8, D>(&vec![0xa5u8; std::mem::size_of::<D>()])[0];
        stream.clone_htod(&vec![poison; units]).expect("htod")
    }
    fn back<D: lowp::Element>(stream: &Arc<CudaStream>, out: &CudaSlice<D>) -> Vec<D> {
        stream.synchronize().expect("sync");
        stream.clone_dtoh(out).expect("dtoh")
    }
    fn run<D: CastTarget>(lowp: &Lowp, stream: &Arc<CudaStream>, x: &CudaSlice<f32>, units: usize) -> Vec<D> {
        let mut out = poisoned::<D>(stream, units);
        cast::cast(lowp, stream, x, &mut out).expect("cast launch");
        back(stream, &out)
    }
    fn run_ue8m0(
        lowp: &Lowp,
        stream: &Arc<CudaStream>,
        x: &CudaSlice<f32>,
        units: usize,
        rounding: ScaleRounding,
    ) -> Vec<Ue8m0> {
        let mut out = poisoned::<Ue8m0>(stream, units);
        cast::cast_ue8m0(lowp, stream, x, rounding, &mut out).expect("cast_ue8m0 launch");
        back(stream, &out)
    }
    let mut bad = Vec::new();
    let e4: Vec<F8E4M3> = run(&lowp, &stream, &src, n);
    let e5: Vec<F8E5M2> = run(&lowp, &stream, &src, n);
    let bf: Vec<half::bf16> = run(&lowp, &stream, &src, n);
    let fh: Vec<half::f16> = run(&lowp, &stream, &src, n);
    let uf = run_ue8m0(&lowp, &stream, &src, n, ScaleRounding::Floor);
    let uc = run_ue8m0(&lowp, &stream, &src, n, ScaleRounding::Ceil);
    let f4: Vec<F4E2M1x2> = run(&lowp, &stream, &src, n / 2);
    for (i, &x) in inputs.iter().enumerate() {
        let mut eq = |what: &str, got: u32, want: u32| {
            if got != want {
                bad.push(format!("{what}({x:e} = {:#010x}): device {got:#x}, reference {want:#x}", x.to_bits()));
            }
        };
        eq("e4m3fn", e4[i].to_bits() as u32, cv::f32_to_e4m3fn_sat(x) as u32);
        eq("e5m2", e5[i].to_bits() as u32, cv::f32_to_e5m2_sat(x) as u32);
        eq("ue8m0_floor", uf[i].0 as u32, cv::f32_to_ue8m0_floor(x) as u32);
        eq("ue8m0_ceil", uc[i].0 as u32, cv::f32_to_ue8m0_ceil(x) as u32);
        if !x.is_nan() {
            eq("bf16", bf[i].to_bits() as u32, cv::f32_to_bf16_bits(x) as u32);
            eq("f16", fh[i].to_bits() as u32, half::f16::from_f32(x).to_bits() as u32);
        } else {
            eq("bf16 NaN", bf[i].is_nan() as u32, 1);
            eq("f16 NaN", fh[i].is_nan() as u32, 1);
        }
        let nib = if i % 2 == 0 { f4[i / 2].0 & 0xf } else { f4[i / 2].0 >> 4 };
        eq("e2m1", nib as u32, cv::f32_to_e2m1_sat(x) as u32);
    }
    assert!(
        bad.is_empty(),
        "{} mismatches ({} module), first: {:#?}",
        bad.len(),
        lowp.arch().name(),
        &bad[..bad.len().min(20)]
    );
}

#[test]
fn device_casts_reject_bad_arguments_naming_them() {
    let lowp = common::gpu("device_casts_reject_bad_arguments_naming_them");
    let stream = lowp.new_stream().expect("stream");
    let x = stream.clone_htod(&[1.0f32, 2.0, 3.0]).expect("htod");
    // UE8M0 holds powers of two: the exact rounding has no meaning for it
    let mut scales = stream.alloc_zeros::<Ue8m0>(3).expect("alloc");
    let e = cast::cast_ue8m0(&lowp, &stream, &x, ScaleRounding::Exact, &mut scales).unwrap_err();
    assert!(matches!(e, Error::InvalidValue { arg: "rounding", .. }), "{e}");
    // one output element per input
    let mut short = stream.alloc_zeros::<half::bf16>(2).expect("alloc");
    let e = cast::cast(&lowp, &stream, &x, &mut short).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    assert!(e.to_string().contains("3 elements of bf16"), "{e}");
    let mut long = stream.alloc_zeros::<Ue8m0>(4).expect("alloc");
    let e = cast::cast_ue8m0(&lowp, &stream, &x, ScaleRounding::Floor, &mut long).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "out", .. }), "{e}");
    assert!(e.to_string().contains("3 elements of ue8m0"), "{e}");
    // packed FP4: two inputs per byte, so an odd count is refused
    let mut fp4 = stream.alloc_zeros::<F4E2M1x2>(1).expect("alloc");
    let e = cast::cast(&lowp, &stream, &x, &mut fp4).unwrap_err();
    assert!(matches!(e, Error::Shape { arg: "x", .. }), "{e}");
    // empty vectors are a no-op
    let empty = stream.alloc_zeros::<f32>(0).expect("alloc");
    let mut none = stream.alloc_zeros::<F8E4M3>(0).expect("alloc");
    cast::cast(&lowp, &stream, &empty, &mut none).expect("empty cast");
    stream.synchronize().expect("sync");
}
