//! The simulated device as a Rust API: configuration, memory, modules and launches.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{ErrorKind, Result, SimError};
use crate::ir::{Function, Module, Param};
use crate::mem::Memory;
use crate::profile::LaunchStats;

/// What the simulated device looks like and how it runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Compute capability reported (9.0 by default; 8.0 makes clients pick portable code).
    pub compute_capability: (i32, i32),
    /// Streaming multiprocessors reported (`CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT`).
    pub sm_count: u32,
    /// Device memory reported and allowed, in bytes.
    pub memory_bytes: u64,
    /// `Some(seed)`: warps are interleaved at random points (`LOWP_SIM_SEED`); `None`: a fixed
    /// deterministic order.
    pub seed: Option<u64>,
    /// Print a profile of every launch to stderr (`LOWP_SIM_PROFILE=1`).
    pub profile: bool,
    /// Shared memory per block with the opt-in (`cuFuncSetAttribute`), and without it.
    pub max_smem_optin: u32,
    pub max_smem_default: u32,
    /// Registers per SM (a launch's registers × threads must fit).
    pub regs_per_sm: u32,
    /// Maximum threads per block.
    pub max_threads_per_block: u32,
    /// `Some(bits)`: FP8 `wgmma` adds each instruction's products into the accumulator keeping
    /// only `bits` significant bits (truncated), as Hopper's tensor cores do for FP8 (about 14,
    /// per the DeepSeek-V3 report), so that a kernel's promotion to full f32 is tested against
    /// that loss (`LOWP_SIM_FP8_ACC_BITS`). `None`: exact f32 accumulation.
    pub fp8_acc_bits: Option<u32>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            compute_capability: (9, 0),
            sm_count: 4,
            memory_bytes: 16 << 30,
            seed: None,
            profile: false,
            max_smem_optin: 232_448,
            max_smem_default: 48 << 10,
            regs_per_sm: 65_536,
            max_threads_per_block: 1024,
            fp8_acc_bits: None,
        }
    }
}

impl Config {
    /// The default configuration, changed by the environment:
    /// `LOWP_SIM_CC` (`9.0`, `8.0`, ...), `LOWP_SIM_SMS` (SM count), `LOWP_SIM_MEMORY_MB`,
    /// `LOWP_SIM_SEED` (random interleaving), `LOWP_SIM_PROFILE=1`.
    pub fn from_env() -> Config {
        let mut c = Config::default();
        let var = |k: &str| std::env::var(k).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(v) = var("LOWP_SIM_CC") {
            let mut it = v.split('.');
            if let (Some(Ok(a)), b) = (it.next().map(str::parse), it.next().map(str::parse).unwrap_or(Ok(0))) {
                c.compute_capability = (a, b.unwrap_or(0));
            }
        }
        if let Some(n) = var("LOWP_SIM_SMS").and_then(|v| v.parse().ok()) {
            c.sm_count = u32::max(n, 1);
        }
        if let Some(n) = var("LOWP_SIM_MEMORY_MB").and_then(|v| v.parse::<u64>().ok()) {
            c.memory_bytes = n << 20;
        }
        c.seed = var("LOWP_SIM_SEED").and_then(|v| v.parse().ok());
        c.profile = var("LOWP_SIM_PROFILE").is_some_and(|v| v != "0");
        c.fp8_acc_bits = var("LOWP_SIM_FP8_ACC_BITS").and_then(|v| v.parse::<u32>().ok()).map(|b| b.clamp(1, 24));
        c
    }
}

/// Grid, block and dynamic shared memory of a launch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_smem: u32,
}

/// A loaded module.
pub struct LoadedModule {
    pub module: Arc<Module>,
}

/// A kernel of a loaded module, with its per-function attributes.
pub struct Kernel {
    pub module: Arc<Module>,
    pub index: u32,
    /// `CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES`.
    max_dynamic_smem: AtomicU32,
}

impl Kernel {
    pub fn function(&self) -> &Function {
        &self.module.functions[self.index as usize]
    }
    pub fn name(&self) -> &str {
        &self.function().name
    }
    /// The kernel's parameters (offset, size, alignment in the parameter buffer).
    pub fn params(&self) -> &[Param] {
        &self.function().params
    }
    pub fn param_bytes(&self) -> u32 {
        self.function().param_bytes
    }
    pub fn max_dynamic_smem(&self) -> u32 {
        self.max_dynamic_smem.load(Ordering::Relaxed)
    }
}

/// The simulated device.
pub struct Sim {
    config: Config,
    pub memory: Memory,
}

impl Sim {
    pub fn new(config: Config) -> Sim {
        let memory = Memory::new(config.memory_bytes);
        Sim { config, memory }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn alloc(&self, bytes: u64) -> Result<u64> {
        self.memory.alloc(bytes)
    }
    pub fn free(&self, ptr: u64) -> Result<()> {
        self.memory.free(ptr)
    }
    pub fn write(&self, dst: u64, src: &[u8]) -> Result<()> {
        self.memory.write(dst, src)
    }
    pub fn read(&self, src: u64, dst: &mut [u8]) -> Result<()> {
        self.memory.read(src, dst)
    }
    pub fn copy(&self, dst: u64, src: u64, bytes: u64) -> Result<()> {
        self.memory.copy(dst, src, bytes)
    }
    pub fn memset(&self, dst: u64, value: u8, bytes: u64) -> Result<()> {
        self.memory.memset(dst, value, bytes)
    }
    /// (free, total) bytes.
    pub fn mem_info(&self) -> (u64, u64) {
        let total = self.memory.total();
        (total - self.memory.used().min(total), total)
    }

    /// Parses and lowers a PTX module.
    pub fn load_module(&self, ptx: &str) -> Result<Arc<LoadedModule>> {
        let module = crate::parse::parse_module(ptx)?;
        Ok(Arc::new(LoadedModule { module: Arc::new(module) }))
    }

    /// The kernel (`.entry`) `name` of `module`.
    pub fn kernel(&self, module: &LoadedModule, name: &str) -> Result<Arc<Kernel>> {
        match module.module.function(name) {
            Some((index, f)) if f.is_entry => Ok(Arc::new(Kernel {
                module: module.module.clone(),
                index,
                max_dynamic_smem: AtomicU32::new(self.config.max_smem_default),
            })),
            _ => Err(SimError::new(ErrorKind::NotFound, format!("no kernel named {name} in the module"))),
        }
    }

    /// `cuFuncSetAttribute(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES)`.
    pub fn set_max_dynamic_smem(&self, kernel: &Kernel, bytes: u32) -> Result<()> {
        let limit = self.config.max_smem_optin - kernel.module.static_smem_bytes.min(self.config.max_smem_optin);
        if bytes > limit {
            return Err(SimError::invalid(format!(
                "cuFuncSetAttribute: {} asks for {bytes} bytes of dynamic shared memory; the device allows {limit}",
                kernel.name()
            )));
        }
        kernel.max_dynamic_smem.store(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Runs a kernel to completion. `params` is the kernel's parameter buffer
    /// (`Kernel::param_bytes` bytes, laid out as `Kernel::params`).
    pub fn launch(&self, kernel: &Kernel, cfg: &LaunchConfig, params: &[u8]) -> Result<LaunchStats> {
        crate::exec::launch(self, kernel, cfg, params)
    }
}
