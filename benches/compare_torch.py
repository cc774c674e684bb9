#!/usr/bin/env python3
"""PyTorch anchors for `cargo bench --bench kernels`: the same cases, by the same names, timed the
same way, with PyTorch eager, torch.compile, and cuBLAS for the blockwise FP8 GEMM.

    python3 benches/compare_torch.py                                # every case
    python3 benches/compare_torch.py --filter add_rmsnorm/          # cases whose name contains a pattern
    python3 benches/compare_torch.py --json target/torch-bench.json # also write the results as JSON
    python3 benches/compare_torch.py --list                         # names only (no PyTorch, no GPU)
    python3 benches/compare_torch.py --check                        # the calls on fake tensors (PyTorch, no GPU)
    python3 benches/compare_torch.py --join target/lowp-bench.json  # time the anchors, print them beside lowp's
    python3 benches/compare_torch.py --join target/lowp-bench.json --anchors target/torch-bench.json
                                                                    # join two result files (no GPU)

Case names are `op/dtype/shape[/variant]`, identical to `cargo bench --bench kernels -- --list`
(tests/bench_names.rs checks it); dtypes in lowp's short names (f32, bf16, f16, e4m3, e5m2, e2m1,
ue8m0). docs/benchmarks.md describes the names and the joined table.

Method (as in benches/kernels.rs): each call uses one of K sets of input and output tensors, in
turn, with K chosen so the sets together exceed twice the L2 cache (every call reads its inputs
from DRAM); after a warm-up, calls are timed one by one with CUDA event pairs, and the median
(and minimum) is reported. Before the timed calls the stream gets a head start of device copies
long enough for the host to enqueue them all, so the GPU does not idle between a start event and
its work. Bandwidth counts the bytes the operation must move, the same count as the Rust side,
as a percentage of the device-to-device copy bandwidth measured at start with a large
`dst.copy_(src)`.

A result is `ok`, `n/a` (this PyTorch has no equivalent: a missing function or a shape it
refuses; the reason says which), `skipped` (not enough device memory) or `failed` (the call
raised). Exit status 2 when there is no CUDA device (or no PyTorch) and something was to be
measured.
"""

import argparse
import importlib
import json
import logging
import os
import sys
import time
from typing import NamedTuple

NO_DEVICE = "no CUDA device: benchmarks need an NVIDIA GPU and driver"

MIB = 1 << 20
GIB = 1 << 30
# A gap this long between one timed call's end event and the next one's start event means the GPU
# waited for the host.
STARVED_GAP_US = 5.0
MAX_HEAD_START_S = 0.25
EPS = 1e-6

torch = None  # imported when something is measured: --list, --help and joining files need no PyTorch
CHECK = False  # --check: the calls run once on fake tensors, nothing is timed


# ------------------------------------------------------------------------------------------------
# Cases: the same list, in the same order, as benches/kernels.rs and benches/cases/*.rs.

# rmsnorm: [rows, hidden]; the first is the headline shape, the only one also run in f16.
NORM_SHAPES = ((16384, 8192), (4096, 4096), (16384, 5120), (1, 8192), (128, 16384), (16384, 2048))
# cast: [rows, cols] of the f32 source, and the destinations.
CAST_SHAPE = (16384, 8192)
CAST_DTYPES = ("bf16", "f16", "e4m3", "e5m2", "e2m1", "ue8m0")
# qk_norm_rope: Hq, Hk, D; the prefill batch and the decode batches.
QK_HEADS = (32, 8, 128)
QK_PREFILL = 16384
QK_DECODE = (1, 8, 64)
QK_MAX_POS = 32768
QK_THETA = 1e6
# fp8 quantizers (DeepSeek-V3): [M, K] per-token groups, [N, K] 128x128 blocks.
FP8_GROUP_SHAPES = ((4096, 7168), (16384, 7168), (4096, 2048))
FP8_BLOCK_SHAPES = ((7168, 2048), (24576, 1536))
# microscaling: [rows, K], square and MoE-like (16 experts x 1024 tokens).
MX_SHAPES = ((8192, 8192), (16 * 1024, 7168))
# gemm: the blockwise FP8 GEMM (M, N, K) and the grouped GEMMs (E, tokens per expert, N, K).
GEMM_SHAPES = ((4096, 7168, 2048), (4096, 24576, 1536), (4096, 7168, 16384), (4096, 2112, 7168),
               (128, 7168, 2048), (64, 7168, 2048), (8192, 8192, 8192),
               (4096, 4096, 7168), (128, 7168, 16384), (64, 7168, 16384),
               # decode shapes whose 64 x 64 tiles underfill the SMs (lowp runs split-K clusters)
               (64, 2112, 7168), (64, 4096, 7168), (32, 576, 7168))
GROUPED_SHAPES = ((8, 512, 4096, 7168), (32, 256, 4096, 7168), (64, 128, 7168, 2048), (4, 8192, 4096, 7168))
# the masked layout: E slabs of t rows, all routed (3-D operands on the PyTorch side)
MASKED_SHAPES = ((4, 256, 4096, 7168),)

# The implementations each op is timed with (where not listed: eager and torch.compile). The
# GEMMs are single library calls: torch.compile would call the same kernel.
IMPLS = {
    "empty_kernel": ("eager",),
    "fp8_blockwise_gemm": ("cublas",),
    "bf16_grouped_gemm": ("eager",),
    "fp8_grouped_gemm": ("eager",),
}
ALL_IMPLS = ("eager", "compile", "cublas")


class Case(NamedTuple):
    op: str
    dtype: str
    shape: str
    variant: str  # "" for none
    dims: tuple  # the numbers the runner needs

    @property
    def name(self):
        return f"{self.op}/{self.dtype}/{self.shape}" + (f"/{self.variant}" if self.variant else "")


