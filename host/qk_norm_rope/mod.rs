//! Fused per-head RMSNorm + rotary embedding on the packed QKV matrix (device side:
//! `kernels-gpu/src/qk_norm_rope.rs`), and the standalone per-head RMSNorm and RoPE built from the
//! same device body.
//!
//! ```text
//! qkv [tokens, (Hq + 2·Hk)·D]   q heads | k heads | v heads        (bf16 or f16, any row stride)
//! q, k:  y = rope(rmsnorm(head) · w, position)    f32 math, one rounding
//! v:     untouched (optionally written to an FP8 V cache)
//! ```
//! Conventions (Hugging Face Qwen3 `Qwen3RMSNorm` then `apply_rotary_pos_emb`): NeoX style
//! rotates the halves of the rotary part (`rotate_half`), GPT-J style interleaved pairs; with
//! `rotary_dim < head_dim` the trailing elements are normalized and passed through. The norm's
//! weight multiplies as `w` or, Gemma-style, as `1 + w` ([`NormWeight`]). cos/sin come from an
//! f32 cache `[max_pos, rotary_dim]` (cos in the first half of a row, sin in the second, vLLM's
//! `cos_sin_cache`) or are computed in the kernel from [`RopeFrequencies`] ([`Rotary`]).
//! Multimodal rotary embeddings (vLLM's `MRotaryEmbedding`): positions `[3, tokens]` and
//! [`QkNormRopeSettings::mrope_section`], each section of frequencies rotating by its own row.
//!
//! The three ops take their arguments in one order: the device vectors they read (norm weights,
//! positions, the rotary source), the [`QkNormRopeSettings`], then what they write: [`Qkv`] (in
//! place, or into separate q and k matrices), the optional FP8 KV-cache write ([`KvCacheFp8`]) and
//! the optional [`ErrorFlag`]. Device vectors are any cudarc buffer (`&W` with
//! `W: DevicePtr<T>`: a `CudaSlice`, a `CudaView`, ...); positions are `i32` or `i64`
//! ([`Position`]). The alternatives and optional parts hold their buffers as trait objects
//! ([`MatrixRef`], [`MatrixMut`], `dyn DevicePtr`), which any [`Matrix`] or cudarc buffer coerces
//! to, so `None` and an unused variant need no type annotations.
//!
//! A position outside `[0, max_pos)` of a cache is clamped (never read out of bounds) and sets
//! [`ERR_POSITION_OUT_OF_RANGE`] in the optional [`ErrorFlag`]; a slot mapping entry past the end
//! of an FP8 cache skips that token and sets [`ERR_SLOT_OUT_OF_RANGE`]. See
//! `docs/kernels/qk_norm_rope.md`.

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, DevicePtrMut, SyncOnDrop};

pub use crate::abi::{ERR_POSITION_OUT_OF_RANGE, ERR_SLOT_OUT_OF_RANGE};
use crate::context::Lowp;
use crate::dtype::{Element, F8E4M3, Half};
use crate::error::Result;
use crate::matrix::Matrix;

mod freq;
mod launch;
mod plan;

pub use freq::{RopeFrequencies, RopeScaling, cos_sin_cache, rope_inv_freq};
use launch::read_vector;
use plan::Op;

use crate::flag::ErrorFlag;

