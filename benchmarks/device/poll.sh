# There: progress of the jobs, and their finished artifacts copied to $OUT.
date; cat /root/logs/status 2>/dev/null; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
for f in /root/logs/*.log runs/ablate/*/train.log; do [ -f "$f" ] && { echo "== $f"; tail -c 600 "$f" | tr '\r' '\n' | tail -n 4; }; done
for f in /root/logs/*.tgz /root/logs/*.json; do [ -f "$f" ] && cp "$f" $OUT/; done
# Each run's latest checkpoint, portable part only (weights.safetensors + meta.json, ~14 MB for SmolLM2): if the
# machine is taken back mid-run, the steps done so far still come home (see README, "restore a checkpoint").
for c in runs/ablate/*/checkpoints; do
  [ -d "$c" ] || continue
  s=$(basename $(dirname $c)); last=$(ls -d $c/step-* 2>/dev/null | sort | tail -n 1)
  [ -f "$last/weights.safetensors" ] && [ -f "$last/meta.json" ] || continue
  cp "$last/weights.safetensors" "$OUT/ckpt-$s-$(basename $last).safetensors"
  cp "$last/meta.json" "$OUT/ckpt-$s-$(basename $last).json"
done
ls -la $OUT
