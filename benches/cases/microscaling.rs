//! Benchmark cases of `lowp::microscaling`.

use super::*;

/// How the cases count bytes (printed under the table).
pub(crate) const BYTES: &str = "";

pub(crate) fn cases() -> Vec<Case> {
    Vec::new()
}
