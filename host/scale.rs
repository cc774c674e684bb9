//! Scale tensors and the one rounding rule every quantizing family shares.
//!
//! A block-scaled format stores, next to its codes, one scale per block of elements. lowp's ops
//! take those scales as a [`Scales`](crate::Scales): a buffer together with its logical shape
//! (`[rows, cols]` scale elements, e.g. `[M, K / 128]`) and the [`ScaleLayout`] the buffer is
//! in, so a layout an op cannot read is an [`Error`](crate::Error), never a silent misread.
//! (This module depends on no other module of the crate.)

/// How a scale is derived from a block's largest magnitude `amax`, or a value rounded to a
/// power of two. One enum for every family; each op documents which variants it takes and
/// returns [`Error::InvalidValue`](crate::Error::InvalidValue) for the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleRounding {
    /// The scale as computed, in f32 (`max(amax, 1e-4) / 448` for the FP8 quantizers).
    Exact,
    /// A power of two, rounded down: the OCP Microscaling rule `2^(⌊log2 amax⌋ − emax)` for MX
    /// formats (the largest value of a block may saturate); `2^⌊log2 x⌋` for casts to UE8M0.
    Floor,
    /// A power of two, rounded up, so that no value saturates: `2^⌈log2(amax / max)⌉` (the UE8M0
    /// recipe of the FP8 quantizers, the round-up variant of MX); `2^⌈log2 x⌉` for casts.
    Ceil,
}

/// Where scale `(r, c)` of a `[rows, cols]` scale tensor lives in its buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleLayout {
    /// At `r · ld + c`, `ld >= cols`.
    RowMajor {
        /// Elements from one row to the next.
        ld: usize,
    },
    /// At `c · ld + r`, `ld >= rows` (M-major: what cuBLAS and DeepGEMM read for activation
    /// scales; [`m_major_ld`] gives the TMA-friendly `ld`).
    MMajor {
        /// Elements from one column to the next.
        ld: usize,
    },
    /// The 128×4-swizzled tiles of block-scaled tensor-core GEMMs (cuBLAS, TensorRT-LLM):
    /// rows padded to 128 and columns to 4, padding written as zeros.
    Swizzled,
    /// Row groups (MoE experts) quantized in one launch: each group's scales are their own
    /// [`Swizzled`](ScaleLayout::Swizzled) region of `pad128(group rows)` rows, regions back to
    /// back; the op that writes them reports where each region starts.
    GroupedSwizzled {
        /// Number of row groups.
        groups: usize,
    },
}

impl ScaleLayout {
    /// Elements a buffer needs to hold `[rows, cols]` scales in this layout (for
    /// `GroupedSwizzled`, the worst case over every split of the rows into the groups), or
    /// `None` on overflow.
    pub fn required_len(self, rows: usize, cols: usize) -> Option<usize> {
        if rows == 0 || cols == 0 {
            return Some(0);
        }
        match self {
            ScaleLayout::RowMajor { ld } => (rows - 1).checked_mul(ld)?.checked_add(cols),
            ScaleLayout::MMajor { ld } => (cols - 1).checked_mul(ld)?.checked_add(rows),
            ScaleLayout::Swizzled => swizzled_len(rows, cols),
            ScaleLayout::GroupedSwizzled { groups } => swizzled_len(rows.checked_add(groups.checked_mul(127)?)?, cols),
        }
    }
}

/// Elements of the 128×4-swizzled layout of `[rows, cols]` scales.
fn swizzled_len(rows: usize, cols: usize) -> Option<usize> {
    rows.div_ceil(128).checked_mul(128)?.checked_mul(cols.div_ceil(4).checked_mul(4)?)
}

/// The leading dimension DeepGEMM uses for M-major scales: `rows` rounded up to 4 (16 bytes of
/// f32, as TMA needs); `usize::MAX` where that does not fit (no buffer holds such scales).
pub fn m_major_ld(rows: usize) -> usize {
    rows.div_ceil(4).saturating_mul(4)
}
