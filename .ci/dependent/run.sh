#!/usr/bin/env bash
# lowp as a dependency beside candle-core's CUDA backend, on a machine with no GPU and no CUDA
# installation: one cudarc (candle's `dynamic-linking`) for both, lowp's FP8 quantizer writing a
# CudaSlice<float8::F8E4M3>, run on the lowp-sim simulator. One step of .ci/run:
#   bash .ci/dependent/run.sh
#
# 1. nvcc, its front end and the CUDA headers from PyPI (candle-kernels compiles its .cu files).
# 2. lowp-sim's shared library (libcuda at run time).
# 3. candle-kernels, then stub libraries for the link (cudarc's -lcuda -lcublas -lcublasLt
#    -lcurand -lnvrtc, candle-kernels' -lcudart), generated from cudarc's bindings.
# 4. The dependent's test, linked with -z lazy, run with libcuda.so.1 -> liblowp_sim.so.
#
# On a machine with CUDA 13 and a GPU: LOWP_DEPENDENT_SYSTEM_CUDA=1 uses the system's nvcc and
# libraries instead of PyPI's and the stubs, and the test takes candle's own CudaDevice path.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
dep="$root/.ci/dependent"
start=$(date +%s)
step() { printf '\n--- dependent: %s (%ss)\n' "$*" "$(( $(date +%s) - start ))"; }
# The dependent shares lowp's target directory (unless CARGO_TARGET_DIR says otherwise), so lowp's
# kernels come from its PTX cache.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-80}"
# candle-kernels' nvcc jobs (cudaforge uses one thread on two cores otherwise)
export CUDAFORGE_THREADS="${CUDAFORGE_THREADS:-$(nproc)}"

if [ -z "${LOWP_DEPENDENT_SYSTEM_CUDA:-}" ]; then
  step "nvcc and CUDA headers (PyPI, CUDA 13.0)"
  cuda_ver=13.0.88
  tools="$root/target/ci-tools/pip-cuda"
  if [ ! -x "$tools/nvidia/cu13/bin/nvcc" ]; then
    rm -rf "$tools"
    python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --target "$tools" \
      "nvidia-cuda-nvcc==$cuda_ver" "nvidia-nvvm==$cuda_ver" "nvidia-cuda-crt==$cuda_ver" \
      "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cccl==13.0.85"
  fi
  export CUDA_HOME="$tools/nvidia/cu13"
  export NVCC="$CUDA_HOME/bin/nvcc"
  export PATH="$CUDA_HOME/bin:$PATH"
  "$NVCC" --version | tail -n 2
fi

step "lowp-sim's shared library"
cargo build --quiet --release -p lowp-sim --lib
sim="$CARGO_TARGET_DIR/release/liblowp_sim.so"
[ -f "$sim" ] || { echo "no $sim"; exit 1; }

cd "$dep"
if [ -z "${LOWP_DEPENDENT_SYSTEM_CUDA:-}" ]; then
  step "candle-kernels (nvcc, compute capability $CUDA_COMPUTE_CAP)"
  cargo build --quiet -p candle-kernels
  moe=$(ls -t "$CARGO_TARGET_DIR"/debug/build/candle-kernels-*/out/libmoe.a | head -n 1)
  cudarc_src=$(cargo metadata --format-version 1 --locked | python3 -c '
import json, os, sys
m = json.load(sys.stdin)
print(next(os.path.dirname(p["manifest_path"]) for p in m["packages"] if p["name"] == "cudarc"))')

  step "stub CUDA libraries (link time), libcuda.so.1 -> lowp-sim (run time)"
  stubs="$CARGO_TARGET_DIR/dependent-stubs"
  python3 "$dep/stubs.py" --cudarc "$cudarc_src" --moe "$moe" --sim "$sim" --out "$stubs"
  export LOWP_DEPENDENT_STUBS="$stubs/link"
  # only the test binary sees the run-time libraries (not cargo, rustc or nvcc)
  export CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="env LD_LIBRARY_PATH=$stubs/run"
fi

step "the dependent's test (lowp with default-features = false beside candle-core's cuda)"
cargo test --locked --no-run 2>&1 | tail -n 3
bin=$(cargo test --locked --no-run --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "candle_fp8":
        print(m["executable"])')
echo "test binary: $bin"
readelf -d "$bin" | grep NEEDED | sed 's/^ */  /'
cargo test --locked -- --nocapture

step "done"
