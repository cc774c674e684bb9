//! The launch: each argument checked against the handle's context, its device address resolved
//! (the guards kept until the kernel is enqueued), the plan, the grid, the kernel.

use std::sync::Arc;

use cudarc::driver::{CudaStream, DevicePtr, LaunchConfig, PushKernelArg, SyncOnDrop};

use crate::abi::QkNormRopeParams;
use crate::context::Lowp;
use crate::dtype::{Element, Half};
use crate::error::{CudaResultExt, Error, Result};

use super::plan::{KvIn, Mat, Op, PlanInput, RotaryIn, block_shape, kernel_name, neox_rows, plan};
use super::{ErrorFlag, KvCacheFp8, MatrixMut, MatrixRef, QkNormRopeSettings, Qkv, Rotary};

crate::abi::device_repr!(QkNormRopeParams);

/// A device vector's address and length.
#[derive(Clone, Copy, Debug)]
pub(super) struct Vector {
    pub addr: u64,
    pub len: usize,
}

/// `DeviceMismatch` naming `arg` when a buffer of `stream` is not in the handle's context.
fn check_context(lowp: &Lowp, arg: &'static str, stream: &CudaStream) -> Result<()> {
    lowp.check_stream(stream).map_err(|e| match e {
        Error::DeviceMismatch { expected, actual, .. } => Error::DeviceMismatch { arg, expected, actual },
        e => e,
    })
}

/// Checks a device vector's context and reads its address on `stream` (keep the guard until the
/// launch is enqueued).
pub(super) fn read_vector<'a, E, B: DevicePtr<E> + ?Sized>(
    lowp: &Lowp,
    stream: &'a CudaStream,
    arg: &'static str,
    buf: &'a B,
) -> Result<(Vector, SyncOnDrop<'a>)> {
    check_context(lowp, arg, buf.stream())?;
    let (addr, guard) = buf.device_ptr(stream);
    Ok((Vector { addr, len: buf.len() }, guard))
}

/// A readable matrix argument: its context checked, its address read on `stream`.
fn read_matrix<'a, T: Element>(
    lowp: &Lowp,
    stream: &'a CudaStream,
    name: &'static str,
    m: &'a dyn MatrixRef<T>,
) -> Result<(Mat, SyncOnDrop<'a>)> {
    check_context(lowp, name, m.buffer_stream())?;
    let (rows, cols, stride) = m.layout();
    let (addr, guard) = m.read_addr(stream);
    Ok((Mat { name, rows, cols, stride, addr, elem: std::mem::size_of::<T>() }, guard))
}

/// A written matrix argument: its context checked, its address taken for writing on `stream`.
fn write_matrix<'a, T: Element>(
    lowp: &Lowp,
    stream: &'a CudaStream,
    name: &'static str,
    m: &'a mut dyn MatrixMut<T>,
) -> Result<(Mat, SyncOnDrop<'a>)> {
    check_context(lowp, name, m.buffer_stream())?;
    let (rows, cols, stride) = m.layout();
    let (addr, guard) = m.write_addr(stream);
    Ok((Mat { name, rows, cols, stride, addr, elem: std::mem::size_of::<T>() }, guard))
}

