#!/usr/bin/env bash
# The device checks of one GPU lease, in one run (about 9 minutes on an H200 with 16 cores):
# the `gpu` tests, benchmarks/bench_gpu.py (CUDA k-NN and embedding throughput against the same machine's
# CPU), benchmarks/bench_train.py on CUDA, then `tools/experiment.py --size full --device cuda` until the
# deadline. Everything it prints and the experiment's report/stage stamps land in $OUT (default ./gpu_out).
# Packages the machine lacks travel as wheels in .whl/ (see docs/benchmarks.md, "GPU figures").
set -o pipefail
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
DEADLINE=$((SECONDS + ${BUDGET_S:-540}))
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUT/install.log" 2>&1 || {
  ln -sfn ../configs hardmine/configs; ln -sfn ../manifests/queries hardmine/queries
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}; }
export PYTHONUNBUFFERED=1
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; python3 -c 'import torch; print(torch.__version__)'; } >"$OUT/machine.txt" 2>&1
echo "== gpu tests"; timeout 150 python3 -m pytest -m gpu -p no:cacheprovider -rs tests/fr_data/knn/test_knn.py \
  tests/fr_train/test_models.py tests/fr_train/test_trainer.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -15
echo "== bench_gpu"; timeout 120 python3 benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" 2>&1 | tee "$OUT/bench_gpu.log"
echo "== bench_train"; timeout 90 python3 benchmarks/bench_train.py --device cuda --model iresnet50 --batch 128 \
  --amp fp16 --ddl-ot 2>&1 | tee "$OUT/bench_train.log" | tail -12
LEFT=$((DEADLINE - SECONDS)); echo "== experiment, $LEFT s left"
START=$SECONDS
( time timeout $LEFT python3 tools/experiment.py --out /tmp/exp --size full --device cuda --workers 12 ) \
  >"$OUT/experiment.log" 2>&1; echo "experiment rc $? after $((SECONDS - START)) s"; tail -25 "$OUT/experiment.log"
tar czf "$OUT/experiment.tgz" -C /tmp/exp --exclude='*.pt' --exclude='*.npy' --exclude=shards --exclude=synth \
  --exclude=packs . 2>/dev/null; ls -la "$OUT"
