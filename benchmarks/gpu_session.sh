#!/usr/bin/env bash
# The GPU checks of issues 4 and 6 in one short run, for a lent GPU machine (at most 7.5 minutes on
# an H100/H200). Run from the repository root with the Fashion-MNIST IDX files in
# $POCKETVISION_DATA; results go to ${OUT:-benchmarks/results}.
#   POCKETVISION_DATA=/path/to/fmnist bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-benchmarks/results}
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
# issue 6: the profile on the GPU (eager, torch.compile; ORT CUDA when onnxruntime-gpu is there)
for m in mobilenet_v2_100 mobilenet_v1_100 resnet50; do
  timeout 100 $PY -m pocketvision profile "$m" --input-size 224 --batch 1,32 \
    --runtimes eager_cuda,compile_cuda,onnxruntime_cuda --json >"$OUT/profile_gpu_$m.json" \
    2>>"$OUT/profile_gpu.log" || echo "profile $m failed: $(tail -1 "$OUT/profile_gpu.log")"
done
# issue 4: the training benchmark on the GPU (the fast recipe; the long one is searched by
# long_recipe_search.sh)
timeout 130 $PY benchmarks/train_fashion_mnist.py --recipe fast --device cuda \
  --out "$OUT/train_fashion_mnist_fast_cuda.json" >"$OUT/train_fast_cuda.log" 2>&1 || echo "fast recipe failed"
tail -3 "$OUT/train_fast_cuda.log"
