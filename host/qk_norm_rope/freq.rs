//! Rotary frequencies on the host (default, linear and YaRN scaling), the cos/sin cache built
//! from them, and their upload for rotary embeddings computed in the kernel.

use std::sync::Arc;

use cudarc::driver::{CudaSlice, CudaStream};

use crate::error::{CudaResultExt, Error, Result};

/// Frequency scaling of computed rotary embeddings (Hugging Face `rope_scaling`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RopeScaling {
    /// The default frequencies `base^(-2i / rotary_dim)`.
    None,
    /// Positions divided by `factor` (frequencies too, equivalently).
    Linear {
        /// The divisor, finite and `> 0`.
        factor: f64,
    },
    /// YaRN: frequencies blended between interpolated and extrapolated by a ramp over
    /// `[beta_slow, beta_fast]` rotations, cos and sin scaled by `attention_factor`
    /// (default `0.1 · ln(factor) + 1`).
    Yarn {
        /// The context extension factor, finite and `> 0`.
        factor: f64,
        /// The context length the model was trained with.
        original_max_position: usize,
        /// Rotations over the original context above which a frequency is kept (extrapolated).
        beta_fast: f64,
        /// Rotations over the original context below which a frequency is divided by `factor`.
        beta_slow: f64,
        /// The factor of cos and sin; `None`: `0.1 · ln(factor) + 1` (1 for `factor <= 1`).
        attention_factor: Option<f64>,
    },
}

/// Angular frequencies `θ_i` (f64, `rotary_dim / 2` of them) and the cos/sin factor, on the host.
/// Follows Hugging Face `_compute_default_rope_parameters`, `_compute_linear_scaling_rope_parameters`
/// and `_compute_yarn_parameters` (computed in f64 here).
///
/// ```
/// use lowp::qk_norm_rope::{rope_inv_freq, RopeScaling};
/// let (inv_freq, attention) = rope_inv_freq(128, 1e6, RopeScaling::Linear { factor: 2.0 })?;
/// assert_eq!((inv_freq.len(), inv_freq[0], attention), (64, 0.5, 1.0));
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn rope_inv_freq(rotary_dim: usize, base: f64, scaling: RopeScaling) -> Result<(Vec<f64>, f64)> {
    if rotary_dim < 2 || rotary_dim % 2 != 0 {
        return Err(Error::InvalidValue {
            arg: "rotary_dim",
            expected: "an even number >= 2",
            actual: rotary_dim.to_string(),
        });
    }
    if !(base.is_finite() && base > 1.0) {
        return Err(Error::InvalidValue { arg: "base", expected: "a finite value > 1", actual: base.to_string() });
    }
    let half = rotary_dim / 2;
    let pos_freq: Vec<f64> = (0..half).map(|i| base.powf(2.0 * i as f64 / rotary_dim as f64)).collect();
    let check_factor = |factor: f64| {
        if factor.is_finite() && factor > 0.0 {
            Ok(())
        } else {
            Err(Error::InvalidValue {
                arg: "scaling.factor",
                expected: "a finite value > 0",
                actual: factor.to_string(),
            })
        }
    };
    match scaling {
        RopeScaling::None => Ok((pos_freq.iter().map(|p| 1.0 / p).collect(), 1.0)),
        RopeScaling::Linear { factor } => {
            check_factor(factor)?;
            Ok((pos_freq.iter().map(|p| 1.0 / p / factor).collect(), 1.0))
        }
        RopeScaling::Yarn { factor, original_max_position, beta_fast, beta_slow, attention_factor } => {
            check_factor(factor)?;
            let attention = attention_factor.unwrap_or(if factor <= 1.0 { 1.0 } else { 0.1 * factor.ln() + 1.0 });
            // Dimension at which a frequency completes `rotations` turns over the original context.
            let correction_dim = |rotations: f64| {
                rotary_dim as f64 * (original_max_position as f64 / (rotations * 2.0 * std::f64::consts::PI)).ln()
                    / (2.0 * base.ln())
            };
            let low = correction_dim(beta_fast).floor().max(0.0);
            let high = correction_dim(beta_slow).ceil().min(rotary_dim as f64 - 1.0);
            let high = if low == high { high + 0.001 } else { high };
            let inv = (0..half)
                .map(|i| {
                    let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                    let extrapolation = 1.0 - ramp;
                    let (interp, extrap) = (1.0 / (factor * pos_freq[i]), 1.0 / pos_freq[i]);
                    interp * (1.0 - extrapolation) + extrap * extrapolation
                })
                .collect();
            Ok((inv, attention))
        }
    }
}

/// The f32 `[max_pos, rotary_dim]` cos/sin cache (cos | sin per row, each times
/// `attention_factor`) for `inv_freq`, on the host: the [`Rotary::Cache`](super::Rotary::Cache)
/// layout.
///
/// ```
/// use lowp::qk_norm_rope::{cos_sin_cache, rope_inv_freq, RopeScaling};
/// let (inv_freq, attention) = rope_inv_freq(4, 10000.0, RopeScaling::None)?;
/// let cache = cos_sin_cache(&inv_freq, attention, 8); // 8 positions × 4
/// assert_eq!(cache.len(), 32);
/// assert_eq!(cache[..4], [1.0, 1.0, 0.0, 0.0]); // position 0: cos 1, sin 0
/// # Ok::<(), lowp::Error>(())
/// ```
pub fn cos_sin_cache(inv_freq: &[f64], attention_factor: f64, max_pos: usize) -> Vec<f32> {
    let half = inv_freq.len();
    let mut cache = vec![0.0f32; max_pos * 2 * half];
    for p in 0..max_pos {
        for (i, f) in inv_freq.iter().enumerate() {
            let a = p as f64 * f;
            cache[p * 2 * half + i] = (a.cos() * attention_factor) as f32;
            cache[p * 2 * half + half + i] = (a.sin() * attention_factor) as f32;
        }
    }
    cache
}

/// Frequencies on the device, for rotary embeddings computed in the kernel (no cache read).
pub struct RopeFrequencies {
    pub(super) inv_freq: CudaSlice<f64>,
    rotary_dim: usize,
    attention_factor: f64,
}

impl RopeFrequencies {
    /// Computes the frequencies on the host ([`rope_inv_freq`]) and uploads them on `stream`
    /// (asynchronously).
    pub fn new(stream: &Arc<CudaStream>, rotary_dim: usize, base: f64, scaling: RopeScaling) -> Result<Self> {
        let (inv, attention_factor) = rope_inv_freq(rotary_dim, base, scaling)?;
        let inv_freq = stream.clone_htod(&inv).op("cuMemcpyHtoDAsync")?;
        Ok(RopeFrequencies { inv_freq, rotary_dim, attention_factor })
    }
    /// The rotary width the frequencies are for (`rotary_dim / 2` frequencies).
    pub fn rotary_dim(&self) -> usize {
        self.rotary_dim
    }
    /// The factor of cos and sin (YaRN's attention factor; 1 otherwise).
    pub fn attention_factor(&self) -> f64 {
        self.attention_factor
    }
}

impl std::fmt::Debug for RopeFrequencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RopeFrequencies")
            .field("rotary_dim", &self.rotary_dim)
            .field("attention_factor", &self.attention_factor)
            .finish_non_exhaustive()
    }
}
