#!/usr/bin/env bash
# Mutation tests of the Hopper GEMM (see run.py): applies each deliberate kernel bug to a scratch
# copy, rebuilds, runs the GEMM tests on the simulator; exits non-zero if a mutation survives.
exec python3 "$(dirname "$0")/run.py" "$@"
