#!/usr/bin/env python3
"""Assemble lowp's PTX modules with ptxas and report each kernel's resources.

usage: check_ptx.py PTXAS MODULE.ptx:ARCH [MODULE.ptx:ARCH ...]

Fails (exit 1) on a ptxas error, a kernel with spill stores or loads, an unresolved
`.extern .func`, or a module without kernels. Prints one line per kernel: registers, spills,
stack frame, static shared memory, barriers.
"""
import re
import subprocess
import sys


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
    res = subprocess.run([ptxas, f"-arch={arch}", "-v", path, "-o", "/dev/null"], capture_output=True, text=True)
    log = res.stdout + res.stderr
    if res.returncode != 0:
        print(log)
        problems.append(f"ptxas exited {res.returncode}")
    kernels = {}
    current = None
    for line in log.splitlines():
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
