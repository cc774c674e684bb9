//! The simulator's Hopper model (`sim/src/exec/hopper.rs`, `sim/src/tma.rs`) against a second
//! source written by someone else: CUTLASS's `cute` definitions, transcribed as data in
//! `probe_kernels/cute.rs` (which cites the file and definition of each), and the PTX ISA's
//! mbarrier semantics. Everything runs through the executor (`Sim::launch`) with the probe
//! kernels of `sim/tests/probe_kernels`, the same kernels `sim/examples/goldens.rs` runs on
//! hardware:
//!
//! - wgmma: the accumulator fragment of m64n128k16 (bf16) and m64n128k32 (e4m3) against
//!   `CLayout_64x128`, with operands placed by the canonical K-major layouts of
//!   `make_gmma_desc<Major::K>` and `Swizzle<B,4,3>`; and descriptors built from
//!   `GmmaDescriptor`'s bit fields with random start addresses, leading / stride byte offsets
//!   and all four layout types (so descriptor decoding, K-major addressing and the swizzles are
//!   checked against cute end to end);
//! - TMA: boxes in each swizzle mode, partly out of bounds, against `Swizzle<B,4,3>` and zero
//!   fill;
//! - mbarrier: phase / parity sequences against the PTX ISA.

mod probe_kernels;

use probe_kernels::cute::{self, LAYOUT_B32, LAYOUT_B64, LAYOUT_B128, LAYOUT_INTERLEAVE};
use probe_kernels::{Operand, SimGpu, TMA_BOX_ROWS, TMA_MAPS, TMA_SLOT};

/// xorshift64*: reproducible random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Checks every accumulator register of a wgmma probe: thread t's register i holds the element
/// (m, n) = `CLayout_64x128(t, i)` of `d`.
fn check_fragment(out: &[u8], d: fn(u64, u64) -> f32) {
    let mut seen = std::collections::HashSet::new();
    for t in 0..128u64 {
        for i in 0..64u64 {
            let o = 4 * (64 * t + i) as usize;
            let got = f32::from_le_bytes(out[o..o + 4].try_into().unwrap());
            let (m, n) = cute::c_layout_64xn(128, t, i);
            assert_eq!(
                got.to_bits(),
                d(m, n).to_bits(),
                "thread {t} register {i}: cute's CLayout_64x128 says D[{m}][{n}] = {}, got {got}",
                d(m, n)
            );
            assert!(seen.insert(got.to_bits()), "the code must tell every element apart");
        }
    }
}

#[test]
fn wgmma_bf16_fragment_matches_cute_clayout() {
    let p = probe_kernels::wgmma_bf16(&mut SimGpu::new()).unwrap();
    check_fragment(&p.output, probe_kernels::bf16_d);
}

#[test]
fn wgmma_e4m3_fragment_matches_cute_clayout() {
    let p = probe_kernels::wgmma_e4m3(&mut SimGpu::new()).unwrap();
    check_fragment(&p.output, probe_kernels::e4m3_d);
}

/// A random placement of A and B in a `size`-byte tile for layout type `layout`, and its image;
/// `None` when the two operands would overlap (the caller draws again).
fn random_operands(
    rng: &mut Rng,
    layout: u64,
    size: usize,
    elem: u64,
    a: fn(u64, u64) -> u16,
    b: fn(u64, u64) -> u16,
) -> Option<(Operand, Operand, Vec<u8>)> {
    let mut pick = |rows: u64| {
        if layout == LAYOUT_INTERLEAVE {
            // Core matrices of 8 rows × 16 bytes: K chunks LBO apart, 8-row groups SBO apart.
            let (lbo, sbo) = (128 * (1 + rng.below(40)), 128 * (1 + rng.below(40)));
            Operand { layout, start: 128 * rng.below(size as u64 / 128 - rows / 8), lbo, sbo }
        } else {
            // Swizzle atoms of 8 rows × span bytes, SBO a multiple of the atom; the start at an
            // atom plus a 32-byte K block inside the row (how a K loop advances it); LBO unused
            // ("assumed to be 1"), so random.
            let span = [0, 128, 64, 32][layout as usize];
            let atom = 8 * span;
            let kblock = 32 * rng.below(span / 32);
            let sbo = atom * (1 + rng.below(3));
            let start = atom * rng.below((size as u64 - rows / 8 * sbo) / atom) + kblock;
            Operand { layout, start, lbo: 16 * rng.below(1 << 14), sbo }
        }
    };
    let (oa, ob) = (pick(64), pick(128));
    probe_kernels::wgmma_image(size, elem, oa, ob, a, b).map(|img| (oa, ob, img))
}