/// Kernel entry points of this family: `{qk_norm_rope,head_rmsnorm,rope}_{bf16,f16}_d{64,128,256}`,
/// and `{qk_norm_rope,rope}_rows_*` for NeoX rotary widths whose partners are not a shuffle away.
#[cfg(test)]
pub(crate) const KERNELS: &[&str] = &[
    "qk_norm_rope_bf16_d64",
    "qk_norm_rope_bf16_d128",
    "qk_norm_rope_bf16_d256",
    "qk_norm_rope_f16_d64",
    "qk_norm_rope_f16_d128",
    "qk_norm_rope_f16_d256",
    "head_rmsnorm_bf16_d64",
    "head_rmsnorm_bf16_d128",
    "head_rmsnorm_bf16_d256",
    "head_rmsnorm_f16_d64",
    "head_rmsnorm_f16_d128",
    "head_rmsnorm_f16_d256",
    "rope_bf16_d64",
    "rope_bf16_d128",
    "rope_bf16_d256",
    "rope_f16_d64",
    "rope_f16_d128",
    "rope_f16_d256",
    "qk_norm_rope_rows_bf16_d64",
    "qk_norm_rope_rows_bf16_d128",
    "qk_norm_rope_rows_bf16_d256",
    "qk_norm_rope_rows_f16_d64",
    "qk_norm_rope_rows_f16_d128",
    "qk_norm_rope_rows_f16_d256",
    "rope_rows_bf16_d64",
    "rope_rows_bf16_d128",
    "rope_rows_bf16_d256",
    "rope_rows_f16_d64",
    "rope_rows_f16_d128",
    "rope_rows_f16_d256",
];

/// Head sizes with a kernel.
pub const HEAD_DIMS: [usize; 3] = [64, 128, 256];

/// Which elements rotate together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RopeStyle {
    /// Pairs (i, i + R/2): Hugging Face `rotate_half`, GPT-NeoX, Llama, Qwen.
    #[default]
    NeoX,
    /// Pairs (2i, 2i + 1): GPT-J, interleaved.
    GptJ,
}

/// How the norm applies its weight `w`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NormWeight {
    /// `n · w` (Qwen3, Llama).
    #[default]
    Plain,
    /// `n · (1 + w)`, the sum in f32 (Gemma's `GemmaRMSNorm`: weights stored as offsets from 1).
    OnePlus,
}

/// Shape and numerics of one attention layer's prologue, shared by the three ops of the family:
/// [`head_rmsnorm`] reads the head counts, `head_dim`, `eps` and `weight`; [`rope`] the head
/// counts, `head_dim`, `rotary_dim`, `style` and `mrope_section`; [`qk_norm_rope`] all of them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QkNormRopeSettings {
    /// Query heads `Hq`, 1..=65536.
    pub num_q_heads: usize,
    /// Key (and value) heads `Hk`, 1..=65536: `Hk = Hq` is MHA, `Hk < Hq` GQA, `Hk = 1` MQA.
    pub num_kv_heads: usize,
    /// Elements per head `D`: 64, 128 or 256 ([`HEAD_DIMS`]).
    pub head_dim: usize,
    /// Leading elements of each head that rotate, `R`: even, in `2..=head_dim`; the rest are
    /// passed through (partial rotary).
    pub rotary_dim: usize,
    /// Which elements rotate together.
    pub style: RopeStyle,
    /// Added to the mean of squares before the reciprocal square root: finite, `>= 0`.
    pub eps: f32,
    /// How the norm applies its weight.
    pub weight: NormWeight,
    /// Multimodal RoPE (vLLM's `MRotaryEmbedding`, Qwen2-VL): the sizes of the 3 frequency
    /// sections (temporal, height, width), summing to `rotary_dim / 2`; frequency `f` of section
    /// `k` rotates by `positions[k, t]`, and positions are `[3, tokens]` (row-major). `None`: one
    /// position per token.
    pub mrope_section: Option<[usize; 3]>,
}

impl QkNormRopeSettings {
    /// `num_q_heads` and `num_kv_heads` heads of `head_dim`, rotating all of each head NeoX
    /// style, `eps = 1e-6`, plain weights, one position per token (Qwen3's prologue).
    pub fn new(num_q_heads: usize, num_kv_heads: usize, head_dim: usize) -> Self {
        QkNormRopeSettings {
            num_q_heads,
            num_kv_heads,
            head_dim,
            rotary_dim: head_dim,
            style: RopeStyle::NeoX,
            eps: 1e-6,
            weight: NormWeight::Plain,
            mrope_section: None,
        }
    }
}

