#!/usr/bin/env bash
# Mutation tests of the Hopper GEMM and qk_norm_rope (see run.py): applies each deliberate kernel
# bug to a scratch copy, rebuilds, runs its tests on the simulator; exits non-zero if a mutation
# survives.
exec python3 "$(dirname "$0")/run.py" "$@"
