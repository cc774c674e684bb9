//! Benchmark cases of `lowp::qk_norm_rope`.

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "";

pub(crate) fn cases() -> Vec<Case> {
    Vec::new()
}