def cases():
    """Every case, in the order benches/kernels.rs runs them."""
    out = [Case("empty_kernel", "f32", "1x1", "", ())]
    for op in ("add_rmsnorm", "rmsnorm"):
        for rows, hidden in NORM_SHAPES:
            out.append(Case(op, "bf16", f"{rows}x{hidden}", "", (rows, hidden)))
        rows, hidden = NORM_SHAPES[0]
        out.append(Case(op, "f16", f"{rows}x{hidden}", "", (rows, hidden)))
    rows, cols = CAST_SHAPE
    for dst in CAST_DTYPES:
        op = "cast_ue8m0" if dst == "ue8m0" else "cast"
        out.append(Case(op, dst, f"{rows}x{cols}", "", (rows, cols)))
    hq, hk, d = QK_HEADS

    def qk(tokens, dtype, computed):
        return Case("qk_norm_rope", dtype, f"{tokens}x{hq}-{hk}x{d}", "computed" if computed else "", (tokens, computed))
    out += [qk(QK_PREFILL, "bf16", False), qk(QK_PREFILL, "bf16", True), qk(QK_PREFILL, "f16", False)]
    out += [qk(t, "bf16", False) for t in QK_DECODE]
    for m, k in FP8_GROUP_SHAPES:
        out.append(Case("fp8_quantize_group", "bf16", f"{m}x{k}", "", (m, k)))
    for n, k in FP8_BLOCK_SHAPES:
        out.append(Case("fp8_quantize_block", "bf16", f"{n}x{k}", "", (n, k)))
    for rows, k in MX_SHAPES:
        for op in ("nvfp4_quantize", "mxfp8_quantize"):
            out.append(Case(op, "bf16", f"{rows}x{k}", "", (rows, k)))
    for m, n, k in GEMM_SHAPES:
        out.append(Case("fp8_blockwise_gemm", "e4m3", f"{m}x{n}x{k}", "", (m, n, k)))
    for op, dtype in (("bf16_grouped_gemm", "bf16"), ("fp8_grouped_gemm", "e4m3")):
        for zipf in (False, True):
            for e, t, n, k in GROUPED_SHAPES:
                out.append(Case(op, dtype, f"{e}x{t}x{n}x{k}", "zipf" if zipf else "", (e, t, n, k)))
        for e, t, n, k in MASKED_SHAPES:
            out.append(Case(op, dtype, f"{e}x{t}x{n}x{k}", "masked", (e, t, n, k)))
    return out


def selects(name, patterns, exact):
    return not patterns or any(name == p if exact else p in name for p in patterns)


# ------------------------------------------------------------------------------------------------
# Reference semantics, as lowp's kernels compute them (f32 math, one rounding per output).

def rmsnorm(x, w, eps: float):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def add_rmsnorm(x, res, w, eps: float):
    # The residual is updated in place with the rounded sum, and the norm is taken of that value.
    r = (res.float() + x.float()).to(x.dtype)
    res.copy_(r)
    return rmsnorm(r, w, eps)


E2M1_BOUNDS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def e2m1_packed(q):
    """E2M1 codes of f32 values `q` (last dimension even), nearest by magnitude, packed two per
    byte, element 2i in the low nibble."""
    bounds = torch.tensor(E2M1_BOUNDS, device=q.device)
    code = torch.bucketize(q.abs().clamp(max=6.0), bounds).to(torch.uint8) | ((q < 0).to(torch.uint8) << 3)
    code = code.view(*q.shape[:-1], q.shape[-1] // 2, 2)
    return code[..., 0] | (code[..., 1] << 4)


def ue8m0_floor(x):
    """UE8M0 codes 2^floor(log2 |x|), biased by 127 and clamped to the finite range."""
    return (torch.floor(torch.log2(x.abs())) + 127).clamp(0, 254).to(torch.uint8)


def cast_fn(dst):
    """f32 -> `dst` as lowp rounds: nearest-even, saturating (FP8), FP4 packed, UE8M0 floor.
    PyTorch casts to FP8 without saturating, so the clamp is written out; it has no cast to
    packed FP4 or (in most releases) UE8M0, so those are the arithmetic written out."""
    if dst == "bf16":
        return lambda x: x.to(torch.bfloat16)
    if dst == "f16":
        return lambda x: x.to(torch.float16)
    if dst == "e4m3":
        return lambda x: x.clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    if dst == "e5m2":
        return lambda x: x.clamp(-57344.0, 57344.0).to(torch.float8_e5m2)
    if dst == "e2m1":
        return lambda x: e2m1_packed(x.view(-1))
    if dst == "ue8m0":
        return ue8m0_floor
    raise ValueError(dst)


CAST_BYTES = {"bf16": 2, "f16": 2, "e4m3": 1, "e5m2": 1, "e2m1": 0.5, "ue8m0": 1}
CAST_NOTES = {"e2m1": "no PyTorch cast to packed FP4: bucketize and pack written out",
              "ue8m0": "UE8M0 floor written out (floor(log2 |x|) + 127)"}


# The Qwen3-style attention prologue (Hugging Face `Qwen3RMSNorm` on q and k heads, then
# `apply_rotary_pos_emb` with `rotate_half`), unfused, in place on the packed qkv buffer.
def qk_apply(qkv, q_w, k_w, cos, sin, eps: float):
    hq, hk, d = QK_HEADS
    t = qkv.shape[0]
    q = qkv[:, : hq * d].view(t, hq, d)
    k = qkv[:, hq * d : (hq + hk) * d].view(t, hk, d)

    def norm(x, w):
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)
        return w * xf.to(x.dtype)

    def rotate_half(x):
        x1, x2 = x.chunk(2, dim=-1)
        return torch.cat((-x2, x1), dim=-1)

    cos = torch.cat((cos, cos), dim=-1).unsqueeze(1).to(qkv.dtype)
    sin = torch.cat((sin, sin), dim=-1).unsqueeze(1).to(qkv.dtype)
    q, k = norm(q, q_w), norm(k, k_w)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    qkv[:, : hq * d].copy_(q.reshape(t, hq * d))
    qkv[:, hq * d : (hq + hk) * d].copy_(k.reshape(t, hk * d))
    return qkv


def qk_norm_rope(qkv, q_w, k_w, cos_sin, positions, eps: float):
    """cos/sin rows gathered from a [max_pos, D] cache."""
    cos, sin = cos_sin[positions].chunk(2, dim=-1)
    return qk_apply(qkv, q_w, k_w, cos, sin, eps)


