//! Benchmark cases of the `qk_norm_rope` family (`lowp::qk_norm_rope`): the Qwen3-style prologue
//! at T = 16384, Hq = 32, Hk = 8, D = 128 in place (cached and computed cos/sin), and decode
//! batches T = 1…64, read against the launch floor `empty_kernel/f32/1x1`.

use lowp::cudarc::driver::CudaView;
use lowp::qk_norm_rope::{
    self as qnr, NormWeight, QkNormRopeSettings, Qkv, RopeFrequencies, RopeScaling, RopeStyle, Rotary,
};

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str =
    "qk_norm_rope = q and k heads read and written once + the cos/sin cache rows read (T · rotary_dim · 4) + positions";

const MAX_POS: usize = 32768;

pub(crate) fn cases() -> Vec<Case> {
    let mut v = Vec::new();
    for computed in [false, true] {
        v.push(qk_case::<bf16>(16384, 32, 8, 128, computed));
    }
    v.push(qk_case::<f16>(16384, 32, 8, 128, false));
    // decode batches: read against `empty_kernel/f32/1x1`, the launch floor
    for t in [1, 8, 64] {
        v.push(qk_case::<bf16>(t, 32, 8, 128, false));
    }
    v
}

/// `qk_norm_rope/<dtype>/<tokens>x<Hq>-<Hk>x<D>`, `/computed` for cos/sin computed in the kernel.
fn qk_case<T: Half>(tokens: usize, hq: usize, hk: usize, d: usize, computed: bool) -> Case {
    Case::new(
        "qk_norm_rope",
        T::DTYPE,
        format!("{tokens}x{hq}-{hk}x{d}"),
        Box::new(move |b| bench_qk::<T>(b, tokens, hq, hk, d, computed)),
    )
    .variant(computed.then_some("computed"))
}

fn bench_qk<T: Half>(
    b: &mut Bench,
    tokens: usize,
    hq: usize,
    hk: usize,
    d: usize,
    computed: bool,
) -> BoxResult<Outcome> {
    let elem = std::mem::size_of::<T>();
    let cols = (hq + 2 * hk) * d;
    let n = tokens * cols;
    let sets = sets_for(n * elem, b.l2_bytes);
    if let Some(why) = b.lacks_memory(sets * n * elem + MAX_POS * d * 4)? {
        return Ok(Outcome::Skipped(why));
    }
    let cfg = QkNormRopeSettings {
        num_q_heads: hq,
        num_kv_heads: hk,
        head_dim: d,
        rotary_dim: d,
        style: RopeStyle::NeoX,
        eps: 1e-6,
        weight: NormWeight::Plain,
        mrope_section: None,
    };
    let seed = ((tokens as u64) << 20) ^ d as u64;
    let mut qkv = b.random::<T>(sets * n, seed ^ 1)?;
    let qw = b.random::<T>(d, seed ^ 2)?;
    let kw = b.random::<T>(d, seed ^ 3)?;
    let mut rng = SplitMix64(seed);
    let pos: Vec<i32> = (0..sets * tokens).map(|_| (rng.next_u64() % MAX_POS as u64) as i32).collect();
    let pos = b.stream.clone_htod(&pos)?;
    let (inv, attn) = qnr::rope_inv_freq(d, 1e6, RopeScaling::None)?;
    let cache = b.stream.clone_htod(&qnr::cos_sin_cache(&inv, attn, MAX_POS))?;
    let freqs = RopeFrequencies::new(&b.stream, d, 1e6, RopeScaling::None)?;
    // q and k read and written; the cache rows read (none in the computed form); positions.
    let qk_bytes = tokens * (hq + hk) * d * elem * 2;
    let bytes = (qk_bytes + if computed { 0 } else { tokens * d * 4 } + tokens * 4) as u64;

    let (lowp, stream) = (b.lowp.clone(), b.stream.clone());
    let timing = b.timer.time(sets, |i| -> lowp::Result<()> {
        let view = qkv.slice_mut(i * n..(i + 1) * n);
        let p: CudaView<'_, i32> = pos.slice(i * tokens..(i + 1) * tokens);
        let rotary =
            if computed { Rotary::Computed(&freqs) } else { Rotary::Cache { cos_sin: &cache, max_pos: MAX_POS } };
        let mut qkv_i = Matrix::from_buffer(view, tokens, cols)?;
        qnr::qk_norm_rope(&lowp, &stream, &qw, &kw, &p, rotary, &cfg, Qkv::InPlace(&mut qkv_i), None, None)
    })?;
    Ok(Outcome::Done { timing, bytes, flops: 0, sets })
}
