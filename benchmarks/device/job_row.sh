. benchmarks/device/env.sh
# ROW: one row or several, comma-separated, trained PAR at a time (default 1) on the one device
python -m benchmarks.ablate_llm train --rows "$ROW" --parallel ${PAR:-1} --minutes ${MIN:-10} > /root/logs/train.log 2>&1
echo train rc=$? >> /root/logs/status
for S in $(python -c "from benchmarks.ablate_llm import pick, slug; print(' '.join(slug(r) for r in pick('$ROW')))"); do
  R=runs/ablate/$S
  if [ ! -d $R/model ]; then  # stopped by --minutes: its latest checkpoint becomes the model
    python -m lsr.train configs/smollm2-ablate.toml --set run.out=$R $(python -c "
from benchmarks.ablate_llm import ROWS, pick
print(' '.join('--set ' + s for s in ROWS[pick('$S')[0]]))") --save-latest >> /root/logs/train.log 2>&1
  fi
done
python -m benchmarks.ablate_llm encode --rows "$ROW" --data /root/work/data/scifact --dev runs/ts-scifact/dev > /root/logs/encode.log 2>&1
echo encode rc=$? >> /root/logs/status
for S in $(python -c "from benchmarks.ablate_llm import pick, slug; print(' '.join(slug(r) for r in pick('$ROW')))"); do
  R=runs/ablate/$S
  tar czf /root/logs/model-$S.tgz $R/model && tar czf /root/logs/rest-$S.tgz --exclude=checkpoints --exclude=model \
    --exclude=corpus-dense.safetensors $R
  if [ -f $R/corpus-dense.safetensors ]; then tar czf /root/logs/dense-$S.tgz $R/corpus-dense.safetensors; fi
done
echo tar rc=$? >> /root/logs/status
