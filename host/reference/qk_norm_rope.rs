//! Float64 reference of the attention prologue, written as the unfused Hugging Face formulas:
//! `Qwen3RMSNorm` per head (without its intermediate bf16 rounding; `GemmaRMSNorm`'s `1 + w`
//! weights as an option), then `apply_rotary_pos_emb` with `rotate_half` (NeoX) or the
//! interleaved GPT-J rotation, partial rotary passing the tail through; multimodal rotary
//! embeddings as vLLM's `MRotaryEmbedding` (positions `[3, tokens]`, each section of frequencies
//! rotating by its own row).

use crate::Half;

/// Where cos and sin come from.
#[derive(Clone, Copy, Debug)]
pub enum RefRotary<'a> {
    /// `[max_pos, rotary_dim]` f32, cos | sin; positions clamped into `[0, max_pos)`.
    Cache {
        /// The cache, `max_pos · rotary_dim` values.
        cos_sin: &'a [f32],
        /// Rows of the cache.
        max_pos: usize,
    },
    /// cos/sin of `pos · inv_freq[i]` times `attention_factor`, evaluated in f64.
    Freq {
        /// `rotary_dim / 2` angular frequencies.
        inv_freq: &'a [f64],
        /// The factor of cos and sin.
        attention_factor: f64,
    },
}

/// The shape and options of the reference.
#[derive(Clone, Copy, Debug)]
pub struct RefConfig {
    /// Query heads `Hq`.
    pub num_q_heads: usize,
    /// Key and value heads `Hk`.
    pub num_kv_heads: usize,
    /// Elements per head `D`.
    pub head_dim: usize,
    /// Leading elements of each head that rotate (even, `<= head_dim`).
    pub rotary_dim: usize,
    /// GPT-J's interleaved pairs instead of NeoX's halves.
    pub gptj: bool,
    /// The norm's epsilon.
    pub eps: f32,
    /// Whether the heads are normalized (`qk_norm_rope`, `head_rmsnorm`).
    pub norm: bool,
    /// Whether the heads rotate (`qk_norm_rope`, `rope`).
    pub rope: bool,
    /// The norm multiplies by `1 + w` (Gemma) instead of `w`.
    pub one_plus_weight: bool,
    /// mRoPE section sizes (summing to `rotary_dim / 2`); positions are then `[3, tokens]`.
    pub mrope_section: Option<[usize; 3]>,
}

/// One output element: its value and the magnitude of the terms that formed it (`|n_i cos| +
/// |n_p sin|`, or `|n_i|` where nothing rotates), for error bounds under cancellation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RefValue {
    /// The exact (float64) output.
    pub value: f64,
    /// `|n_i cos| + |n_p sin|`, or `|n_i|` where nothing rotates.
    pub magnitude: f64,
}

/// q `[tokens, Hq·D]` and k `[tokens, Hk·D]` (dense) from `qkv` rows at `stride`; `positions`
/// has one entry per token, or `3 · tokens` (`[3, tokens]`) with mRoPE.
#[allow(clippy::too_many_arguments)]
pub fn qk_norm_rope<T: Half>(
    cfg: &RefConfig,
    qkv: &[T],
    tokens: usize,
    stride: usize,
    q_weight: &[T],
    k_weight: &[T],
    positions: &[i64],
    rotary: RefRotary<'_>,
) -> (Vec<RefValue>, Vec<RefValue>) {
    let d = cfg.head_dim;
    let mut q = Vec::with_capacity(tokens * cfg.num_q_heads * d);
    let mut k = Vec::with_capacity(tokens * cfg.num_kv_heads * d);
    for t in 0..tokens {
        let row = &qkv[t * stride..];
        for h in 0..cfg.num_q_heads + cfg.num_kv_heads {
            let x: Vec<f64> = row[h * d..(h + 1) * d].iter().map(|v| v.to_f64()).collect();
            let w = if h < cfg.num_q_heads { q_weight } else { k_weight };
            let n = if cfg.norm { rms_norm_weighted(&x, w, cfg.eps, cfg.one_plus_weight) } else { x };
            let pos = if cfg.mrope_section.is_some() {
                [positions[t], positions[tokens + t], positions[2 * tokens + t]]
            } else {
                [positions[t]; 3]
            };
            let y = if cfg.rope {
                rotate(cfg, &n, pos, rotary)
            } else {
                n.iter().map(|&v| RefValue { value: v, magnitude: v.abs() }).collect()
            };
            if h < cfg.num_q_heads { q.extend(y) } else { k.extend(y) }
        }
    }
    (q, k)
}

/// `x / sqrt(mean(x²) + eps) * w`.
pub fn rms_norm<T: Half>(x: &[f64], w: &[T], eps: f32) -> Vec<f64> {
    rms_norm_weighted(x, w, eps, false)
}

/// `x / sqrt(mean(x²) + eps) * w`, or `* (1 + w)` when `one_plus` (Gemma).
pub fn rms_norm_weighted<T: Half>(x: &[f64], w: &[T], eps: f32, one_plus: bool) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms + eps as f64).sqrt();
    let offset = if one_plus { 1.0 } else { 0.0 };
    x.iter().zip(w).map(|(v, w)| v * inv * (offset + w.to_f64())).collect()
}

/// The mRoPE section (0, 1 or 2) of frequency `f`.
pub fn mrope_row(section: [usize; 3], f: usize) -> usize {
    if f < section[0] {
        0
    } else if f < section[0] + section[1] {
        1
    } else {
        2
    }
}

/// `(cos, sin)` of frequency `i` at `pos` (clamped into a cache).
pub fn cos_sin(rotary: RefRotary<'_>, rotary_dim: usize, pos: i64, i: usize) -> (f64, f64) {
    match rotary {
        RefRotary::Cache { cos_sin, max_pos } => {
            let p = pos.clamp(0, max_pos as i64 - 1) as usize;
            (cos_sin[p * rotary_dim + i] as f64, cos_sin[p * rotary_dim + rotary_dim / 2 + i] as f64)
        }
        RefRotary::Freq { inv_freq, attention_factor } => {
            let a = pos as f64 * inv_freq[i];
            (a.cos() * attention_factor, a.sin() * attention_factor)
        }
    }
}

/// `pos`: the token's position per mRoPE row (all three equal without mRoPE).
fn rotate(cfg: &RefConfig, n: &[f64], pos: [i64; 3], rotary: RefRotary<'_>) -> Vec<RefValue> {
    let r = cfg.rotary_dim;
    let half = r / 2;
    (0..n.len())
        .map(|i| {
            if i >= r {
                return RefValue { value: n[i], magnitude: n[i].abs() };
            }
            // q·cos + rotate(q)·sin, with rotate_half = [-x2, x1] (NeoX) or the pairwise
            // [-x_{2i+1}, x_{2i}] (GPT-J), cos/sin repeated to the rotary width accordingly.
            let (f, partner, sign) = if cfg.gptj {
                (i / 2, i ^ 1, if i % 2 == 0 { -1.0 } else { 1.0 })
            } else if i < half {
                (i, i + half, -1.0)
            } else {
                (i - half, i - half, 1.0)
            };
            let row = cfg.mrope_section.map_or(0, |sec| mrope_row(sec, f));
            let (c, s) = cos_sin(rotary, r, pos[row], f);
            RefValue { value: n[i] * c + sign * n[partner] * s, magnitude: (n[i] * c).abs() + (n[partner] * s).abs() }
        })
        .collect()
}
