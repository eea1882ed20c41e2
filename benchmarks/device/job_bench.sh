. benchmarks/device/env.sh
python -m benchmarks.bench_train --device cuda --models splade-tiny,smollm2-135m --batch-size 32 --steps 15 \
  --warmup 4 --repeat 2 --trainset runs/ts-scifact/set --out /root/logs/train-bench.json \
  --profile /root/logs/profile > /root/logs/bench.log 2>&1
echo bench rc=$? >> /root/logs/status
tar czf /root/logs/profile.tgz -C /root/logs profile && echo profile tar rc=$? >> /root/logs/status