/// What only lowp sees of this family's traits: whether positions are 64-bit, and a matrix's
/// shape, stream and device address behind `dyn MatrixRef` / `dyn MatrixMut`.
pub(crate) mod sealed {
    use std::sync::Arc;

    use cudarc::driver::{CudaStream, SyncOnDrop};

    /// Implemented by `i32` and `i64`.
    pub trait PositionBits {
        /// Whether positions are 64-bit.
        const IS_I64: bool;
    }
    impl PositionBits for i32 {
        const IS_I64: bool = false;
    }
    impl PositionBits for i64 {
        const IS_I64: bool = true;
    }

    /// A matrix read by a kernel.
    pub trait ReadMatrix {
        /// `(rows, cols, row_stride)`.
        fn layout(&self) -> (usize, usize, usize);
        /// The stream the buffer belongs to (for the context check).
        fn buffer_stream(&self) -> &Arc<CudaStream>;
        /// The device address, read on `stream` (keep the guard until the launch is enqueued).
        fn read_addr<'a>(&'a self, stream: &'a CudaStream) -> (u64, SyncOnDrop<'a>);
    }

    /// A matrix written by a kernel.
    pub trait WriteMatrix {
        /// `(rows, cols, row_stride)`.
        fn layout(&self) -> (usize, usize, usize);
        /// The stream the buffer belongs to (for the context check).
        fn buffer_stream(&self) -> &Arc<CudaStream>;
        /// The device address, written on `stream` (keep the guard until the launch is enqueued).
        fn write_addr<'a>(&'a mut self, stream: &'a CudaStream) -> (u64, SyncOnDrop<'a>);
    }
}

/// The element type of positions: `i32` or `i64` (sealed).
pub trait Position: sealed::PositionBits + Copy + 'static {}

impl Position for i32 {}
impl Position for i64 {}

/// A readable device matrix of `T` over any buffer: `&m` for any [`Matrix<T, B>`] with
/// `B: DevicePtr<T>` (an owned `CudaSlice`, a `CudaView`, a `CudaViewMut`) coerces to
/// `&dyn MatrixRef<T>`. Sealed: implemented by [`Matrix`] only.
pub trait MatrixRef<T: Element>: sealed::ReadMatrix {}

/// A writable device matrix of `T` over any buffer: `&mut m` for any [`Matrix<T, B>`] with
/// `B: DevicePtrMut<T>` (an owned `CudaSlice`, a `CudaViewMut`) coerces to
/// `&mut dyn MatrixMut<T>`. Sealed: implemented by [`Matrix`] only.
pub trait MatrixMut<T: Element>: sealed::WriteMatrix {}

impl<T: Element, B: DevicePtr<T>> MatrixRef<T> for Matrix<T, B> {}
impl<T: Element, B: DevicePtrMut<T>> MatrixMut<T> for Matrix<T, B> {}

impl<T: Element, B: DevicePtr<T>> sealed::ReadMatrix for Matrix<T, B> {
    fn layout(&self) -> (usize, usize, usize) {
        (self.rows(), self.cols(), self.row_stride())
    }
    fn buffer_stream(&self) -> &Arc<CudaStream> {
        self.buffer().stream()
    }
    fn read_addr<'a>(&'a self, stream: &'a CudaStream) -> (u64, SyncOnDrop<'a>) {
        self.device_ptr(stream)
    }
}

impl<T: Element, B: DevicePtrMut<T>> sealed::WriteMatrix for Matrix<T, B> {
    fn layout(&self) -> (usize, usize, usize) {
        (self.rows(), self.cols(), self.row_stride())
    }
    fn buffer_stream(&self) -> &Arc<CudaStream> {
        self.buffer().stream()
    }
    fn write_addr<'a>(&'a mut self, stream: &'a CudaStream) -> (u64, SyncOnDrop<'a>) {
        self.device_ptr_mut(stream)
    }
}

