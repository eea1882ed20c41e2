#!/usr/bin/env bash
# Opt-in, not CI: build the image, bring up the single-node stack and the Ray cluster profile with docker-compose,
# run the main job and a search against each on loopback, and tear them down. Needs docker and docker-compose
# (Debian: apt-get install docker.io docker-compose; dockerd started as root), and ../shared/data beside the repo.
#
#   bash benchmarks/docker_stack.sh                       # the public base image and package indexes
#   BASE_IMAGE=lsr-base:bookworm PIP_FIND_LINKS=/app/.docker-local PIP_CERT=/app/.docker-local/ca.crt \
#     TORCH_INDEX_URL=https://pypi.org/simple bash benchmarks/docker_stack.sh
#
# The second form is how it ran here, with no registry: lsr-base:bookworm is a debootstrap root filesystem
# (`debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,python-is-python3,g++,cmake,
# ca-certificates bookworm rootfs` then `tar -C rootfs -c . | docker import - lsr-base:bookworm`), and
# .docker-local/ (ignored by git) holds the CPU torch wheel and the proxy's CA bundle.
set -euo pipefail
cd "$(dirname "$0")/.."
STAGES=${STAGES:-"build single cluster"}  # a subset reruns a stage (the cluster one wants the image built)
has() { [[ " $STAGES " == *" $1 "* ]]; }
export COMPOSE_PROJECT_NAME=lsrstack LSR_ADMIN_KEYS='["stack-key"]'
KEY=(-H "Authorization: Bearer stack-key" -H "content-type: application/json")
args=()
for v in BASE_IMAGE PIP_INDEX_URL TORCH_INDEX_URL PIP_FIND_LINKS PIP_CERT; do
  if [ -n "${!v:-}" ]; then args+=(--build-arg "$v=${!v}"); fi
done
step() { printf '\n== %s (%s)\n' "$1" "$(date -u +%H:%M:%S)"; }
ready() {  # $1: port
  for _ in $(seq 300); do curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0; sleep 2; done
  echo "the service on :$1 never became ready" >&2; return 1
}
down() { docker-compose --profile cluster down -v --remove-orphans >/dev/null 2>&1 || true; }
trap down EXIT

if has build; then
step "build the image"
t0=$(date +%s)
docker build --network host "${args[@]}" -t lsr-search:latest . > /tmp/lsr-docker-build.log
echo "built in $(( $(date +%s) - t0 )) s; $(docker image inspect lsr-search:latest --format '{{.Size}}' | numfmt --to=iec)"
fi

if has single; then
step "single node: the main job (index scifact, import it into the service's folder)"
t0=$(date +%s)
docker-compose run --rm index 2>&1 | grep -E "nDCG|ndcg|imported|docs" | tail -5
echo "main job in $(( $(date +%s) - t0 )) s"

step "single node: the service, one search"
docker-compose up -d service
ready 8000
curl -sf "${KEY[@]}" http://127.0.0.1:8000/v1/indexes/scifact/search \
  -d '{"query": "microglia in the developing brain", "top_k": 3}' | python3 -c "
import json, sys
r = json.load(sys.stdin)
print('hits', [(h['id'], round(h['score'], 3)) for h in r['hits']])
assert len(r['hits']) == 3"
docker-compose stop service
fi

if has cluster; then
step "cluster: a Ray head, a worker, the coordinator; a sharded index with its shards on Ray actors"
docker-compose --profile cluster up -d ray-head ray-worker coordinator
ready 8001
curl -sf "${KEY[@]}" http://127.0.0.1:8001/v1/indexes \
  -d '{"name": "sharded", "dense_model": null, "max_weight": 50.0, "shards": 3}' | python3 -c "
import json, sys; r = json.load(sys.stdin); print('created', r['name'], 'shards', r['shards']); assert r['shards'] == 3"
python3 - <<'PY' | curl -sf "${KEY[@]}" http://127.0.0.1:8001/v1/indexes/sharded/documents -d @- >/dev/null
import gzip, json
with gzip.open("../shared/data/scifact/corpus.jsonl.gz", "rt") as f:
    docs = [json.loads(next(f)) for _ in range(200)]
print(json.dumps({"documents": [{"id": d["_id"], "text": d["title"] + " " + d["text"]} for d in docs]}))
PY
curl -sf "${KEY[@]}" http://127.0.0.1:8001/v1/indexes/sharded | python3 -c "
import json, sys; r = json.load(sys.stdin); print('documents', r['num_docs'], 'segments', r['segments']); assert r['num_docs'] == 200"
curl -sf "${KEY[@]}" http://127.0.0.1:8001/v1/indexes/sharded/search \
  -d '{"query": "microglia in the developing brain", "top_k": 3}' | python3 -c "
import json, sys
r = json.load(sys.stdin)
print('hits', [(h['id'], round(h['score'], 3)) for h in r['hits']])
assert len(r['hits']) == 3"
docker-compose exec -T ray-head ray status 2>/dev/null | grep -E "node_|CPU" | head -4
fi

step "tear down"
