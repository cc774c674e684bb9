#!/usr/bin/env python3
"""Assemble lowp's PTX modules with ptxas and report each kernel's resources.

usage: check_ptx.py PTXAS MODULE.ptx:ARCH [MODULE.ptx:ARCH ...]

Fails (exit 1) on a ptxas error, a kernel with spill stores or loads, a kernel whose wgmma
ptxas serializes ("Potential Performance Loss"), an unresolved `.extern .func`, or a module
without kernels. Prints one line per kernel: registers, spills,
stack frame, static shared memory, barriers.

With CUOBJDUMP set (a cuobjdump binary), also disassembles the tensor-core kernels and fails if
one lacks its tensor-core instruction (REQUIRED_SASS) or touches local memory (LDL/STL), printing
their instruction mix; and reads the cubin's parameter layout (`cuobjdump -elf`: the parameters'
constant bank and each parameter's offset) to fail where a GEMM's tensor-map parameter
(MAP_PARAM) does not start on a 64-byte boundary of the bank, as the TMA needs of a map it reads
in parameter space.
"""
import os
import tempfile
from collections import Counter

# kernel -> the SASS instruction that shows it runs on the tensor cores
REQUIRED_SASS = {
    "fp8_blockwise_gemm": "QGMMA",
    "fp8_blockwise_gemm_n64": "QGMMA",
    "fp8_blockwise_gemm_n112": "QGMMA",
    "fp8_blockwise_gemm_m64": "QGMMA",
    "fp8_blockwise_gemm_m64_n64": "QGMMA",
    "fp8_blockwise_gemm_m64_n112": "QGMMA",
    "fp8_blockwise_gemm_m64_n192": "QGMMA",
    "fp8_blockwise_gemm_m64_n64_k2": "QGMMA",
    "fp8_blockwise_gemm_m64_n64_k4": "QGMMA",
    "fp8_blockwise_gemm_m64_n64_k8": "QGMMA",
    "bf16_gemm": "HGMMA",
    "bf16_gemm_n64": "HGMMA",
    "bf16_gemm_n112": "HGMMA",
    "bf16_gemm_n192": "HGMMA",
    "bf16_gemm_m64": "HGMMA",
    "bf16_gemm_m64_n64": "HGMMA",
    "bf16_gemm_m64_n112": "HGMMA",
    "bf16_gemm_m64_n192": "HGMMA",
    "fp8_blockwise_gemm_c2": "QGMMA",
    "fp8_blockwise_gemm_n112_c2": "QGMMA",
    "bf16_gemm_c2": "HGMMA",
    "bf16_gemm_n112_c2": "HGMMA",
    "bf16_gemm_n192_c2": "HGMMA",
}
# The GEMMs' parameter holding their tensor maps (`GemmTensorMaps`): its ordinal.
MAP_PARAM = 1

import re
import subprocess
import sys


def param_layout(elf):
    """kernel -> (bank offset of its parameters, {ordinal: offset}) from `cuobjdump -elf`."""
    layout = {}
    name = None
    last_attr = None
    for line in elf.splitlines():
        m = re.match(r"^\.nv\.info\.(\w+)\s*$", line)
        if m:
            name = m.group(1)
            layout[name] = (None, {})
            continue
        if line.startswith(".") or name is None:
            if line.startswith("."):
                name = None
            continue
        m = re.search(r"Ordinal\s*:\s*(0x[0-9a-f]+)\s+Offset\s*:\s*(0x[0-9a-f]+)", line)
        if m:
            layout[name][1][int(m.group(1), 16)] = int(m.group(2), 16)
        m = re.search(r"Value:\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)", line)
        if m and layout[name][0] is None and last_attr == "EIATTR_PARAM_CBANK":
            # (section, size << 16 | bank offset)
            layout[name] = (int(m.group(1), 16) & 0xFFFF, layout[name][1])
        a = re.search(r"Attribute:\s+(\w+)", line)
        if a:
            last_attr = a.group(1)
    return layout


