. benchmarks/device/env.sh
D=/root/work/data/scifact
python -c "
import logging; logging.basicConfig(level=logging.INFO)
from retrieval.trainset import TrainsetSettings, build_trainset
s = TrainsetSettings(pseudo_passages=-1, per_passage=${PER:-8}, device='cuda', batch_size=128)
build_trainset('/root/work/ts-gen', '$D/corpus.jsonl.gz', '$D/queries.jsonl.gz', '$D/qrels/train.tsv', s, generate_only=True)
" > /root/logs/generate.log 2>&1
echo generate rc=$? >> /root/logs/status
(cd /root/work/ts-gen && tar czf /root/logs/pseudo.tgz pseudo)