def qk_norm_rope_computed(qkv, q_w, k_w, inv_freq, positions, eps: float):
    """cos/sin computed from the positions and the inverse frequencies."""
    ang = positions.float()[:, None] * inv_freq[None, :]
    return qk_apply(qkv, q_w, k_w, ang.cos(), ang.sin(), eps)


# DeepGEMM's FP8 recipe (per_token_cast_to_fp8 / per_block_cast_to_fp8), the same arithmetic as
# lowp::fp8's quantizers; scales M-major for the activations as the GEMM reads them.
def fp8_quantize_group(x):
    m, k = x.shape
    xv = x.view(m, k // 128, 128).float()
    amax = xv.abs().amax(dim=2).clamp(min=1e-4)
    q = (xv * (448.0 / amax).unsqueeze(2)).to(torch.float8_e4m3fn).view(m, k)
    return q, (amax / 448.0).t().contiguous()


def fp8_quantize_block(w):
    n, k = w.shape  # n a multiple of 128 in the benchmark shapes
    wv = w.view(n // 128, 128, k // 128, 128).float()
    amax = wv.abs().amax(dim=(1, 3), keepdim=True).clamp(min=1e-4)
    q = (wv * (448.0 / amax)).to(torch.float8_e4m3fn).view(n, k)
    return q, (amax / 448.0).view(n // 128, k // 128)


def nvfp4_quantize(x, g):
    """NVFP4: 16-element blocks, E4M3 block scales (amax / 6 · g), E2M1 codes packed two per byte;
    the 128x4 swizzle of the scales is left out, which only flatters the anchor."""
    m, k = x.shape
    xb = x.float().view(m, k // 16, 16)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    s = (amax / 6.0 * g).clamp(max=448.0).to(torch.float8_e4m3fn)
    sf = s.float()
    q = torch.where(sf > 0, xb * g / sf, torch.zeros_like(xb))
    return e2m1_packed(q.view(m, k)), s.view(m, k // 16)


def mxfp8_quantize(x):
    """MXFP8 with the OCP scale rule: 32-element blocks, UE8M0 scale 2^(floor(log2 amax) - 8),
    E4M3 codes saturated at ±448 (the 128x4 swizzle of the scales is left out, as for NVFP4)."""
    m, k = x.shape
    xb = x.float().view(m, k // 32, 32)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    e = (torch.floor(torch.log2(amax)) - 8).clamp(min=-127, max=127)
    q = (xb * torch.exp2(-e)).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q.view(m, k), (e + 127).to(torch.uint8).view(m, k // 32)


def blockwise_scaled_mm():
    """A callable (a [M,K] e4m3, b [N,K] e4m3, sa [M,K/128] f32 M-major, sb) -> bf16, with sb the
    f32 weight scales [⌈N/128⌉, L4] row-major, L4 = K/128 rounded up to a multiple of 4 (cuBLAS's
    padding; the pad columns are never read), through torch.nn.functional.scaled_mm
    (BlockWise1x128 x BlockWise128x128) where it exists, else torch._scaled_mm."""
    F = torch.nn.functional
    if hasattr(F, "scaled_mm") and hasattr(F, "ScalingType"):
        st = F.ScalingType

        def mm(a, b, sa, sb):
            # scale_b [L4, ⌈N/128⌉] with strides (1, L4)
            return F.scaled_mm(a, b.t(), sa, st.BlockWise1x128, sb.t(), st.BlockWise128x128,
                               output_dtype=torch.bfloat16)
        return mm

    def mm(a, b, sa, sb):
        # scale_b [K/128, ⌈N/128⌉]
        return torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb.t()[:a.shape[1] // 128], out_dtype=torch.bfloat16)
    return mm


def group_ends(e, t, zipf):
    """Cumulative group ends for `e` experts and `e · t` tokens: equal, or Zipf(1.1)-weighted (as
    benches/cases/gemm.rs)."""
    total = e * t
    if zipf:
        w = [1.0 / (1.0 + i) ** 1.1 for i in range(e)]
        s = sum(w)
        sizes = [int(x / s * total) for x in w]
        sizes[0] += total - sum(sizes)
    else:
        sizes = [t] * e
    ends, acc = [], 0
    for v in sizes:
        acc += v
        ends.append(acc)
    return torch.tensor(ends, device="cuda", dtype=torch.int32)


# ------------------------------------------------------------------------------------------------
# Runners: each yields one result row per implementation it times (its buffers are freed when it
# returns).

class Bench(NamedTuple):
    timer: "Timer"
    l2_bytes: int
    compile_mode: str
    device: str


def row(case, impl, status, **fields):
    return {"name": case.name, "op": case.op, "dtype": case.dtype, "shape": case.shape,
            "variant": case.variant or None, "impl": impl, "status": status, **fields}


def first_line(e):
    return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"


def timed(b, case, impls, base, call, sets, nbytes, flops=0, note=None, refused="failed"):
    """Times `call(fn, i)` for each implementation: `fn` is `base` (eager, cublas) or
    torch.compile of it. Yields the result rows. An exception is `refused` ("failed", or "n/a"
    where the library refusing a shape means it has no equivalent)."""
    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()  # a fresh cache: one compile per case
            # under --check, Dynamo's tracing alone (a graph break fails fullgraph), no code generation
            how = {"backend": "eager"} if CHECK else {"mode": b.compile_mode}
            fn = torch.compile(base, dynamic=False, fullgraph=True, **how)
        else:
            fn = base
        try:
            median, minimum, starved = b.timer.time(sets, lambda i, fn=fn: call(fn, i))
        except Exception as e:  # a compile failure or a refused shape should not end the run
            yield row(case, impl, refused, reason=first_line(e))
            continue
        gbps = nbytes / (median * 1e3)
        r = row(case, impl, "ok", median_us=median, min_us=minimum, gbps=gbps,
                pct_copy=100 * gbps / b.timer.copy_gbps, tflops=flops / (median * 1e6) if flops else None,
                bytes=int(nbytes), flops=flops, sets=sets, iters=b.timer.iters, starved=starved,
                device=b.device, copy_gbps=b.timer.copy_gbps)
        if note:
            r["note"] = note
        yield r


def no_memory(case, impls, why):
    for impl in impls:
        yield row(case, impl, "skipped", reason=why)


def run_empty(b, case, impls):
    one = torch.zeros(1, device="cuda")
    yield from timed(b, case, impls, lambda t: t.zero_(), lambda fn, i: fn(one), 1, 0,
                     note="a 1-element zero_(): PyTorch's smallest kernel launch")


def run_norm(b, case, impls):
    rows, hidden = case.dims
    op = case.op
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[case.dtype]
    elem = 2
    n = rows * hidden
    matrices = 3 if op == "add_rmsnorm" else 2  # x, out (and residual), per set
    sets = sets_for(matrices * n * elem, b.l2_bytes)
    # Inputs and outputs of every set, plus eager's f32 temporaries (a few live at once).
    why = lacks_memory(sets * matrices * n * elem + hidden * elem + 4 * n * 4)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator((rows << 32) ^ hidden ^ (0 if case.dtype == "bf16" else 1 << 56))
    w = random_matrix(1, hidden, dtype, gen).reshape(hidden)
    # Separate tensors per set (no views into one big buffer): each starts at storage offset 0,
    # so torch.compile sees the same input layout for every set and compiles once.
    xs = [random_matrix(rows, hidden, dtype, gen) for _ in range(sets)]
    nbytes = ((matrices + (1 if op == "add_rmsnorm" else 0)) * n + hidden) * elem
    if op == "add_rmsnorm":
        res = [random_matrix(rows, hidden, dtype, gen) for _ in range(sets)]
        yield from timed(b, case, impls, add_rmsnorm, lambda fn, i: fn(xs[i], res[i], w, EPS), sets, nbytes)
    else:
        yield from timed(b, case, impls, rmsnorm, lambda fn, i: fn(xs[i], w, EPS), sets, nbytes)


def run_cast(b, case, impls):
    rows, cols = case.dims
    n = rows * cols
    nbytes = int(n * 4 + n * CAST_BYTES[case.dtype])
    sets = sets_for(nbytes, b.l2_bytes)
    why = lacks_memory(sets * nbytes + 4 * n * 4)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(n ^ (1 << 48))
    xs = [random_matrix(rows, cols, torch.float32, gen) for _ in range(sets)]
    yield from timed(b, case, impls, cast_fn(case.dtype), lambda fn, i: fn(xs[i]), sets, nbytes,
                     note=CAST_NOTES.get(case.dtype))


def run_qk(b, case, impls):
    tokens, computed = case.dims
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[case.dtype]
    hq, hk, d = QK_HEADS
    cols = (hq + 2 * hk) * d
    sets = sets_for(tokens * cols * 2, b.l2_bytes)
    why = lacks_memory(sets * tokens * cols * 2 + QK_MAX_POS * d * 4 + 8 * tokens * (hq + hk) * d * 4)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(tokens ^ (d << 40))
    qkvs = [random_matrix(tokens, cols, dtype, gen) for _ in range(sets)]
    q_w = random_matrix(1, d, dtype, gen).reshape(d)
    k_w = random_matrix(1, d, dtype, gen).reshape(d)
    inv64 = 1.0 / (QK_THETA ** (torch.arange(0, d, 2, device="cuda", dtype=torch.float64) / d))
    poss = [torch.randint(0, QK_MAX_POS, (tokens,), device="cuda", generator=gen) for _ in range(sets)]
    # q and k read and written; the cache rows read (none when computed); positions.
    nbytes = tokens * (hq + hk) * d * 2 * 2 + (0 if computed else tokens * d * 4) + tokens * 4
    if computed:
        inv = inv64.float()
        yield from timed(b, case, impls, qk_norm_rope_computed,
                         lambda fn, i: fn(qkvs[i], q_w, k_w, inv, poss[i], EPS), sets, nbytes)
    else:
        ang = torch.arange(QK_MAX_POS, device="cuda", dtype=torch.float64)[:, None] * inv64[None, :]
        cos_sin = torch.cat((ang.cos(), ang.sin()), dim=-1).float()
        yield from timed(b, case, impls, qk_norm_rope,
                         lambda fn, i: fn(qkvs[i], q_w, k_w, cos_sin, poss[i], EPS), sets, nbytes)


def run_fp8_quantize(b, case, impls):
    rows, cols = case.dims
    n = rows * cols
    sets = sets_for(n * 3, b.l2_bytes)
    why = lacks_memory(sets * n * 2 + 6 * n * 4)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(rows ^ (cols << 24))
    xs = [random_matrix(rows, cols, torch.bfloat16, gen) for _ in range(sets)]
    group = case.op == "fp8_quantize_group"
    nbytes = n * 3 + (rows if group else rows // 128) * (cols // 128) * 4
    base = fp8_quantize_group if group else fp8_quantize_block
    yield from timed(b, case, impls, base, lambda fn, i: fn(xs[i]), sets, nbytes)


def run_mx_quantize(b, case, impls):
    rows, cols = case.dims
    n = rows * cols
    nvfp4 = case.op == "nvfp4_quantize"
    nbytes = n * 2 + n // 2 + n // 16 if nvfp4 else n * 2 + n + n // 32
    sets = sets_for(nbytes, b.l2_bytes)
    why = lacks_memory(sets * n * 2 + 12 * n * 4)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(rows ^ (cols << 20) ^ (0 if nvfp4 else 1 << 40))
    xs = [random_matrix(rows, cols, torch.bfloat16, gen) for _ in range(sets)]
    note = "scales not swizzled (flatters the anchor)"
    if nvfp4:
        # N(0, 1) inputs stay within ±3.5: the global scale of an amax of 4 keeps NVFP4 in range.
        g = torch.tensor(448.0 * 6.0 / 4.0, device="cuda")
        yield from timed(b, case, impls, nvfp4_quantize, lambda fn, i: fn(xs[i], g), sets, nbytes, note=note)
    else:
        yield from timed(b, case, impls, mxfp8_quantize, lambda fn, i: fn(xs[i]), sets, nbytes, note=note)


def fp8_codes(rows, cols, gen, lead=()):
    x = torch.randn(*lead, rows, cols, device="cuda", generator=gen) * 64
    return x.clamp(-448, 448).to(torch.float8_e4m3fn)


def run_blockwise_gemm(b, case, impls):
    m, n, k = case.dims
    g = k // 128
    set_bytes = m * k + n * k + m * n * 2
    sets = sets_for(set_bytes, b.l2_bytes)
    why = lacks_memory(sets * set_bytes)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(m ^ (n << 20) ^ (k << 40))
    a_s = [fp8_codes(m, k, gen) for _ in range(sets)]
    b_s = [fp8_codes(n, k, gen) for _ in range(sets)]
    sa = torch.full((g, m), 1 / 448, device="cuda").t()  # [M, K/128], M-major (outer-dim-major)
    sb = torch.full(((n + 127) // 128, (g + 3) // 4 * 4), 1 / 448, device="cuda")  # see blockwise_scaled_mm
    mm = blockwise_scaled_mm()
    # cuBLAS refuses some shapes (e.g. N = 2112): that is "n/a", not a failure
    yield from timed(b, case, impls, mm, lambda fn, i: fn(a_s[i], b_s[i], sa, sb), sets, set_bytes,
                     flops=2 * m * n * k, refused="n/a")


def run_grouped_gemm(b, case, impls):
    e, t, n, k = case.dims
    fp8 = case.op == "fp8_grouped_gemm"
    fn_name = "_scaled_grouped_mm" if fp8 else "_grouped_mm"
    if not hasattr(torch, fn_name):
        for impl in impls:
            yield row(case, impl, "n/a", reason=f"torch {torch.__version__} has no torch.{fn_name}")
        return
    rows = e * t
    elem = 1 if fp8 else 2
    set_bytes = rows * k * elem + e * n * k * elem + rows * n * 2
    sets = sets_for(set_bytes, b.l2_bytes)
    why = lacks_memory(sets * set_bytes * 2)
    if why:
        yield from no_memory(case, impls, why)
        return
    gen = generator(rows ^ (n << 20) ^ (k << 40))
    # contiguous: 2-D x [rows, K] with cumulative group ends; masked: 3-D x [E, t, K], no offsets
    masked = case.variant == "masked"
    offs = None if masked else group_ends(e, t, case.variant == "zipf")
    lead = (e,) if masked else ()
    flops = 2 * rows * n * k
    if fp8:
        xs = [fp8_codes(t if masked else rows, k, gen, lead=lead) for _ in range(sets)]
        ws = [fp8_codes(n, k, gen, lead=(e,)) for _ in range(sets)]
        sx = torch.full((e, t) if masked else (rows,), 1 / 448, device="cuda")
        sw = torch.full((e, n), 1 / 448, device="cuda")

        def mm(x, w):
            return torch._scaled_grouped_mm(x, w.transpose(-2, -1), sx, sw, offs=offs, out_dtype=torch.bfloat16)
        note = "torch._scaled_grouped_mm: rowwise scales, not lowp's 1x128 / 128x128 blocks"
    else:
        xs = [random_matrix(rows, k, torch.bfloat16, gen).reshape(*lead, -1, k) for _ in range(sets)]
        ws = [torch.randn(e, n, k, device="cuda", generator=gen).to(torch.bfloat16) for _ in range(sets)]

        def mm(x, w):
            return torch._grouped_mm(x, w.transpose(-2, -1), offs=offs, out_dtype=torch.bfloat16)
        note = "torch._grouped_mm"
    if masked:
        note += " on 3-D operands (batched: every slab full, as the masked case routes every row)"
    yield from timed(b, case, impls, mm, lambda fn, i: fn(xs[i], ws[i]), sets, set_bytes, flops=flops,
                     note=note, refused="n/a")


RUNNERS = {
    "empty_kernel": run_empty,
    "add_rmsnorm": run_norm,
    "rmsnorm": run_norm,
    "cast": run_cast,
    "cast_ue8m0": run_cast,
    "qk_norm_rope": run_qk,
    "fp8_quantize_group": run_fp8_quantize,
    "fp8_quantize_block": run_fp8_quantize,
    "nvfp4_quantize": run_mx_quantize,
    "mxfp8_quantize": run_mx_quantize,
    "fp8_blockwise_gemm": run_blockwise_gemm,
    "bf16_grouped_gemm": run_grouped_gemm,
    "fp8_grouped_gemm": run_grouped_gemm,
}


# ------------------------------------------------------------------------------------------------
# Timing

def generator(seed):
    """A CUDA random generator seeded with `seed` (a CPU one under --check, where the tensors are
    fake and no device is opened)."""
    gen = torch.Generator(device="cpu" if CHECK else "cuda")
    gen.manual_seed(seed)
    return gen


def sets_for(set_bytes, l2_bytes):
    """Buffer sets to rotate through so that together they exceed twice the L2 (at least 2)."""
    return max(2, 2 * l2_bytes // max(1, set_bytes) + 1)


def lacks_memory(need):
    """Why `need` bytes (plus 256 MiB of slack) do not fit in the free device memory, or None."""
    if CHECK:
        return None
    torch.cuda.synchronize()  # let the previous case's buffers go back
    free, _ = torch.cuda.mem_get_info()
    if need + 256 * MIB > free:
        return f"needs {need / GIB:.2f} GiB of device memory, {free / GIB:.2f} GiB free"
    return None


def median_min(values):
    v = sorted(values)
    n = len(v)
    median = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return median, v[0]


class Timer:
    """Event-timed calls on the current stream, with a pair of large buffers that measure the
    copy bandwidth at start and later give the stream its head start before each timed batch."""

    def __init__(self, warmup, iters, copy_warmup, copy_iters):
        self.warmup = max(1, warmup)
        self.iters = max(2, iters)
        free, _ = torch.cuda.mem_get_info()
        pad = min(GIB, free // 8) // MIB * MIB
        if pad < 64 * MIB:
            raise RuntimeError(f"only {free // MIB} MiB of device memory free")
        self.src = torch.zeros(pad, dtype=torch.uint8, device="cuda")
        self.dst = torch.zeros(pad, dtype=torch.uint8, device="cuda")
        self.copy_gbps = self._measure_copy(max(0, copy_warmup), max(1, copy_iters))

    @staticmethod
    def _events(n):
        return [torch.cuda.Event(enable_timing=True) for _ in range(n)]

    def _measure_copy(self, warmup, iters):
        for _ in range(warmup):
            self.dst.copy_(self.src)
        starts, ends = self._events(iters), self._events(iters)
        for s, e in zip(starts, ends):
            s.record()
            self.dst.copy_(self.src)
            e.record()
        torch.cuda.synchronize()
        median, _ = median_min([s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)])
        return 2 * self.src.numel() / (median * 1e3)

    def _head_start(self, seconds):
        left = int(min(seconds, MAX_HEAD_START_S) * self.copy_gbps * 1e9 / 2)
        while left > 0:
            chunk = min(max(left, MIB), self.src.numel())
            self.dst[:chunk].copy_(self.src[:chunk])
            left -= chunk

    def time(self, sets, call):
        """Times `call(i)`, which enqueues one operation on buffer set `i` (in range(sets)).
        Returns (median µs, min µs, starved launches)."""
        starts, ends = self._events(self.iters), self._events(self.iters)
        call(0)  # untimed: compiles, and surfaces errors before anything is measured
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for j in range(1, self.warmup + 1):
            starts[0].record()
            call(j % sets)
            ends[0].record()
        host_per_call = (time.perf_counter() - t0) / self.warmup
        torch.cuda.synchronize()
        self._head_start(2 * host_per_call * self.iters + 200e-6)
        for j in range(self.iters):
            starts[j].record()
            call((self.warmup + 1 + j) % sets)
            ends[j].record()
        torch.cuda.synchronize()
        us = [s.elapsed_time(e) * 1e3 for s, e in zip(starts, ends)]
        gaps = [ends[j].elapsed_time(starts[j + 1]) * 1e3 for j in range(self.iters - 1)]
        median, minimum = median_min(us)
        return median, minimum, sum(g > STARVED_GAP_US for g in gaps)


def random_matrix(rows, cols, dtype, gen):
    """~N(0, 1) values, pushed away from zero to at least 1/64 in magnitude."""
    x = torch.randn(rows, cols, device="cuda", dtype=torch.float32, generator=gen)
    x = torch.where(x.abs() < 1 / 64, torch.copysign(torch.full_like(x, 1 / 64), x), x)
    return x.to(dtype)


# ------------------------------------------------------------------------------------------------
# Measuring, tables, joining

BYTES_NOTE = ("bytes: rmsnorm = x read + out written + weight; add_rmsnorm = x read + residual read and written "
              "+ out written + weight; cast = f32 read + destination written; qk_norm_rope = q and k read and "
              "written + cos/sin cache rows (none when computed) + positions; fp8 quantize = input read + E4M3 "
              "written + f32 scales written; nvfp4/mxfp8_quantize = input read + packed codes + scales written; "
              "GEMMs = operands read once + bf16 output written")


def fmt_table(headers, rows, left=1):
    """Lines of a table whose columns are as wide as their widest cell; the first `left` columns
    left-aligned, the others right-aligned."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return [line(headers)] + [line(r) for r in rows]


def measure(selected, args):
    """Times the selected cases with PyTorch; returns the results document, or an exit status."""
    global torch
    try:
        torch = importlib.import_module("torch")
    except ImportError as e:
        print(f"PyTorch is not installed ({e}); these anchors need PyTorch with CUDA", file=sys.stderr)
        return 2
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        print(f"{NO_DEVICE} (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    wanted = [i for i in ALL_IMPLS if not getattr(args, f"no_{i}")]

    props = torch.cuda.get_device_properties(0)
    l2_bytes = int(getattr(props, "L2_cache_size", 0))
    free, total = torch.cuda.mem_get_info()
    print(
        f"device: {props.name} (compute capability {props.major}.{props.minor}), torch {torch.__version__}, "
        f"{props.multi_processor_count} SMs, L2 {l2_bytes / MIB:.1f} MiB, "
        f"{total / GIB:.1f} GiB memory ({free / GIB:.1f} GiB free)"
    )
    copy_iters = max(50, args.iters // 2)
    timer = Timer(args.warmup, args.iters, 5, copy_iters)
    print(
        f"copy bandwidth: {timer.copy_gbps:.0f} GB/s (dst.copy_(src), {timer.src.numel() // MIB} MiB -> "
        f"{timer.dst.numel() // MIB} MiB, read + written bytes, median of {copy_iters})"
    )
    if args.iters < 50:
        print(f"only {args.iters} timed calls per case: numbers are not measurements")
    print()
    w = max([4] + [len(c.name) for c in selected])
    print(f"{'case':<{w}}  {'impl':<7} {'median µs':>10} {'min µs':>10} {'GB/s':>9} {'% copy':>7} {'TFLOP/s':>8} {'sets':>6}")

    b = Bench(timer, l2_bytes, args.compile_mode, props.name)
    results = []
    doc = {
        "harness": "torch",
        "device": {
            "name": props.name,
            "compute_capability": [props.major, props.minor],
            "sms": props.multi_processor_count,
            "l2_bytes": l2_bytes,
            "total_memory_bytes": total,
        },
        "torch": str(torch.__version__),
        "compile_mode": args.compile_mode,
        "eps": EPS,
        "warmup": args.warmup,
        "iters": args.iters,
        "copy_gbps": timer.copy_gbps,
        "results": results,
    }
    if args.json:
        write_json(args.json, doc, quiet=True)  # the device and copy bandwidth, before any case
    host_bound = False
    for case in selected:
        impls = [i for i in IMPLS.get(case.op, ("eager", "compile")) if i in wanted]
        if not impls:
            continue  # none of the implementations asked for applies (a GEMM with --no-eager --no-cublas)
        for r in RUNNERS[case.op](b, case, impls):
            results.append(r)
            lead = f"{case.name:<{w}}  {r['impl']:<7}"
            if r["status"] != "ok":
                print(f"{lead}  {r['status']}: {r['reason']}", flush=True)
                continue
            mark = ""
            if r["starved"] * 10 > r["iters"]:
                host_bound = True
                mark = f"  ! {r['starved']} of {r['iters']} calls host-bound"
            tflops = f"{r['tflops']:.1f}" if r["tflops"] else "-"
            gbps = f"{r['gbps']:>9.1f} {r['pct_copy']:>6.1f}%" if r["bytes"] else f"{'-':>9} {'-':>7}"
            print(f"{lead} {r['median_us']:>10.2f} {r['min_us']:>10.2f} {gbps} {tflops:>8} {r['sets']:>6}{mark}",
                  flush=True)
        torch.cuda.empty_cache()  # the runner has returned: its buffers are free
        if args.json:
            # Rewritten after every case: a run that is stopped keeps the cases measured before.
            write_json(args.json, doc, quiet=True)
    print()
    if host_bound:
        print("!: the GPU idled between timed calls (the host could not keep it fed), "
              "so those times may include launch latency")
    print(BYTES_NOTE)
    return doc


def check(selected, args):
    """--check: runs each selected case's calls once on fake CUDA tensors (PyTorch's
    FakeTensorMode: shapes, dtypes, strides and each op's meta checks; no device is opened,
    nothing is timed; torch.compile traced by Dynamo with fullgraph, without code generation) and
    prints what PyTorch accepts or refuses. Exit status 1 when a call failed, 2 without
    PyTorch."""
    global torch, CHECK
    try:
        torch = importlib.import_module("torch")
    except ImportError as e:
        print(f"PyTorch is not installed ({e}); --check needs PyTorch (no GPU)", file=sys.stderr)
        return 2
    fake = importlib.import_module("torch._subclasses.fake_tensor")
    # the fake-tensor dispatcher logs each refusal with a traceback; the row says it in one line
    logging.getLogger("torch._subclasses.fake_tensor").setLevel(logging.CRITICAL)
    CHECK = True

    class Once:
        copy_gbps = 1.0
        iters = 1

        def time(self, sets, call):
            call(0)
            return 1.0, 1.0, 0

    b = Bench(Once(), 64 * MIB, args.compile_mode, "fake")
    print(f"torch {torch.__version__}: each case's calls once on fake CUDA tensors (meta checks; "
          "torch.compile traced, not compiled)")
    w = max([4] + [len(c.name) for c in selected])
    counts = {}
    with fake.FakeTensorMode(allow_non_fake_inputs=True):
        for case in selected:
            impls = [i for i in IMPLS.get(case.op, ("eager", "compile")) if not getattr(args, f"no_{i}")]
            try:
                rows = list(RUNNERS[case.op](b, case, impls)) if impls else []
            except Exception as e:  # raised outside the timed call: building the inputs
                rows = [row(case, impl, "failed", reason=first_line(e)) for impl in impls]
            for r in rows:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
                print(f"{case.name:<{w}}  {r['impl']:<7} {r['status']}" + (f": {r['reason']}" if "reason" in r else ""))
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no case selected")
    return 1 if counts.get("failed") else 0


def load(path, harness):
    """The results document at `path`, written by the `harness` side ("lowp" or "torch")."""
    with open(path) as f:
        doc = json.load(f)
    if not isinstance(doc, dict) or doc.get("harness") != harness or not isinstance(doc.get("results"), list):
        raise ValueError(f"{path} is not a {harness} results file (its \"harness\" is not {harness!r})")
    return doc


def merge(docs):
    """One torch results document of several (passes on one device): the first's run fields, and
    every file's results, a later file's (case, impl) replacing an earlier one's."""
    doc = dict(docs[0])
    rows = {}
    for d in docs:
        if d.get("device", {}).get("name") != doc.get("device", {}).get("name"):
            print("warning: the PyTorch results files are from different devices", file=sys.stderr)
        for r in d["results"]:
            rows[(r.get("name"), r.get("impl"))] = r
    doc["results"] = list(rows.values())
    return doc


def device_line(doc):
    d = doc.get("device", {})
    cc = ".".join(str(v) for v in d.get("compute_capability", [])) or "?"
    return f"{d.get('name', '?')} (compute capability {cc})"


def join(lowp_doc, torch_doc, names):
    """Prints the joined table of the cases `names` (in order)."""
    lrows = {r["name"]: r for r in lowp_doc["results"]}
    trows = {(r["name"], r["impl"]): r for r in torch_doc["results"]}
    print(f"lowp:    {device_line(lowp_doc)}, module {lowp_doc.get('device', {}).get('module', '?')}, "
          f"copy {lowp_doc.get('copy_gbps', 0):.0f} GB/s, {lowp_doc.get('mode', '?')} mode, "
          f"{lowp_doc.get('iters', '?')} timed launches per case")
    print(f"PyTorch: {device_line(torch_doc)}, torch {torch_doc.get('torch', '?')}, "
          f"copy {torch_doc.get('copy_gbps', 0):.0f} GB/s, torch.compile mode {torch_doc.get('compile_mode', '?')}, "
          f"{torch_doc.get('iters', '?')} timed calls per case")
    warnings = []
    if lowp_doc.get("device", {}).get("name") != torch_doc.get("device", {}).get("name"):
        warnings.append("the two runs are from different devices: the ratios compare nothing")
    if lowp_doc.get("mode") != "bench":
        warnings.append("the lowp run is a smoke test (no --bench): its numbers are not measurements")
    if isinstance(torch_doc.get("iters"), int) and torch_doc["iters"] < 50:
        warnings.append(f"the PyTorch run timed only {torch_doc['iters']} calls per case: not measurements")
    for w in warnings:
        print(f"warning: {w}")
    print()

    def us(r):
        if r is None:
            return "-"
        return f"{r['median_us']:.2f}" if r["status"] == "ok" else r["status"]

    headers = ["case", "lowp µs", "eager µs", "compile µs", "cuBLAS µs", "torch/lowp",
               "lowp GB/s", "lowp % copy", "torch % copy", "lowp TFLOP/s", "torch TFLOP/s"]
    known = {c.name for c in cases()}
    table, notes = [], []
    anchor_notes = {}  # note -> (op/dtype prefixes, impls), each in first-seen order
    for name in names:
        lr = lrows.get(name)
        anchors = {impl: trows.get((name, impl)) for impl in ALL_IMPLS}
        ok = [r for r in anchors.values() if r is not None and r["status"] == "ok"]
        best = min(ok, key=lambda r: r["median_us"]) if ok else None
        lowp_ok = lr is not None and lr.get("status") == "ok"
        ratio = f"{best['median_us'] / lr['median_us']:.2f}x" if lowp_ok and best and lr["median_us"] > 0 else "-"
        moves = lowp_ok and lr.get("bytes", 0) > 0
        table.append([
            name,
            us(lr) if lr is not None else "missing",
            us(anchors["eager"]), us(anchors["compile"]), us(anchors["cublas"]),
            ratio,
            f"{lr['gbps']:.1f}" if moves else "-",
            f"{lr['pct_copy']:.1f}%" if moves else "-",
            f"{best['pct_copy']:.1f}%" if best and best.get("bytes", 0) > 0 else "-",
            f"{lr['tflops']:.1f}" if lowp_ok and lr.get("tflops") else "-",
            f"{best['tflops']:.1f}" if best and best.get("tflops") else "-",
        ])
        if name not in known:
            notes.append(f"{name}: not a case of compare_torch.py (the two case lists differ)")
        if lr is None:
            notes.append(f"{name} lowp: not in the lowp results file")
        elif not lowp_ok:
            notes.append(f"{name} lowp: {lr.get('status')}: {lr.get('reason', '')}")
        for impl, r in anchors.items():
            if r is None:
                continue
            if r["status"] != "ok":
                notes.append(f"{name} {impl}: {r['status']}: {r.get('reason', '')}")
            elif r.get("note"):
                ops, impls = anchor_notes.setdefault(r["note"], ({}, {}))
                ops["/".join(name.split("/")[:2])] = None
                impls[impl] = None
    for line in fmt_table(headers, table):
        print(line)
    print()
    print("torch/lowp: the fastest PyTorch median over lowp's (above 1: lowp is faster); % copy: of each run's own "
          "copy bandwidth; -: not applicable or not run")
    print(BYTES_NOTE)
    notes += [f"{', '.join(ops)} ({', '.join(impls)}): {note}" for note, (ops, impls) in anchor_notes.items()]
    if notes:
        print("notes:")
        for n in notes:
            print(f"  {n}")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="compare_torch.py", description=__doc__.split("\n\n")[0], epilog="See docs/benchmarks.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("patterns", nargs="*", metavar="PATTERN", help="the same as --filter PATTERN")
    ap.add_argument("--filter", action="append", default=[], metavar="PATTERN",
                    help="run the cases whose name (op/dtype/shape[/variant]) contains PATTERN (repeatable: any)")
    ap.add_argument("--exact", action="store_true", help="patterns must equal the whole name")
    ap.add_argument("--list", action="store_true", help="print the selected case names, one a line, and exit "
                    "(no PyTorch, no GPU)")
    ap.add_argument("--check", action="store_true",
                    help="run each selected case's calls once on fake CUDA tensors and print what this PyTorch "
                    "accepts or refuses (needs PyTorch, no GPU; nothing is timed, torch.compile only traced)")
    ap.add_argument("--json", metavar="PATH", help="also write the PyTorch results as JSON to PATH")
    ap.add_argument("--join", metavar="LOWP_JSON", help="print the joined table with the results of "
                    "`cargo bench --bench kernels -- --json LOWP_JSON`; the anchors are timed now unless --anchors")
    ap.add_argument("--anchors", metavar="TORCH_JSON", action="append", default=[],
                    help="with --join: take the PyTorch results from TORCH_JSON (written by --json) instead of "
                    "timing them (no PyTorch, no GPU); repeatable: the files' results are merged, a later file's "
                    "(case, impl) replacing an earlier one's (e.g. an eager pass and a torch.compile pass)")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up calls per case (default 20)")
    ap.add_argument("--iters", type=int, default=100,
                    help="timed calls per case (default 100, at least 50 for reported numbers)")
    ap.add_argument("--compile-mode", default="default", choices=["default", "max-autotune-no-cudagraphs"],
                    help="torch.compile mode (CUDA-graph modes would copy the rotated inputs into static buffers)")
    ap.add_argument("--no-eager", action="store_true", help="skip PyTorch eager")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--no-cublas", action="store_true", help="skip cuBLAS (the blockwise FP8 GEMM)")
    args = ap.parse_args(argv)
    if args.anchors and not args.join:
        ap.error("--anchors needs --join")

    patterns = args.filter + args.patterns
    selected = [c for c in cases() if selects(c.name, patterns, args.exact)]
    if args.list:
        for c in selected:
            print(c.name)
        return 0
    if args.check:
        return check(selected, args)

    if args.join:
        try:
            lowp_doc = load(args.join, "lowp")
            torch_doc = merge([load(path, "torch") for path in args.anchors]) if args.anchors else None
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        in_lowp = {r.get("name") for r in lowp_doc["results"]}
        known = {c.name for c in cases()}
        names = [c.name for c in selected if c.name in in_lowp]
        names += [n for n in in_lowp if n not in known and selects(n, patterns, args.exact)]
        if torch_doc is None:
            # timed where lowp has a measurement to compare with
            ok = {r.get("name") for r in lowp_doc["results"] if r.get("status") == "ok"}
            torch_doc = measure([c for c in selected if c.name in ok], args)
            if isinstance(torch_doc, int):
                return torch_doc
            print()
        if args.json and not args.anchors:
            write_json(args.json, torch_doc)
        join(lowp_doc, torch_doc, names)
        return 0

    if not selected:
        print(f"no benchmark matches {patterns} (see --list)")
        return 0
    doc = measure(selected, args)
    if isinstance(doc, int):
        return doc
    if args.json:
        write_json(args.json, doc)
    return 0


def write_json(path, doc, quiet=False):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)  # a reader (or a stopped run) never sees half a file
    if not quiet:
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