def check(ptxas, path, arch):
    text = open(path).read()
    problems = []
    version = re.search(r"^\.version\s+(\S+)", text, re.M)
    target = re.search(r"^\.target\s+(\S+)", text, re.M)
    print(f"\n{path}\n  PTX ISA {version.group(1) if version else '?'}, .target {target.group(1) if target else '?'}, ptxas -arch={arch}")
    for line in text.splitlines():
        if ".extern .func" in line:
            problems.append(f"unresolved function: {line.strip()}")
    entries = re.findall(r"\.entry\s+(\w+)", text)
    if not entries:
        problems.append("no kernel entry")
    cubin = tempfile.NamedTemporaryFile(suffix=".cubin", delete=False).name
    res = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o", cubin], capture_output=True, text=True)
    log = res.stdout + res.stderr
    if res.returncode != 0:
        print(log)
        problems.append(f"ptxas exited {res.returncode}")
    kernels = {}
    current = None
    for line in log.splitlines():
        # ptxas serializes a kernel's wgmma where it cannot keep them asynchronous (C7514 and its
        # kin: "Potential Performance Loss: wgmma.mma_async instructions are serialized ...").
        m = re.search(r"Potential Performance Loss: (wgmma.*?) in the function '(\w+)'", line)
        if m:
            problems.append(f"{m.group(2)}: ptxas: {m.group(1)}")
        m = re.search(r"Compiling entry function '(\w+)'", line)
        if m:
            current = m.group(1)
            kernels[current] = {"regs": "?", "spill_st": 0, "spill_ld": 0, "stack": 0, "smem": 0, "bar": 0}
            continue
        if current is None:
            continue
        m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
        if m:
            k = kernels[current]
            k["stack"], k["spill_st"], k["spill_ld"] = map(int, m.groups())
        m = re.search(r"Used (\d+) registers", line)
        if m:
            kernels[current]["regs"] = int(m.group(1))
            b = re.search(r"used (\d+) barriers", line)
            kernels[current]["bar"] = int(b.group(1)) if b else 0
            s = re.search(r"(\d+) bytes smem", line)
            kernels[current]["smem"] = int(s.group(1)) if s else 0
    print(f"  {'kernel':<28} {'regs':>5} {'spill st':>9} {'spill ld':>9} {'stack':>6} {'smem':>6} {'bar':>4}")
    for name in sorted(kernels):
        k = kernels[name]
        print(f"  {name:<28} {k['regs']:>5} {k['spill_st']:>9} {k['spill_ld']:>9} {k['stack']:>6} {k['smem']:>6} {k['bar']:>4}")
        if k["spill_st"] or k["spill_ld"]:
            problems.append(f"{name} spills ({k['spill_st']} B stored, {k['spill_ld']} B loaded)")
    missing = sorted(set(entries) - set(kernels))
    if missing and res.returncode == 0:
        problems.append(f"ptxas reported no resources for {missing}")
    cuobjdump = os.environ.get("CUOBJDUMP")
    if cuobjdump and res.returncode == 0 and any(name in kernels for name in REQUIRED_SASS):
        elf = subprocess.run([cuobjdump, "-elf", cubin], capture_output=True, text=True)
        layout = param_layout(elf.stdout) if elf.returncode == 0 else {}
        for name in REQUIRED_SASS:
            if name not in kernels:
                continue
            bank, offsets = layout.get(name, (None, {}))
            if bank is None or MAP_PARAM not in offsets:
                problems.append(f"{name}: no parameter layout in `cuobjdump -elf` (tensor-map parameter {MAP_PARAM})")
                continue
            at = bank + offsets[MAP_PARAM]
            if at % 64:
                problems.append(f"{name}: its tensor maps (parameter {MAP_PARAM}) start at constant-bank offset 0x{at:x}, not on a 64-byte boundary")
        aligned = [n for n in REQUIRED_SASS if n in kernels and layout.get(n, (None, {}))[0] is not None]
        if aligned:
            n = aligned[0]
            print(f"  tensor-map parameters: {n} at bank offset 0x{layout[n][0] + layout[n][1].get(MAP_PARAM, 0):x} (every GEMM kernel checked for 64-byte alignment)")
        for name, needed in REQUIRED_SASS.items():
            if name not in kernels:
                continue
            dis = subprocess.run([cuobjdump, "-sass", "-fun", name, cubin], capture_output=True, text=True)
            if dis.returncode != 0 or "fatal" in dis.stderr:
                problems.append(f"cuobjdump failed on {name}: {dis.stderr.strip()}")
                continue
            ops = Counter(m.group(1).split(".")[0] for m in re.finditer(r"/\*[0-9a-f]{4,}\*/\s+(?:@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]+)", dis.stdout))
            mix = ", ".join(f"{op} {ops[op]}" for op in ("QGMMA", "HGMMA", "HMMA", "UTMALDG", "SYNCS", "USETMAXREG", "LDL", "STL") if ops[op])
            print(f"  SASS {name}: {sum(ops.values())} instructions; {mix}")
            if not ops[needed]:
                problems.append(f"{name}: no {needed} in its SASS (not on the tensor cores)")
            if ops["LDL"] or ops["STL"]:
                problems.append(f"{name}: local memory in its SASS ({ops['LDL']} LDL, {ops['STL']} STL)")
    os.unlink(cubin)
    for p in problems:
        print(f"  FAIL: {p}")
    return not problems, len(kernels)


def main():
    if len(sys.argv) < 3:
        print(__doc__)
        return 2
    ptxas = sys.argv[1]
    ok = True
    total = 0
    for spec in sys.argv[2:]:
        path, arch = spec.rsplit(":", 1)
        good, n = check(ptxas, path, arch)
        ok &= good
        total += n
    print(f"\nptxas: {total} kernels assembled, {'no errors, no spills' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
