#!/usr/bin/env python3
"""PyTorch anchors for `cargo bench --bench kernels`: the same cases, timed the same way, with
PyTorch eager and with torch.compile of the same functions.

    python3 benches/compare_torch.py                     # every case
    python3 benches/compare_torch.py add_rmsnorm         # cases whose name contains a word
    python3 benches/compare_torch.py --json out.json     # also write the results as JSON

Method (as in benches/kernels.rs): each call uses one of K sets of input and output tensors, in
turn, with K chosen so the sets together exceed twice the L2 cache (every call reads its inputs
from DRAM); after a warm-up, calls are timed one by one with CUDA event pairs, and the median
(and minimum) is reported. Before the timed calls the stream gets a head start of device copies
long enough for the host to enqueue them all, so the GPU does not idle between a start event and
its work. Bandwidth counts the bytes the operation must move (rmsnorm: x read + out written +
weight; add_rmsnorm: x read + residual read and written + out written + weight), as a percentage
of the device-to-device copy bandwidth measured at start with a large `dst.copy_(src)`.

Exit status 2 when there is no CUDA device (or no PyTorch).
"""

import argparse
import importlib
import json
import sys
import time

NO_DEVICE = "no CUDA device: benchmarks need an NVIDIA GPU and driver"

# [rows, hidden]; the first is the headline shape, the only one also run in f16.
NORM_SHAPES = [(16384, 8192), (4096, 4096), (16384, 5120), (1, 8192), (128, 16384), (16384, 2048)]
EPS = 1e-6
MIB = 1 << 20
GIB = 1 << 30
# A gap this long between one timed call's end event and the next one's start event means the GPU
# waited for the host.
STARVED_GAP_US = 5.0
MAX_HEAD_START_S = 0.25

torch = None  # imported in main(), so that a machine without PyTorch gets a message


# Reference semantics, as lowp's kernels compute them (f32 math, one rounding per output).
def rmsnorm(x, w, eps: float):
    xf = x.float()
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps) * w.float()).to(x.dtype)


def add_rmsnorm(x, res, w, eps: float):
    # The residual is updated in place with the rounded sum, and the norm is taken of that value.
    r = (res.float() + x.float()).to(x.dtype)
    res.copy_(r)
    return rmsnorm(r, w, eps)


# The Qwen3-style attention prologue (Hugging Face `Qwen3RMSNorm` on q and k heads, then
# `apply_rotary_pos_emb` with `rotate_half`), unfused, in place on the packed qkv buffer.
QK_HEADS = (32, 8, 128)  # Hq, Hk, D
QK_TOKENS = (16384, 1, 8, 64)
QK_MAX_POS = 32768


def qk_norm_rope(qkv, q_w, k_w, cos_sin, positions, eps: float):
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

    cos, sin = cos_sin[positions].chunk(2, dim=-1)
    cos = torch.cat((cos, cos), dim=-1).unsqueeze(1).to(qkv.dtype)
    sin = torch.cat((sin, sin), dim=-1).unsqueeze(1).to(qkv.dtype)
    q, k = norm(q, q_w), norm(k, k_w)
    q = q * cos + rotate_half(q) * sin
    k = k * cos + rotate_half(k) * sin
    qkv[:, : hq * d].copy_(q.reshape(t, hq * d))
    qkv[:, hq * d : (hq + hk) * d].copy_(k.reshape(t, hk * d))
    return qkv


# DeepGEMM's FP8 recipe (per_token_cast_to_fp8 / per_block_cast_to_fp8), the same arithmetic as
# lowp::fp8's quantizers; scales M-major for the activations as the GEMM reads them.
FP8_GROUP_SHAPES = ((4096, 7168), (16384, 7168), (4096, 2048))
FP8_BLOCK_SHAPES = ((7168, 2048), (24576, 1536))


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