/// Where cos and sin come from.
#[derive(Clone, Copy)]
pub enum Rotary<'a> {
    /// An f32 `[max_pos, rotary_dim]` cache (any readable cudarc buffer of `max_pos · rotary_dim`
    /// elements), cos | sin per row ([`cos_sin_cache`] builds one); positions are clamped into it.
    Cache {
        /// The cache, row `p` = `cos θ_0 .. cos θ_{R/2-1} | sin θ_0 .. sin θ_{R/2-1}` at position `p`.
        cos_sin: &'a dyn DevicePtr<f32>,
        /// Rows of the cache.
        max_pos: usize,
    },
    /// Computed in the kernel from frequencies on the device (f64 angle and its reduction), no
    /// memory read.
    Computed(&'a RopeFrequencies),
}

impl std::fmt::Debug for Rotary<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rotary::Cache { cos_sin, max_pos } => {
                write!(f, "Rotary::Cache {{ cos_sin: {} f32, max_pos: {max_pos} }}", cos_sin.len())
            }
            Rotary::Computed(r) => write!(f, "Rotary::Computed({r:?})"),
        }
    }
}

/// The packed `[tokens, (Hq + 2·Hk)·D]` q | k | v matrix, and where the results go. Its row
/// stride is free (at least the width).
pub enum Qkv<'a, T: Half> {
    /// q and k are read and written back into their heads of the matrix (v untouched).
    InPlace(&'a mut dyn MatrixMut<T>),
    /// The matrix is read only; q goes to `q_out` `[tokens, Hq·D]` and k to `k_out`
    /// `[tokens, Hk·D]` (any row strides, neither overlapping `qkv` nor each other).
    Separate {
        /// The packed matrix, read.
        qkv: &'a dyn MatrixRef<T>,
        /// The rotated q heads.
        q_out: &'a mut dyn MatrixMut<T>,
        /// The rotated k heads.
        k_out: &'a mut dyn MatrixMut<T>,
    },
}

/// The FP8 KV-cache write: each token's final k (and optionally its v), as `e4m3(value / scale)`
/// with per-tensor scales, into row `slot_mapping[t]` (or `t`) of `[rows, Hk·D]` caches.
pub struct KvCacheFp8<'a> {
    /// The K cache `[rows, Hk·D]` (any row stride).
    pub k_cache: &'a mut dyn MatrixMut<F8E4M3>,
    /// The V cache, the K cache's rows and stride; `None`: v is not cached.
    pub v_cache: Option<&'a mut dyn MatrixMut<F8E4M3>>,
    /// Cache row per token (any readable i64 cudarc buffer of one entry per token); negative
    /// entries skip the token (padding). `None`: token `t` goes to row `t`.
    pub slot_mapping: Option<&'a dyn DevicePtr<i64>>,
    /// The K scale: cached value `e4m3(k / k_scale)`; finite, `> 0`.
    pub k_scale: f32,
    /// The V scale: cached value `e4m3(v / v_scale)`; finite, `> 0`.
    pub v_scale: f32,
}