#[test]
fn wgmma_descriptors_from_cute_bit_fields_in_every_layout() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut g = SimGpu::new();
    // Bits no field of GmmaDescriptor covers: [14,16), [30,32), [46,49), [52,62).
    let unused: u64 = (0b11 << 14) | (0b11 << 30) | (0b111 << 46) | (0x3ff << 52);
    assert_eq!(cute::gmma_desc((1 << 14) - 1, (1 << 14) - 1, (1 << 14) - 1, 7, 3) & unused, 0);
    let size = 40 << 10;
    for layout in [LAYOUT_INTERLEAVE, LAYOUT_B32, LAYOUT_B64, LAYOUT_B128] {
        for trial in 0..8 {
            type Gen<T> = fn(u64, u64) -> T;
            let (kernel, elem, a, b, d): (_, _, Gen<u16>, Gen<u16>, Gen<f32>) = if trial < 6 {
                ("wgmma_bf16", 2, probe_kernels::bf16_a, probe_kernels::bf16_b, probe_kernels::bf16_d)
            } else {
                ("wgmma_e4m3", 1, probe_kernels::e4m3_a, probe_kernels::e4m3_b, probe_kernels::e4m3_d)
            };
            let (oa, ob, img) = (0..1000)
                .find_map(|_| random_operands(&mut rng, layout, size, elem, a, b))
                .expect("a placement without overlap");
            // The descriptor as cute's bit fields build it; odd trials also set every bit no
            // field covers, which decoding ignores.
            let junk = if trial % 2 == 1 { unused } else { 0 };
            let out = probe_kernels::run_wgmma(&mut g, kernel, &img, oa.desc() | junk, ob.desc() | junk)
                .unwrap_or_else(|e| panic!("{oa:?} {ob:?}: {e}"));
            check_fragment(&out, d);
        }
    }
}

#[test]
fn operand_codes_are_what_they_claim() {
    // The one-hot / bit-plane codes give D = A·Bᵀ as documented (computed here from the codes,
    // independently of any layout).
    let bf16 = |b: u16| f32::from_bits((b as u32) << 16);
    let e4m3 = |b: u16| if b == 0 { 0.0 } else { ((b >> 3) as f32 - 7.0).exp2() };
    for m in 0..64 {
        for n in 0..128 {
            let d: f32 = (0..16).map(|k| bf16(probe_kernels::bf16_a(m, k)) * bf16(probe_kernels::bf16_b(n, k))).sum();
            assert_eq!(d, probe_kernels::bf16_d(m, n));
            let d: f32 = (0..32).map(|k| e4m3(probe_kernels::e4m3_a(m, k)) * e4m3(probe_kernels::e4m3_b(n, k))).sum();
            assert_eq!(d, probe_kernels::e4m3_d(m, n));
        }
    }
}

