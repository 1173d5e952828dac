#!/usr/bin/env bash
# compare.sh DIR LLAMAREF [ROUNDS]: decode tokens/s of llama.cpp
# (quant/ggml/testdata/llamaref.c's decode, on DIR's stories15M and
# stories110M GGUF files in Q4_0 and F32) and of golora (BenchmarkGenerateDecode on the same weights: NF4,
# NF4 with the int8 head, float32), at 1 and 2 threads, taking turns for
# ROUNDS rounds (3 by default) so that a machine whose speed drifts slows
# both alike. See README.md.
set -euo pipefail
dir=$1 llamaref=$2 rounds=${3:-3}
cd "$(dirname "$0")/../.."
export PATH=/usr/local/go/bin:$PATH
test=$(mktemp /tmp/infer.test.XXXXXX)
trap 'rm -f "$test"' EXIT
go test -c -o "$test" .
for round in $(seq "$rounds"); do
  echo "--- round $round, $(date -u +%H:%M:%S)"
  for shape in stories15M stories110M; do
    for threads in 1 2; do
      for typ in q4_0 f32; do
        "$llamaref" decode "$dir/$shape.$typ.gguf" "$threads" 2000 2>/dev/null
      done
    done
    "$test" -test.run '^$' -test.bench "GenerateDecode/^$shape\$/^(nf4|nf4\\+head8|dense)\$" \
      -test.cpu 1,2 -test.benchtime 2000x | grep '^Benchmark'
  done
done
