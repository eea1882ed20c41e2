. benchmarks/device/env.sh
R=runs/ablate/$ROW
python -m benchmarks.ablate_llm train --rows "$ROW" --minutes ${MIN:-10} > /root/logs/train.log 2>&1
echo train rc=$? >> /root/logs/status
if [ ! -d $R/model ]; then  # stopped by --minutes: its latest checkpoint becomes the model
  python -m lsr.train configs/smollm2-splade.toml --set run.out=$R $(python -c "
from benchmarks.ablate_llm import ROWS, pick
print(' '.join('--set ' + s for s in ROWS[pick('$ROW')[0]]))") --save-latest >> /root/logs/train.log 2>&1
fi
python -m benchmarks.ablate_llm encode --rows "$ROW" --data /root/work/data/scifact --dev runs/ts-scifact/dev > /root/logs/encode.log 2>&1
echo encode rc=$? >> /root/logs/status
tar czf /root/logs/model.tgz $R/model && tar czf /root/logs/rest.tgz --exclude=checkpoints --exclude=model $R
echo tar rc=$? >> /root/logs/status