#[test]
fn tma_boxes_match_cute_swizzle_and_fill_out_of_bounds_with_zeros() {
    let p = probe_kernels::tma(&mut SimGpu::new()).unwrap();
    let mut want = vec![0xeeu8; probe_kernels::tma_region() as usize];
    for (map, x0, y0, dst) in probe_kernels::tma_copies() {
        let (swizzle, w) = TMA_MAPS[map as usize];
        let b = [0, 1, 2, 3][swizzle as usize];
        let row_bytes = 2 * w as u64;
        for by in 0..TMA_BOX_ROWS as i64 {
            for bx in 0..w as i64 {
                let (x, y) = (x0 as i64 + bx, y0 as i64 + by);
                let inside = (0..probe_kernels::TMA_DIMS[0] as i64).contains(&x)
                    && (0..probe_kernels::TMA_DIMS[1] as i64).contains(&y);
                let v = if inside { probe_kernels::tma_value(x as u64, y as u64) } else { 0 };
                // The box is packed row after row; the swizzle permutes the 16-byte chunks by
                // address (every destination is 1024-byte aligned, so by offset).
                for (j, byte) in v.to_le_bytes().into_iter().enumerate() {
                    let logical = by as u64 * row_bytes + 2 * bx as u64 + j as u64;
                    want[(dst as u64 + cute::swizzle(b, 4, 3, logical)) as usize] = byte;
                }
            }
        }
        assert!(TMA_BOX_ROWS as u64 * row_bytes <= TMA_SLOT);
    }
    for (o, (&g, &w)) in p.output.iter().zip(&want).enumerate() {
        let slot = o as u64 / TMA_SLOT;
        assert_eq!(
            g,
            w,
            "byte {o} (map {}, copy {} {:?}): got {g:#04x}, want {w:#04x}",
            slot / 3,
            slot % 3,
            probe_kernels::tma_copies()[slot as usize]
        );
    }
}

/// Checks an mbarrier probe's output: thread 0's flags, the two-warp part, the copied bytes.
fn check_mbarrier(out: &[u8], flags: &[u32]) {
    let word = |i: usize| u32::from_le_bytes(out[4 * i..4 * i + 4].try_into().unwrap());
    let got: Vec<u32> = (0..flags.len()).map(word).collect();
    assert_eq!(got, flags, "thread 0's wait results");
    for t in 0..64 {
        for k in 0..4 {
            assert_eq!(
                word(32 + 4 * t + k),
                1,
                "thread {t}, phase {k}: the completed phase's parity tests true, the next one's false"
            );
        }
    }
    assert_eq!(&out[2048..], &probe_kernels::mbarrier_tensor()[..512], "the two copies' bytes");
}

/// Phase flips, waits on completed phases (current parity after the flip, and the previous
/// phase's), `expect_tx` / `arrive.expect_tx` with TMA completion, two warps over four phases.
#[test]
fn mbarrier_completed_phases_follow_the_ptx_isa() {
    let p = probe_kernels::mbarrier_completions(&mut SimGpu::new()).unwrap();
    check_mbarrier(&p.output, &probe_kernels::MBARRIER_COMPLETIONS);
}

/// The whole sequence, polls of the current (incomplete) phase included: `test_wait` never
/// blocks and `try_wait` returns false after its time limit, so one thread may poll and then
/// arrive itself.
#[test]
fn mbarrier_parity_sequence_follows_the_ptx_isa() {
    let p = probe_kernels::mbarrier(&mut SimGpu::new()).unwrap();
    check_mbarrier(&p.output, &probe_kernels::MBARRIER_FLAGS);
}

/// The smallest case: one thread polls a fresh barrier (count 1) with `test_wait`, which must
/// return false at once (PTX ISA: "test_wait is a non-blocking instruction"), then arrives and
/// polls again.
#[test]
fn test_wait_does_not_block() {
    let ptx = r#"
.version 8.0
.target sm_90a
.address_size 64
.extern .shared .align 16 .b8 smem[];
.visible .entry poll(.param .u64 out)
{
    .reg .pred %p<2>;
    .reg .b32 %r<4>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [out];
    mov.u32 %r1, smem;
    mov.u32 %r2, 1;
    mbarrier.init.shared::cta.b64 [%r1], %r2;
    mbarrier.test_wait.parity.shared::cta.b64 %p1, [%r1], 0;
    selp.u32 %r3, 1, 0, %p1;
    st.global.u32 [%rd1], %r3;
    mbarrier.arrive.shared::cta.b64 _, [%r1];
    mbarrier.test_wait.parity.shared::cta.b64 %p1, [%r1], 0;
    selp.u32 %r3, 1, 0, %p1;
    st.global.u32 [%rd1+4], %r3;
    ret;
}
"#;
    use probe_kernels::Gpu;
    let mut g = SimGpu::new();
    let out = g.upload(&[0xff; 8]).unwrap();
    g.launch(ptx, "poll", 1, 1, 16, &[out]).unwrap();
    assert_eq!(g.download(out, 8).unwrap(), [0, 0, 0, 0, 1, 0, 0, 0]);
}
