# There: progress of the jobs, and their finished artifacts copied to $OUT.
date; cat /root/logs/status 2>/dev/null; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
for f in /root/logs/*.log runs/ablate/*/train.log; do [ -f "$f" ] && { echo "== $f"; tail -c 600 "$f" | tr '\r' '\n' | tail -n 4; }; done
for f in /root/logs/*.tgz /root/logs/*.json; do [ -f "$f" ] && cp "$f" $OUT/; done
ls -la $OUT