/// Per-head RMSNorm of q and k, then the rotary embedding, in one pass (asynchronous on
/// `stream`).
///
/// `q_weight` and `k_weight` hold `head_dim` elements; `positions` one per token (`[3, tokens]`
/// with [`QkNormRopeSettings::mrope_section`]); an optional FP8 KV-cache write stores the final k
/// (and v) of each token. Out-of-range positions of a cache clamp and set
/// [`ERR_POSITION_OUT_OF_RANGE`] in `error_flag`, slots past the cache set
/// [`ERR_SLOT_OUT_OF_RANGE`].
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use half::bf16;
/// use lowp::qk_norm_rope::{self as qnr, Qkv, QkNormRopeSettings, RopeScaling, Rotary};
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let settings = QkNormRopeSettings::new(1, 1, 64); // Hq 1, Hk 1, D 64
/// let (tokens, cols, max_pos) = (2, 3 * 64, 16);
/// let host: Vec<bf16> = (0..tokens * cols).map(|i| bf16::from_f32((i % 5) as f32 - 2.0)).collect();
/// let mut qkv = Matrix::from_host(&stream, &host, tokens, cols)?;
/// let ones = stream.clone_htod(&[bf16::ONE; 64])?;
/// let positions = stream.clone_htod(&[0i32, 3])?;
/// let (inv_freq, attention) = qnr::rope_inv_freq(64, 1e6, RopeScaling::None)?;
/// let cache = stream.clone_htod(&qnr::cos_sin_cache(&inv_freq, attention, max_pos))?;
/// qnr::qk_norm_rope(
///     &lowp, &stream,
///     &ones, &ones, &positions, Rotary::Cache { cos_sin: &cache, max_pos },
///     &settings,
///     Qkv::InPlace(&mut qkv), None, None,
/// )?;
/// let after = qkv.to_host(&stream)?;
/// // token 0 sits at position 0 (no rotation): its q head is the normalized head
/// let x: Vec<f32> = host[..64].iter().map(|v| v.to_f32()).collect();
/// let rms = (x.iter().map(|v| v * v).sum::<f32>() / 64.0 + 1e-6).sqrt();
/// assert!((after[1].to_f32() - x[1] / rms).abs() < 1e-2);
/// assert_eq!(after[2 * 64..3 * 64], host[2 * 64..3 * 64]); // v untouched
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn qk_norm_rope<T, QW, KW, P, I>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    q_weight: &QW,
    k_weight: &KW,
    positions: &P,
    rotary: Rotary<'_>,
    settings: &QkNormRopeSettings,
    qkv: Qkv<'_, T>,
    kv_cache: Option<KvCacheFp8<'_>>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Half,
    QW: DevicePtr<T> + ?Sized,
    KW: DevicePtr<T> + ?Sized,
    P: DevicePtr<I> + ?Sized,
    I: Position,
{
    lowp.check_stream(stream)?;
    let (qw, _qw_guard) = read_vector(lowp, stream, "q_weight", q_weight)?;
    let (kw, _kw_guard) = read_vector(lowp, stream, "k_weight", k_weight)?;
    let (pos, _pos_guard) = read_vector(lowp, stream, "positions", positions)?;
    launch::run(
        lowp,
        stream,
        Op::QkNormRope,
        settings,
        Some((qw, kw)),
        Some((pos, I::IS_I64)),
        Some(rotary),
        qkv,
        kv_cache,
        error_flag,
    )
}

/// Per-head RMSNorm of q and k only (asynchronous on `stream`); reads `num_q_heads`,
/// `num_kv_heads`, `head_dim`, `eps` and `weight` of the settings. An optional FP8 KV-cache write
/// stores the normalized k (and v) of each token; slots past the cache set
/// [`ERR_SLOT_OUT_OF_RANGE`] in `error_flag`.
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use half::f16;
/// use lowp::qk_norm_rope::{self as qnr, Qkv, QkNormRopeSettings};
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let settings = QkNormRopeSettings::new(2, 1, 64);
/// let cols = 4 * 64; // q | q | k | v
/// let qkv = Matrix::from_host(&stream, &vec![f16::from_f32(3.0); cols], 1, cols)?;
/// let (q_weight, k_weight) = (stream.clone_htod(&[f16::from_f32(0.5); 64])?, stream.clone_htod(&[f16::ONE; 64])?);
/// let mut q = Matrix::<f16>::zeros(&stream, 1, 2 * 64)?;
/// let mut k = Matrix::<f16>::zeros(&stream, 1, 64)?;
/// qnr::head_rmsnorm(
///     &lowp, &stream,
///     &q_weight, &k_weight,
///     &settings,
///     Qkv::Separate { qkv: &qkv, q_out: &mut q, k_out: &mut k }, None, None,
/// )?;
/// // a constant head normalizes to 1, times the weight
/// assert!(q.to_host(&stream)?.iter().all(|v| (v.to_f32() - 0.5).abs() < 1e-3));
/// assert!(k.to_host(&stream)?.iter().all(|v| (v.to_f32() - 1.0).abs() < 1e-3));
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn head_rmsnorm<T, QW, KW>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    q_weight: &QW,
    k_weight: &KW,
    settings: &QkNormRopeSettings,
    qkv: Qkv<'_, T>,
    kv_cache: Option<KvCacheFp8<'_>>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Half,
    QW: DevicePtr<T> + ?Sized,
    KW: DevicePtr<T> + ?Sized,
{
    lowp.check_stream(stream)?;
    let (qw, _qw_guard) = read_vector(lowp, stream, "q_weight", q_weight)?;
    let (kw, _kw_guard) = read_vector(lowp, stream, "k_weight", k_weight)?;
    launch::run(lowp, stream, Op::HeadRmsNorm, settings, Some((qw, kw)), None, None, qkv, kv_cache, error_flag)
}