def run_fp8_case(timer, l2_bytes, op, rows, cols, impls, compile_mode):
    n = rows * cols
    sets = sets_for(n * 3, l2_bytes)
    need = sets * n * 2 + 6 * n * 4
    why = lacks_memory(need)
    if why:
        for impl in impls:
            yield impl, why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(rows ^ (cols << 24))
    xs = [random_matrix(rows, cols, torch.bfloat16, gen) for _ in range(sets)]
    nbytes = n * 3 + (rows if op == "fp8_quantize_group" else rows // 128) * (cols // 128) * 4
    base = fp8_quantize_group if op == "fp8_quantize_group" else fp8_quantize_block
    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()
            fn = torch.compile(base, dynamic=False, fullgraph=True, mode=compile_mode)
        else:
            fn = base

        def call(i, fn=fn):
            return fn(xs[i])

        try:
            median, minimum, starved = timer.time(sets, call)
        except Exception as e:
            yield impl, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        gbps = nbytes / (median * 1e3)
        yield impl, {"impl": impl, "op": op, "dtype": "bf16", "rows": rows, "hidden": cols,
                     "median_us": median, "min_us": minimum, "gbps": gbps, "pct_copy": 100 * gbps / timer.copy_gbps,
                     "bytes": nbytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del xs
    torch.cuda.empty_cache()


# The blockwise FP8 GEMM anchor: cuBLAS through PyTorch, BlockWise1x128 (A) × BlockWise128x128 (B).
GEMM_SHAPES = ((4096, 7168, 2048), (4096, 24576, 1536), (4096, 7168, 16384), (4096, 2112, 7168),
               (128, 7168, 2048), (64, 7168, 2048), (8192, 8192, 8192))


def blockwise_scaled_mm():
    """A callable (a [M,K] e4m3, b [N,K] e4m3, sa [M,K/128] f32 M-major, sb [N/128,K/128] f32) -> bf16,
    through torch.nn.functional.scaled_mm where it exists, else torch._scaled_mm."""
    F = torch.nn.functional
    if hasattr(F, "scaled_mm") and hasattr(F, "ScalingType"):
        st = F.ScalingType

        def mm(a, b, sa, sb):
            return F.scaled_mm(a, b.t(), sa, st.BlockWise1x128, sb, st.BlockWise128x128, output_dtype=torch.bfloat16)
        return mm

    def mm(a, b, sa, sb):
        return torch._scaled_mm(a, b.t(), scale_a=sa, scale_b=sb.t(), out_dtype=torch.bfloat16)
    return mm


def run_gemm_case(timer, l2_bytes, m, n, k, impls):
    g = k // 128
    set_bytes = m * k + n * k + m * n * 2
    sets = sets_for(set_bytes, l2_bytes)
    why = lacks_memory(sets * set_bytes)
    if why:
        yield "cublas", why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(m ^ (n << 20) ^ (k << 40))

    def codes(rows, cols):
        x = torch.randn(rows, cols, device="cuda", generator=gen) * 64
        return x.clamp(-448, 448).to(torch.float8_e4m3fn)

    a_s = [codes(m, k) for _ in range(sets)]
    b_s = [codes(n, k) for _ in range(sets)]
    sa = torch.full((g, m), 1 / 448, device="cuda").t()  # [M, K/128], M-major (outer-dim-major)
    sb = torch.full(((n + 127) // 128, g), 1 / 448, device="cuda")
    mm = blockwise_scaled_mm()

    def call(i):
        return mm(a_s[i], b_s[i], sa, sb)

    try:
        median, minimum, starved = timer.time(sets, call)
    except Exception as e:  # cuBLAS refuses some shapes (e.g. N = 2112)
        yield "cublas", f"unsupported: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        return
    flops = 2 * m * n * k
    yield "cublas", {"impl": "cublas", "op": "fp8_blockwise_gemm", "dtype": "e4m3", "rows": m, "hidden": f"{n}x{k}",
                     "median_us": median, "min_us": minimum, "gbps": set_bytes / (median * 1e3),
                     "pct_copy": 100 * set_bytes / (median * 1e3) / timer.copy_gbps, "tflops": flops / (median * 1e6),
                     "bytes": set_bytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del a_s, b_s
    torch.cuda.empty_cache()


# Grouped (MoE) GEMM anchors: torch._grouped_mm (bf16) and torch._scaled_grouped_mm (FP8 rowwise).
GROUPED_SHAPES = ((8, 512, 4096, 7168), (32, 256, 4096, 7168), (64, 128, 7168, 2048))


def group_ends(e, t, zipf):
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


def run_grouped_case(timer, l2_bytes, op, e, t, n, k):
    zipf = "zipf" in op
    fp8 = op.startswith("fp8")
    rows = e * t
    elem = 1 if fp8 else 2
    set_bytes = rows * k * elem + e * n * k * elem + rows * n * 2
    sets = sets_for(set_bytes, l2_bytes)
    why = lacks_memory(sets * set_bytes * 2)
    if why:
        yield "torch", why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(rows ^ (n << 20) ^ (k << 40))
    offs = group_ends(e, t, zipf)
    if fp8:
        xs = [(torch.randn(rows, k, device="cuda", generator=gen) * 64).clamp(-448, 448).to(torch.float8_e4m3fn) for _ in range(sets)]
        ws = [(torch.randn(e, n, k, device="cuda", generator=gen) * 64).clamp(-448, 448).to(torch.float8_e4m3fn) for _ in range(sets)]
        sx = torch.full((rows,), 1 / 448, device="cuda")
        sw = torch.full((e, n), 1 / 448, device="cuda")

        def call(i):
            return torch._scaled_grouped_mm(xs[i], ws[i].transpose(-2, -1), sx, sw, offs=offs, out_dtype=torch.bfloat16)
    else:
        xs = [random_matrix(rows, k, torch.bfloat16, gen) for _ in range(sets)]
        ws = [torch.randn(e, n, k, device="cuda", generator=gen).to(torch.bfloat16) for _ in range(sets)]

        def call(i):
            return torch._grouped_mm(xs[i], ws[i].transpose(-2, -1), offs=offs, out_dtype=torch.bfloat16)
    try:
        median, minimum, starved = timer.time(sets, call)
    except Exception as ex:
        yield "torch", f"unsupported: {type(ex).__name__}: {str(ex).splitlines()[0] if str(ex) else ''}"
        return
    yield "torch", {"impl": "torch", "op": op, "dtype": "e4m3" if fp8 else "bf16", "rows": e, "hidden": f"{t}x{n}x{k}",
                    "median_us": median, "min_us": minimum, "gbps": set_bytes / (median * 1e3),
                    "pct_copy": 100 * set_bytes / (median * 1e3) / timer.copy_gbps, "tflops": 2 * rows * n * k / (median * 1e6),
                    "bytes": set_bytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del xs, ws
    torch.cuda.empty_cache()


# NVFP4 quantization anchor (the torch.compile figure): 16-element blocks, E4M3 block scales
# (amax / 6 · g), E2M1 codes packed two per byte; swizzling the scales is left out, which only
# flatters the anchor.
NVFP4_SHAPES = ((8192, 8192), (16384, 7168))
E2M1_BOUNDS = (0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0)


def nvfp4_quantize(x, g):
    m, k = x.shape
    xb = x.float().view(m, k // 16, 16)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    s = (amax / 6.0 * g).clamp(max=448.0).to(torch.float8_e4m3fn)
    sf = s.float()
    q = torch.where(sf > 0, xb * g / sf, torch.zeros_like(xb))
    bounds = torch.tensor(E2M1_BOUNDS, device=x.device)
    code = torch.bucketize(q.abs().clamp(max=6.0), bounds).to(torch.uint8) | ((q < 0).to(torch.uint8) << 3)
    code = code.view(m, k // 2, 2)
    return code[..., 0] | (code[..., 1] << 4), s.view(m, k // 16)


def mxfp8_quantize(x):
    """MXFP8 with the OCP scale rule: 32-element blocks, UE8M0 scale 2^(floor(log2 amax) - 8),
    E4M3 codes saturated at ±448 (the 128×4 swizzle of the scales is left out, as for NVFP4)."""
    m, k = x.shape
    xb = x.float().view(m, k // 32, 32)
    amax = xb.abs().amax(dim=-1, keepdim=True)
    e = (torch.floor(torch.log2(amax)) - 8).clamp(min=-127, max=127)
    q = (xb * torch.exp2(-e)).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q.view(m, k), (e + 127).to(torch.uint8).view(m, k // 32)


def run_mxfp8_case(timer, l2_bytes, rows, cols, impls, compile_mode):
    n = rows * cols
    nbytes = n * 2 + n + n // 32
    sets = sets_for(nbytes, l2_bytes)
    why = lacks_memory(sets * n * 2 + 12 * n * 4)
    if why:
        for impl in impls:
            yield impl, why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(rows ^ (cols << 20) ^ (1 << 40))
    xs = [random_matrix(rows, cols, torch.bfloat16, gen) for _ in range(sets)]
    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()
            fn = torch.compile(mxfp8_quantize, dynamic=False, fullgraph=True, mode=compile_mode)
        else:
            fn = mxfp8_quantize

        def call(i, fn=fn):
            return fn(xs[i])

        try:
            median, minimum, starved = timer.time(sets, call)
        except Exception as e:
            yield impl, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        gbps = nbytes / (median * 1e3)
        yield impl, {"impl": impl, "op": "mxfp8_quant", "dtype": "bf16", "rows": rows, "hidden": cols,
                     "median_us": median, "min_us": minimum, "gbps": gbps, "pct_copy": 100 * gbps / timer.copy_gbps,
                     "bytes": nbytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del xs
    torch.cuda.empty_cache()


def run_nvfp4_case(timer, l2_bytes, rows, cols, impls, compile_mode):
    n = rows * cols
    nbytes = n * 2 + n // 2 + n // 16
    sets = sets_for(nbytes, l2_bytes)
    why = lacks_memory(sets * n * 2 + 12 * n * 4)
    if why:
        for impl in impls:
            yield impl, why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(rows ^ (cols << 20))
    xs = [random_matrix(rows, cols, torch.bfloat16, gen) for _ in range(sets)]
    g = torch.tensor(448.0 * 6.0 / 4.0, device="cuda")
    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()
            fn = torch.compile(nvfp4_quantize, dynamic=False, fullgraph=True, mode=compile_mode)
        else:
            fn = nvfp4_quantize

        def call(i, fn=fn):
            return fn(xs[i], g)

        try:
            median, minimum, starved = timer.time(sets, call)
        except Exception as e:
            yield impl, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        gbps = nbytes / (median * 1e3)
        yield impl, {"impl": impl, "op": "nvfp4_quant", "dtype": "bf16", "rows": rows, "hidden": cols,
                     "median_us": median, "min_us": minimum, "gbps": gbps, "pct_copy": 100 * gbps / timer.copy_gbps,
                     "bytes": nbytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del xs
    torch.cuda.empty_cache()


def cases():
    """(op, dtype name, rows, hidden) in the order benches/kernels.rs runs them (for
    qk_norm_rope, rows = tokens and hidden names the heads)."""
    out = []
    for op in ("add_rmsnorm", "rmsnorm"):
        for rows, hidden in NORM_SHAPES:
            out.append((op, "bf16", rows, hidden))
        rows, hidden = NORM_SHAPES[0]
        out.append((op, "f16", rows, hidden))
    hq, hk, d = QK_HEADS
    for t in QK_TOKENS:
        out.append(("qk_norm_rope", "bf16", t, f"{hq}+{hk}x{d}"))
    for m, k in FP8_GROUP_SHAPES:
        out.append(("fp8_quantize_group", "bf16", m, k))
    for n, k in FP8_BLOCK_SHAPES:
        out.append(("fp8_quantize_block", "bf16", n, k))
    for m, n, k in GEMM_SHAPES:
        out.append(("fp8_blockwise_gemm", "e4m3", m, f"{n}x{k}"))
    for rows, cols in NVFP4_SHAPES:
        out.append(("nvfp4_quant", "bf16", rows, cols))
        out.append(("mxfp8_quant", "bf16", rows, cols))
    for op in ("bf16_grouped_gemm", "bf16_grouped_gemm(zipf)", "fp8_grouped_gemm", "fp8_grouped_gemm(zipf)"):
        for e, t, n, k in GROUPED_SHAPES:
            out.append((op, "e4m3" if op.startswith("fp8") else "bf16", e, f"{t}x{n}x{k}"))
    return out


def case_name(op, dtype, rows, hidden):
    return f"{op}/{dtype}/{rows}x{hidden}"


def sets_for(set_bytes, l2_bytes):
    """Buffer sets to rotate through so that together they exceed twice the L2 (at least 2)."""
    return max(2, 2 * l2_bytes // max(1, set_bytes) + 1)


def lacks_memory(need):
    """Why `need` bytes (plus 256 MiB of slack) do not fit in the free device memory, or None."""
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


def random_matrix(rows, hidden, dtype, gen):
    """~N(0, 1) values, pushed away from zero to at least 1/64 in magnitude."""
    x = torch.randn(rows, hidden, device="cuda", dtype=torch.float32, generator=gen)
    x = torch.where(x.abs() < 1 / 64, torch.copysign(torch.full_like(x, 1 / 64), x), x)
    return x.to(dtype)


def run_qk_case(timer, l2_bytes, dtype_name, tokens, impls, compile_mode):
    """qk_norm_rope: yields (impl, result dict or skip reason) for each implementation."""
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[dtype_name]
    hq, hk, d = QK_HEADS
    cols = (hq + 2 * hk) * d
    sets = sets_for(tokens * cols * 2, l2_bytes)
    need = sets * tokens * cols * 2 + QK_MAX_POS * d * 4 + 8 * tokens * (hq + hk) * d * 4
    why = lacks_memory(need)
    if why:
        for impl in impls:
            yield impl, why
        return
    gen = torch.Generator(device="cuda")
    gen.manual_seed(tokens ^ (d << 40))
    qkvs = [random_matrix(tokens, cols, dtype, gen) for _ in range(sets)]
    q_w = random_matrix(1, d, dtype, gen).reshape(d)
    k_w = random_matrix(1, d, dtype, gen).reshape(d)
    inv = 1.0 / (1e6 ** (torch.arange(0, d, 2, device="cuda", dtype=torch.float64) / d))
    ang = torch.arange(QK_MAX_POS, device="cuda", dtype=torch.float64)[:, None] * inv[None, :]
    cos_sin = torch.cat((ang.cos(), ang.sin()), dim=-1).float()
    poss = [torch.randint(0, QK_MAX_POS, (tokens,), device="cuda", generator=gen) for _ in range(sets)]
    nbytes = tokens * (hq + hk) * d * 2 * 2 + tokens * d * 4 + tokens * 4
    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()
            fn = torch.compile(qk_norm_rope, dynamic=False, fullgraph=True, mode=compile_mode)
        else:
            fn = qk_norm_rope

        def call(i, fn=fn):
            return fn(qkvs[i], q_w, k_w, cos_sin, poss[i], EPS)

        try:
            median, minimum, starved = timer.time(sets, call)
        except Exception as e:
            yield impl, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        gbps = nbytes / (median * 1e3)
        yield impl, {"impl": impl, "op": "qk_norm_rope", "dtype": dtype_name, "rows": tokens, "hidden": f"{hq}+{hk}x{d}",
                     "median_us": median, "min_us": minimum, "gbps": gbps, "pct_copy": 100 * gbps / timer.copy_gbps,
                     "bytes": nbytes, "sets": sets, "iters": timer.iters, "starved": starved}
    del qkvs, poss, cos_sin
    torch.cuda.empty_cache()


def run_case(timer, l2_bytes, op, dtype_name, rows, hidden, impls, compile_mode):
    """Yields (impl, result dict or skip reason) for each implementation."""
    if op == "qk_norm_rope":
        yield from run_qk_case(timer, l2_bytes, dtype_name, rows, impls, compile_mode)
        return
    if op == "nvfp4_quant":
        yield from run_nvfp4_case(timer, l2_bytes, rows, hidden, impls, compile_mode)
        return
    if op == "mxfp8_quant":
        yield from run_mxfp8_case(timer, l2_bytes, rows, hidden, impls, compile_mode)
        return
    if "grouped_gemm" in op:
        t, n, k = (int(v) for v in hidden.split("x"))
        yield from run_grouped_case(timer, l2_bytes, op, rows, t, n, k)
        return
    if op == "fp8_blockwise_gemm":
        n, k = (int(v) for v in hidden.split("x"))
        yield from run_gemm_case(timer, l2_bytes, rows, n, k, impls)
        return
    if op.startswith("fp8_quantize"):
        yield from run_fp8_case(timer, l2_bytes, op, rows, hidden, impls, compile_mode)
        return
    dtype = {"bf16": torch.bfloat16, "f16": torch.float16}[dtype_name]
    elem = 2
    n = rows * hidden
    matrices = 3 if op == "add_rmsnorm" else 2  # x, out (and residual), per set
    sets = sets_for(matrices * n * elem, l2_bytes)
    # Inputs and outputs of every set, plus eager's f32 temporaries (a few live at once).
    need = sets * matrices * n * elem + hidden * elem + 4 * n * 4
    why = lacks_memory(need)
    if why:
        for impl in impls:
            yield impl, why
        return

    gen = torch.Generator(device="cuda")
    gen.manual_seed((rows << 32) ^ hidden ^ (0 if dtype_name == "bf16" else 1 << 56))
    w = random_matrix(1, hidden, dtype, gen).reshape(hidden)
    # Separate tensors per set (no views into one big buffer): each starts at storage offset 0,
    # so torch.compile sees the same input layout for every set and compiles once.
    xs = [random_matrix(rows, hidden, dtype, gen) for _ in range(sets)]
    res = [random_matrix(rows, hidden, dtype, gen) for _ in range(sets)] if op == "add_rmsnorm" else None
    nbytes = ((matrices + (1 if op == "add_rmsnorm" else 0)) * n + hidden) * elem

    for impl in impls:
        if impl == "compile":
            importlib.import_module("torch._dynamo").reset()  # a fresh cache: one compile per case
            base = add_rmsnorm if op == "add_rmsnorm" else rmsnorm
            fn = torch.compile(base, dynamic=False, fullgraph=True, mode=compile_mode)
        else:
            fn = add_rmsnorm if op == "add_rmsnorm" else rmsnorm
        if res is not None:
            def call(i, fn=fn):
                return fn(xs[i], res[i], w, EPS)
        else:
            def call(i, fn=fn):
                return fn(xs[i], w, EPS)
        try:
            median, minimum, starved = timer.time(sets, call)
        except Exception as e:  # a compile failure should not end the run
            yield impl, f"failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
            continue
        gbps = nbytes / (median * 1e3)
        yield impl, {
            "impl": impl,
            "op": op,
            "dtype": dtype_name,
            "rows": rows,
            "hidden": hidden,
            "median_us": median,
            "min_us": minimum,
            "gbps": gbps,
            "pct_copy": 100 * gbps / timer.copy_gbps,
            "bytes": nbytes,
            "sets": sets,
            "iters": timer.iters,
            "starved": starved,
        }
    del xs, res, w
    torch.cuda.empty_cache()


def main():
    global torch
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("filters", nargs="*", help="run the cases whose name (op/dtype/RowsxHidden) contains any of these")
    ap.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    ap.add_argument("--warmup", type=int, default=20, help="warm-up calls per case (default 20)")
    ap.add_argument("--iters", type=int, default=100, help="timed calls per case (default 100, at least 50 for reported numbers)")
    ap.add_argument("--compile-mode", default="default", choices=["default", "max-autotune-no-cudagraphs"],
                    help="torch.compile mode (CUDA-graph modes would copy the rotated inputs into static buffers)")
    ap.add_argument("--no-eager", action="store_true", help="skip PyTorch eager")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    ap.add_argument("--list", action="store_true", help="print the case names and exit")
    args = ap.parse_args()

    selected = [c for c in cases() if not args.filters or any(f in case_name(*c) for f in args.filters)]
    if args.list:
        for c in selected:
            print(case_name(*c))
        return 0

    try:
        import torch as _torch
    except ImportError as e:
        print(f"PyTorch is not installed ({e}); these anchors need PyTorch with CUDA", file=sys.stderr)
        return 2
    torch = _torch
    if not torch.cuda.is_available() or torch.cuda.device_count() == 0:
        print(f"{NO_DEVICE} (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    if not selected:
        print(f"no benchmark matches {args.filters}")
        return 0
    impls = [i for i, off in (("eager", args.no_eager), ("compile", args.no_compile)) if not off]

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
    print(f"{'impl':<8} {'op':<24} {'dtype':<5} {'shape':>16} {'median µs':>10} {'min µs':>10} "
          f"{'GB/s':>9} {'% copy':>7} {'TFLOP/s':>8} {'sets':>6}")

    results = []
    host_bound = False
    for op, dtype_name, rows, hidden in selected:
        for impl, r in run_case(timer, l2_bytes, op, dtype_name, rows, hidden, impls, args.compile_mode):
            lead = f"{impl:<8} {op:<24} {dtype_name:<5} {f'{rows}x{hidden}':>16}"
            if isinstance(r, str):
                print(f"{lead}  skipped: {r}", flush=True)
                continue
            mark = ""
            if r["starved"] * 10 > r["iters"]:
                host_bound = True
                mark = f"  ! {r['starved']} of {r['iters']} calls host-bound"
            tflops = f"{r['tflops']:.1f}" if "tflops" in r else "-"
            print(f"{lead} {r['median_us']:>10.2f} {r['min_us']:>10.2f} {r['gbps']:>9.1f} "
                  f"{r['pct_copy']:>6.1f}% {tflops:>8} {r['sets']:>6}{mark}", flush=True)
            results.append(r)
    print()
    if host_bound:
        print("!: the GPU idled between timed calls (the host could not keep it fed), "
              "so those times may include launch latency")
    print("bytes: rmsnorm = x read + out written + weight; "
          "add_rmsnorm = x read + residual read and written + out written + weight; "
          "qk_norm_rope = q and k read and written + cos/sin rows + positions; "
          "fp8 quantize = input read + E4M3 written + f32 scales written; "
          "nvfp4 quant = input read + packed codes + E4M3 scales written")

    if args.json:
        doc = {
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
        with open(args.json, "w") as f:
            json.dump(doc, f, indent=2)
            f.write("\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
