//! The executor.
use crate::device::{Kernel, LaunchConfig, Sim};
use crate::error::Result;
use crate::profile::LaunchStats;

pub fn launch(sim: &Sim, kernel: &Kernel, cfg: &LaunchConfig, params: &[u8]) -> Result<LaunchStats> { let _ = (sim, kernel, cfg, params); todo!() }