/// The rotary embedding of q and k only (asynchronous on `stream`); reads `num_q_heads`,
/// `num_kv_heads`, `head_dim`, `rotary_dim`, `style` and `mrope_section` of the settings. An
/// optional FP8 KV-cache write stores the rotated k (and v) of each token. Out-of-range positions
/// of a cache clamp and set [`ERR_POSITION_OUT_OF_RANGE`] in `error_flag`, slots past the cache
/// set [`ERR_SLOT_OUT_OF_RANGE`].
///
/// ```
/// # fn main() -> lowp::Result<()> {
/// # lowp_sim::select_device().expect("a GPU or the simulator"); // doc tests: the GPU if there is one, else the simulator
/// use half::bf16;
/// use lowp::ErrorFlag;
/// use lowp::qk_norm_rope::{self as qnr, Qkv, QkNormRopeSettings, RopeFrequencies, RopeScaling, RopeStyle, Rotary};
/// use lowp::{Lowp, Matrix};
/// let lowp = Lowp::new(0)?;
/// let stream = lowp.new_stream()?;
/// let settings = QkNormRopeSettings { rotary_dim: 32, style: RopeStyle::GptJ, ..QkNormRopeSettings::new(1, 1, 64) };
/// let host: Vec<bf16> = (0..3 * 64).map(|i| bf16::from_f32(i as f32 / 64.0)).collect();
/// let mut qkv = Matrix::from_host(&stream, &host, 1, 3 * 64)?;
/// let positions = stream.clone_htod(&[7i64])?;
/// let freqs = RopeFrequencies::new(&stream, 32, 10000.0, RopeScaling::None)?;
/// let mut flag = ErrorFlag::new(&stream)?;
/// qnr::rope(
///     &lowp, &stream,
///     &positions, Rotary::Computed(&freqs),
///     &settings,
///     Qkv::InPlace(&mut qkv), None, Some(&mut flag),
/// )?;
/// let after = qkv.to_host(&stream)?;
/// assert_ne!(after[0..32], host[0..32]); // the first 32 elements of each head rotate
/// assert_eq!(after[32..64], host[32..64]); // the rest pass through
/// assert_eq!(flag.read(&stream)?, 0);
/// # Ok(()) }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn rope<T, P, I>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    positions: &P,
    rotary: Rotary<'_>,
    settings: &QkNormRopeSettings,
    qkv: Qkv<'_, T>,
    kv_cache: Option<KvCacheFp8<'_>>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()>
where
    T: Half,
    P: DevicePtr<I> + ?Sized,
    I: Position,
{
    lowp.check_stream(stream)?;
    let (pos, _pos_guard) = read_vector(lowp, stream, "positions", positions)?;
    launch::run(lowp, stream, Op::Rope, settings, None, Some((pos, I::IS_I64)), Some(rotary), qkv, kv_cache, error_flag)
}