/// Resolves the remaining arguments, plans and launches `op` (the vectors' addresses were read by
/// the caller, whose guards outlive this call).
#[allow(clippy::too_many_arguments)]
pub(super) fn run<T: Half>(
    lowp: &Lowp,
    stream: &Arc<CudaStream>,
    op: Op,
    settings: &QkNormRopeSettings,
    weights: Option<(Vector, Vector)>,
    positions: Option<(Vector, bool)>,
    rotary: Option<Rotary<'_>>,
    qkv: Qkv<'_, T>,
    kv_cache: Option<KvCacheFp8<'_>>,
    error_flag: Option<&mut ErrorFlag>,
) -> Result<()> {
    // Context checks first, then the addresses (each guard lives until after the launch).
    let mut guards: Vec<SyncOnDrop<'_>> = Vec::new();
    let (qkv, outputs) = match qkv {
        Qkv::InPlace(m) => {
            let (m, g) = write_matrix(lowp, stream, "qkv", m)?;
            guards.push(g);
            (m, None)
        }
        Qkv::Separate { qkv, q_out, k_out } => {
            let (m, g) = read_matrix(lowp, stream, "qkv", qkv)?;
            let (q, gq) = write_matrix(lowp, stream, "q_out", q_out)?;
            let (k, gk) = write_matrix(lowp, stream, "k_out", k_out)?;
            guards.extend([g, gq, gk]);
            (m, Some((q, k)))
        }
    };
    let rotary = match rotary {
        Some(Rotary::Cache { cos_sin, max_pos }) => {
            let (v, g) = read_vector(lowp, stream, "rotary.cos_sin", cos_sin)?;
            guards.push(g);
            Some(RotaryIn::Cache { addr: v.addr, len: v.len, max_pos })
        }
        Some(Rotary::Computed(f)) => {
            let (v, g) = read_vector(lowp, stream, "rotary", &f.inv_freq)?;
            guards.push(g);
            Some(RotaryIn::Computed {
                addr: v.addr,
                rotary_dim: f.rotary_dim(),
                attention_factor: f.attention_factor(),
            })
        }
        None => None,
    };
    let kv = match kv_cache {
        Some(kv) => {
            let (k, g) = write_matrix(lowp, stream, "kv_cache.k_cache", kv.k_cache)?;
            guards.push(g);
            let v = match kv.v_cache {
                Some(v) => {
                    let (v, g) = write_matrix(lowp, stream, "kv_cache.v_cache", v)?;
                    guards.push(g);
                    Some(v)
                }
                None => None,
            };
            let slots = match kv.slot_mapping {
                Some(s) => {
                    let (s, g) = read_vector(lowp, stream, "kv_cache.slot_mapping", s)?;
                    guards.push(g);
                    Some((s.addr, s.len))
                }
                None => None,
            };
            Some(KvIn { k, v, slots, k_scale: kv.k_scale, v_scale: kv.v_scale })
        }
        None => None,
    };
    let (error_flag, flag_guard) = ErrorFlag::device_addr(error_flag, lowp, stream)?;

    let params = plan(&PlanInput {
        op,
        cfg: *settings,
        qkv,
        weights: weights.map(|(q, k)| (q.addr, q.len, k.addr, k.len)),
        positions: positions.map(|(p, i64s)| (p.addr, p.len, i64s)),
        rotary,
        outputs,
        kv,
        error_flag,
    })?;
    let f = lowp.function(
        op.name(),
        &kernel_name::<T>(op, settings.head_dim, neox_rows(&params, op)),
        "compute capability 8.0",
    )?;
    if params.tokens == 0 {
        return Ok(());
    }
    let (warps, smem) = block_shape(&params, settings.head_dim, op);
    // One CTA per token, at most as many as are resident at once (grid-stride over the rest).
    let sms = lowp.sm_count() as u64;
    let grid = if params.tokens <= sms {
        params.tokens
    } else {
        let per_sm = f
            .occupancy_max_active_blocks_per_multiprocessor(32 * warps, smem as usize, None)
            .op("cuOccupancyMaxActiveBlocksPerMultiprocessor")?;
        params.tokens.min(sms * per_sm.max(1) as u64)
    };
    let cfg = LaunchConfig {
        grid_dim: (grid.min(i32::MAX as u64) as u32, 1, 1),
        block_dim: (32 * warps, 1, 1),
        shared_mem_bytes: smem,
    };
    let mut b = stream.launch_builder(&f);
    b.arg(&params);
    // SAFETY: `plan` checked every shape, length, stride and overlap against the buffers whose
    // addresses are in `params` (all on this context, guards alive until after the launch); the
    // kernel touches only those ranges, clamps device-side positions and slots, and runs with the
    // block size (1..=8 warps) and shared memory of `block_shape`.
    unsafe { b.launch(cfg) }.op("cuLaunchKernel")?;
    drop(guards);
    drop(flag_guard);
    Ok(())
}
