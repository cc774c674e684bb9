//! What a launch did, counted: a proxy for what a GPU would be limited by, never a timing.

use std::fmt;

/// Instruction classes counted per warp-instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Memory,
    Integer,
    F32,
    F64,
    Conversion,
    Control,
}

pub const CLASSES: [Class; 6] =
    [Class::Memory, Class::Integer, Class::F32, Class::F64, Class::Conversion, Class::Control];

/// Counters of one launch.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaunchStats {
    pub kernel: String,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_smem: u32,
    /// Warp-instructions executed, by `Class` (index = position in `CLASSES`).
    pub warp_insts: [u64; 6],
    /// Lane-instructions executed (each active lane of each warp-instruction).
    pub lane_insts: u64,
    pub global_bytes_read: u64,
    pub global_bytes_written: u64,
    /// 32-byte sectors of global memory touched, summed over warp-instructions (a sector
    /// touched by two lanes of one instruction counts once).
    pub sectors: u64,
    /// Host seconds the simulation took (the simulator's own speed, not a GPU time).
    pub sim_seconds: f64,
}

impl LaunchStats {
    pub fn total_warp_insts(&self) -> u64 {
        self.warp_insts.iter().sum()
    }
    /// Warp-instructions per global byte moved (read + written).
    pub fn insts_per_byte(&self) -> f64 {
        let bytes = self.global_bytes_read + self.global_bytes_written;
        if bytes == 0 { f64::INFINITY } else { self.total_warp_insts() as f64 / bytes as f64 }
    }
    pub fn add(&mut self, o: &LaunchStats) {
        for i in 0..6 {
            self.warp_insts[i] += o.warp_insts[i];
        }
        self.lane_insts += o.lane_insts;
        self.global_bytes_read += o.global_bytes_read;
        self.global_bytes_written += o.global_bytes_written;
        self.sectors += o.sectors;
    }
}

impl fmt::Display for LaunchStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [m, i, f32_, f64_, c, ctl] = self.warp_insts;
        write!(
            f,
            "lowp-sim profile {} grid {:?} block {:?} smem {}: warp-insts {} (mem {m}, int {i}, f32 {f32_}, f64 {f64_}, cvt {c}, ctl {ctl}), \
             global read {} B, written {} B, sectors {}, warp-insts/byte {:.4} \
             (simulated in {:.6} s: {} lane-insts, {:.0} M lane-insts/s)",
            self.kernel,
            self.grid,
            self.block,
            self.dynamic_smem,
            self.total_warp_insts(),
            self.global_bytes_read,
            self.global_bytes_written,
            self.sectors,
            self.insts_per_byte(),
            self.sim_seconds,
            self.lane_insts,
            self.lane_insts as f64 / self.sim_seconds.max(1e-9) / 1e6
        )
    }
}
