//! Parameters of `qk_norm_rope` (fused per-head RMSNorm + rotary embedding on packed QKV).

/// One launch of the `qk_norm_rope` family (`qk_norm_rope_*`, `head_rmsnorm_*`, `rope_*`).
///
/// The packed input row of token `t` is `qkv + t * qkv_stride`: `num_q_heads` q heads, then
/// `num_kv_heads` k heads, then `num_kv_heads` v heads, each `head_dim` elements. Outputs of q and
/// k go to `q_out` / `k_out` rows (which point into `qkv` for the in-place form).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QkNormRopeParams {
    /// `const T*` (read with coherent loads: may equal the outputs).
    pub qkv: u64,
    /// `T*`, rows of `num_q_heads * head_dim` at `q_out_stride`.
    pub q_out: u64,
    /// `T*`, rows of `num_kv_heads * head_dim` at `k_out_stride`.
    pub k_out: u64,
    /// `const T*` `[head_dim]` (unused by `rope_*`).
    pub q_weight: u64,
    pub k_weight: u64,
    /// `const i32*` or `const i64*` (`FLAG_POS_I64`): one per token, or `[3, tokens]` with
    /// `FLAG_MROPE` (unused by `head_rmsnorm_*`).
    pub positions: u64,
    /// `const f32*` `[max_pos, rotary_dim]`: cos in the first half of a row, sin in the second. 0 selects
    /// the computed form (`inv_freq`).
    pub cos_sin: u64,
    /// `const f64*` `[rotary_dim / 2]`: angular frequencies for the computed form.
    pub inv_freq: u64,
    /// `u8*` FP8 E4M3 K cache rows (`cache_stride` bytes apart), or 0.
    pub k_cache: u64,
    /// `u8*` FP8 E4M3 V cache rows, or 0.
    pub v_cache: u64,
    /// `const i64*` cache row per token (negative: not cached), or 0 (row = token).
    pub slot_mapping: u64,
    /// `u32*` error flags (`ERR_*`), or 0.
    pub error_flag: u64,
    pub qkv_stride: u64,
    pub q_out_stride: u64,
    pub k_out_stride: u64,
    pub cache_stride: u64,
    /// Rows of the K and V caches: a slot outside `[0, cache_rows)` is skipped and flagged
    /// (negative slots are skipped silently: padding tokens).
    pub cache_rows: u64,
    pub tokens: u64,
    /// Rows of `cos_sin`; positions are clamped to `[0, max_pos)`.
    pub max_pos: u64,
    pub num_q_heads: u32,
    pub num_kv_heads: u32,
    /// Even, `2..=head_dim`: the leading `rotary_dim` elements of a head rotate, the rest pass.
    pub rotary_dim: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    pub eps: f32,
    /// Multiplies the computed cos and sin (YaRN's attention factor; 1 otherwise).
    pub attention_factor: f32,
    /// FP8 cache value = e4m3(k / k_scale), per tensor.
    pub k_scale: f32,
    pub v_scale: f32,
    /// `1 / k_scale` rounded to f32, or 0: the kernel then divides (see `prim::kv_fp8`).
    pub k_recip: f32,
    pub v_recip: f32,
    /// mRoPE (`FLAG_MROPE`): frequency `f` takes its position from row 0 of `positions` when
    /// `f < mrope_end0`, row 1 when `f < mrope_end1`, row 2 otherwise.
    pub mrope_end0: u32,
    pub mrope_end1: u32,
}
const _: () = assert!(core::mem::size_of::<QkNormRopeParams>() == 200);
const _: () = assert!(core::mem::align_of::<QkNormRopeParams>() == 8);

/// GPT-J style: rotate interleaved pairs (2i, 2i+1); otherwise NeoX: halves (i, i + rotary_dim/2).
pub const FLAG_GPTJ: u32 = 1;
/// Positions are i64 (else i32).
pub const FLAG_POS_I64: u32 = 2;
/// Every qkv, output and weight row start and stride is 16-byte aligned: one 16-byte access per
/// lane and head (else 2-byte accesses).
pub const FLAG_VECTORIZED: u32 = 4;
/// The norm multiplies by `1 + w` (Gemma) instead of `w`.
pub const FLAG_WEIGHT_ONE_PLUS: u32 = 8;
/// Multimodal rotary embedding: `positions` is `[3, tokens]`, sections per `mrope_end*`.
pub const FLAG_MROPE: u32 = 16;
/// The FP8 caches' base and row stride are 8-byte aligned: one 8-byte store per lane and head.
pub const FLAG_CACHE_VEC8: u32 = 32;

/// Error flag bit: a position was outside `[0, max_pos)` and was clamped.
pub const ERR_POSITION_OUT_OF_RANGE: u32 = 1;

/// Error flag bit: a slot mapping entry was past the end of the cache; that token was not cached.
pub const ERR_SLOT_OUT_OF_RANGE: u32 = 2;

/// Elements of a head per lane (16 bytes of bf16/f16): a head spans `head_dim / 8` lanes and a
/// warp holds `256 / head_dim` heads at once.
pub const QK_ELEMS_PER_LANE: u32 = 8;

/// The most threads per block; a launch uses `32 * warps` threads, `warps` in `1..=8`.
pub const QK_NORM_ROPE_MAX_THREADS: u32 = 256;

/// Whether the NeoX partner of every rotating element is in the lane `rotary_dim / 16` away
/// (`shfl.xor`): true when `rotary_dim / 2` is a power-of-two multiple of 8. Otherwise the
/// partner goes through a per-warp row of shared memory.
pub const fn neox_by_shuffle(rotary_dim: u32) -> bool {
    let half = rotary_dim / 2;
    half % QK_ELEMS_PER_LANE == 0 && (half / QK_ELEMS_PER_LANE).is_power_of_two()
}

/// Dynamic shared memory of a launch with `warps` warps, in this order: the f32 q and k weights
/// (`2 · head_dim` f32); when rotating, the token's cos/sin per element, twice (double-buffered
/// across tokens: `2 · 2 · head_dim` f32), and the rotation mask (`head_dim` u32); a 256-f32 row
/// per warp when the NeoX partners go through shared memory. The offsets are fixed (weights at 0,
/// tables at `2 · head_dim`, mask at `6 · head_dim`, rows at `7 · head_dim` f32) whichever parts a
/// launch uses; the size covers the last part used.
pub const fn qk_norm_rope_smem_bytes(head_dim: u32, warps: u32, rope: bool, neox_rows: bool) -> u32 {
    let f32s = if neox_rows {
        7 * head_dim + warps * 32 * QK_ELEMS_PER_LANE
    } else if rope {
        7 * head_dim
    } else {
        2 * head_dim
    };
    4 * f32s
}
