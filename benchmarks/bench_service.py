"""Open-loop load test of the REST service on loopback, on the scifact index.

The service runs as its own process (``python -m service``) over a live index imported
from a built collection (the main job's SPLADE-tiny + MiniLM vectors). Requests are sent on
a fixed schedule, ``rate`` per second, whether or not earlier ones have answered, and each
latency is measured from the request's scheduled time, so a stall shows as the queue it
causes (no coordinated omission). Queries are scifact's 300 test queries, cycled.

Scenarios, each for ``seconds``:
  text          sparse search, the server encodes the query with SPLADE-tiny
  pre-encoded   sparse search with the query's SPLADE-tiny vector given (indices + values)
  pre-encoded + writes
                the same while a writer upserts and deletes documents (with their vectors)
                a few times a second; afterwards every written id is read back and checked
                against the record of what the service acknowledged
  hybrid text   sparse + dense (MiniLM) search, the server encodes both, at --hybrid-rate
                (MiniLM takes 12-30 ms a query on 2 cores: 100 a second is past this machine)
  batch text    closed loop: /search/batch with --batch-size text queries per request, --batch-clients
                requests in flight; throughput in queries per second (what an evaluation client sees)

Server-side latency (the access log's ms: from the request's arrival to its answer) is
reported beside the client's, so queueing in the client or the kernel shows as their gap.

The load generator shares the machine's cores with the service; the JSON records how many.

    python -m benchmarks.bench_service --collection runs/scifact --rate 100 --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

INDEX = "scifact"
CONNECTIONS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(root: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LSR_ROOT": str(root), "LSR_PORT": str(port), "LSR_LOG_LEVEL": "INFO"}
    return subprocess.Popen([sys.executable, "-m", "service"], env=env, stderr=log.open("w"))


def wait_ready(base: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the service exited with {proc.returncode}")
        try:
            if httpx.get(f"{base}/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the service never became ready")


def encode(base: str, texts: list[str], kind: str, outputs: list[str]) -> list[dict]:
    out = []
    for i in range(0, len(texts), 128):
        r = httpx.post(
            f"{base}/v1/encode",
            json={"index": INDEX, "texts": texts[i : i + 128], "kind": kind, "outputs": outputs},
            timeout=300,
        )
        r.raise_for_status()
        out += r.json()["items"]
    return out


def server_ms(log: Path, offset: int) -> tuple[list[float], int]:
    """Search latencies from the service's access log written after ``offset``, and the new offset."""
    with log.open("rb") as f:
        f.seek(offset)
        data = f.read()
    ms = []
    for line in data.splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("path") == f"/v1/indexes/{INDEX}/search" and "ms" in r:
            ms.append(r["ms"])
    return ms, offset + len(data)


def summary(latencies: list[float], statuses: list[int], seconds: float, sent: int) -> dict:
    lat = np.array(latencies) if latencies else np.array([np.nan])
    ok = sum(200 <= s < 300 for s in statuses)
    return {
        "sent": sent,
        "ok": ok,
        "errors": sent - ok,
        "throughput_rps": ok / seconds,
        "p50_ms": float(np.percentile(lat, 50)),
        "p90_ms": float(np.percentile(lat, 90)),
        "p99_ms": float(np.percentile(lat, 99)),
        "max_ms": float(lat.max()),
    }


async def open_loop(client: httpx.AsyncClient, bodies: list[dict], rate: float, seconds: float) -> dict:
    """Send ``rate`` searches per second for ``seconds``, each queued at its scheduled time
    and sent by the first of ``CONNECTIONS`` free connections; latency counts the wait."""
    loop = asyncio.get_running_loop()
    n = int(rate * seconds)
    latencies: list[float] = []
    statuses: list[int] = []
    queue: asyncio.Queue = asyncio.Queue()

    async def connection() -> None:  # httpx's pool slows down badly with many queued requests
        while (job := await queue.get()) is not None:
            body, due = job
            try:
                r = await client.post(f"/v1/indexes/{INDEX}/search", json=body)
                statuses.append(r.status_code)
            except httpx.HTTPError:
                statuses.append(0)
            latencies.append((loop.time() - due) * 1000)

    workers = [asyncio.create_task(connection()) for _ in range(CONNECTIONS)]
    t0 = loop.time() + 0.05
    for i in range(n):
        due = t0 + i / rate
        if (wait := due - loop.time()) > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((bodies[i % len(bodies)], due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return summary(latencies, statuses, loop.time() - t0, n)


async def writer(client: httpx.AsyncClient, docs: list[dict], stop: asyncio.Event, record: dict, ops_per_s: float):
    """Upserts of 5 new documents, replacements and deletes, ``ops_per_s`` calls a second;
    ``record[id]`` is the text the service acknowledged (None: acknowledged deleted);
    ids of a call that failed or timed out go to ``record['?']``."""
    n = 0
    live: list[str] = []
    stats = {"upserts": 0, "deletes": 0, "replaces": 0, "failed": 0}
    uncertain: set[str] = record.setdefault("?", set())
    while not stop.is_set():
        op = n % 4
        if op in (0, 1) or len(live) < 10:  # 5 new documents with their vectors
            batch = [docs[(n * 5 + j) % len(docs)] for j in range(5)]
            ids = [f"load-{n}-{j}" for j in range(5)]
            payload = [{**d, "id": i, "text": f"{i} {d['text']}"} for d, i in zip(batch, ids)]
            kind = "upserts"
        elif op == 2:  # replace 2 live documents with new text (same vectors)
            ids = live[-2:]
            payload = [{**docs[n % len(docs)], "id": i, "text": f"{i} replaced at {n}"} for i in ids]
            kind = "replaces"
        else:  # delete the 5 oldest live documents
            ids, payload, kind = live[:5], None, "deletes"
        try:
            if payload is None:
                r = await client.post(f"/v1/indexes/{INDEX}/documents/delete", json={"ids": ids})
            else:
                r = await client.post(f"/v1/indexes/{INDEX}/documents", json={"documents": payload})
            r.raise_for_status()
            stats[kind] += 1
            if payload is None:
                live = [i for i in live if i not in ids]
                record.update(dict.fromkeys(ids))
            else:
                live = [i for i in live if i not in ids] + ids
                record.update({p["id"]: p["text"] for p in payload})
        except httpx.HTTPError:
            stats["failed"] += 1
            uncertain.update(ids)
        n += 1
        await asyncio.sleep(1 / ops_per_s)
    return stats


async def scenario(base: str, bodies: list[dict], rate: float, seconds: float, docs: list[dict] | None) -> dict:
    limits = httpx.Limits(max_connections=CONNECTIONS + 4, max_keepalive_connections=CONNECTIONS + 4)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:
        if docs is None:
            return await open_loop(client, bodies, rate, seconds)
        stop = asyncio.Event()
        record: dict = {}
        wtask = asyncio.create_task(writer(client, docs, stop, record, ops_per_s=4))
        result = await open_loop(client, bodies, rate, seconds)
        stop.set()
        result["writes"] = await wtask
        result["writes"].update(await check_writes(client, record))
        return result


async def closed_loop_batches(base: str, queries: list[str], size: int, clients: int, seconds: float) -> dict:
    """``clients`` loops, each posting /search/batch requests of ``size`` text queries back to back for
    ``seconds``; request latency and queries answered per second."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    statuses: list[int] = []
    answered = 0
    end = loop.time() + seconds

    async def client_loop(c: int, client: httpx.AsyncClient) -> None:
        nonlocal answered
        n = c
        while loop.time() < end:
            lo = (n * size) % len(queries)
            body = {"queries": [{"id": f"q{lo + j}", "query": queries[(lo + j) % len(queries)], "top_k": 10}
                                for j in range(size)]}  # fmt: skip
            t0 = loop.time()
            try:
                r = await client.post(f"/v1/indexes/{INDEX}/search/batch", json=body)
                statuses.append(r.status_code)
                answered += size if r.status_code == 200 else 0
            except httpx.HTTPError:
                statuses.append(0)
            latencies.append((loop.time() - t0) * 1000)
            n += clients

    t0 = loop.time()
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await asyncio.gather(*(client_loop(c, client) for c in range(clients)))
    elapsed = loop.time() - t0
    out = summary(latencies, statuses, elapsed, len(statuses))
    out["queries_per_s"] = answered / elapsed
    return out


async def check_writes(client: httpx.AsyncClient, record: dict) -> dict:
    """Read back every id the writer touched; count those that differ from what was acknowledged."""
    uncertain = record.pop("?")
    lost = 0
    for doc_id, text in record.items():
        if doc_id in uncertain:
            continue
        r = await client.get(f"/v1/indexes/{INDEX}/documents/{doc_id}")
        if text is None:
            lost += r.status_code != 404
        else:
            lost += r.status_code != 200 or r.json()["text"] != text
    info = (await client.get(f"/v1/indexes/{INDEX}")).json()
    return {
        "ids_checked": len(record) - len(uncertain & set(record)),
        "ids_uncertain": len(uncertain),
        "lost_or_wrong": lost,
        "live_written": sum(t is not None for t in record.values()),
        "index_docs_after": info["num_docs"],
        "segments_after": info["segments"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--collection", type=Path, required=True, help="a built scifact collection (lsr index)")
    ap.add_argument("--queries", type=Path, default=Path("../shared/data/scifact/queries.jsonl.gz"))
    ap.add_argument("--qrels-split", default="test")
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--hybrid-rate", type=float, default=20.0)
    ap.add_argument("--scenarios", default="text,pre-encoded,pre-encoded + writes,hybrid text,batch text")
    ap.add_argument("--batch-size", type=int, default=100, help="queries per /search/batch request")
    ap.add_argument("--batch-clients", type=int, default=2, help="batch requests in flight")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/service-load-scifact.json"))
    args = ap.parse_args()

    qrels = args.queries.parent / "qrels" / f"{args.qrels_split}.tsv"
    wanted = {line.split("\t")[0] for line in qrels.read_text().splitlines()[1:] if line.strip()}
    opener = gzip.open if args.queries.suffix == ".gz" else open
    with opener(args.queries, "rt") as f:
        queries = [q["text"] for q in map(json.loads, f) if q["_id"] in wanted]

    with tempfile.TemporaryDirectory(prefix="bench-service-") as tmp:
        root = Path(tmp) / "root"
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "service", "import", INDEX, str(args.collection)],
            env={**os.environ, "LSR_ROOT": str(root), "LSR_LOG_LEVEL": "WARNING"},
            check=True,
        )
        import_s = time.perf_counter() - t0
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        log = Path(tmp) / "service.log"
        proc = start_service(root, port, log)
        try:
            wait_ready(base, proc)
            vecs = encode(base, queries, "query", ["sparse"])
            text_bodies = [{"query": q, "top_k": 10} for q in queries]
            pre_bodies = [{**v["sparse"], "top_k": 10} for v in vecs]
            hybrid_bodies = [{"query": q, "top_k": 10, "mode": "hybrid"} for q in queries]
            with gzip.open(json.loads((args.collection / "collection.json").read_text())["job"]["input"], "rt") as f:
                corpus = [json.loads(next(f)) for _ in range(200)]
            texts = [f"{d['title']} {d['text']}" for d in corpus]
            dv = encode(base, texts, "document", ["sparse", "dense"])
            docs = [{"text": t, "sparse": v["sparse"], "dense": v["dense"]} for t, v in zip(texts, dv)]
            results = {}
            plan = [
                ("text", text_bodies, None, args.rate),
                ("pre-encoded", pre_bodies, None, args.rate),
                ("pre-encoded + writes", pre_bodies, docs, args.rate),
                ("hybrid text", hybrid_bodies, None, args.hybrid_rate),
            ]
            chosen = args.scenarios.split(",")
            _, offset = server_ms(log, 0)
            for name, bodies, wdocs, rate in plan:
                if name not in chosen:
                    continue
                for body in bodies[:20]:  # warm up, left out of both client and server numbers
                    httpx.post(f"{base}/v1/indexes/{INDEX}/search", json=body, timeout=60)
                _, offset = server_ms(log, offset)
                r = asyncio.run(scenario(base, bodies, rate, args.seconds, wdocs))
                ms, offset = server_ms(log, offset)
                r["rate"] = rate
                r["server_p50_ms"] = float(np.percentile(ms, 50)) if ms else None
                r["server_p99_ms"] = float(np.percentile(ms, 99)) if ms else None
                results[name] = r
                print(
                    f"{name:22s} {r['throughput_rps']:6.1f} rps  p50 {r['p50_ms']:6.2f}  p99 {r['p99_ms']:7.2f}"
                    f"  max {r['max_ms']:7.2f} ms  server p99 {r['server_p99_ms']:.2f}  errors {r['errors']}",
                    flush=True,
                )
            if "batch text" in chosen:
                warm = {"queries": [{"id": f"w{j}", "query": q, "top_k": 10} for j, q in enumerate(queries[:20])]}
                httpx.post(f"{base}/v1/indexes/{INDEX}/search/batch", json=warm, timeout=120).raise_for_status()
                r = asyncio.run(closed_loop_batches(base, queries, args.batch_size, args.batch_clients, args.seconds))
                r.update(batch_size=args.batch_size, clients=args.batch_clients)
                results["batch text"] = r
                print(f"batch text             {r['queries_per_s']:6.1f} queries/s  p50 {r['p50_ms']:.0f} ms a request"
                      f"  errors {r['errors']}", flush=True)  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(30)

    out = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "seconds": args.seconds,
        "queries": len(queries),
        "import_s": import_s,
        "scenarios": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print()
    print(
        f"| scenario ({args.seconds:.0f} s each, {os.cpu_count()} cores) | offered req/s | throughput "
        "| p50 ms | p90 ms | p99 ms | max ms | server p50 / p99 ms | errors |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        if name == "batch text":
            continue
        print(
            f"| {name} | {r['rate']:.0f} | {r['throughput_rps']:.1f} | {r['p50_ms']:.2f} | {r['p90_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['max_ms']:.2f} | {r['server_p50_ms']:.2f} / {r['server_p99_ms']:.2f} "
            f"| {r['errors']} |"
        )
    if "batch text" in results:
        b = results["batch text"]
        print(
            f"\nbatch text: {b['queries_per_s']:.1f} queries/s ({b['batch_size']} a request, "
            f"{b['clients']} in flight), "
            f"request p50 {b['p50_ms']:.0f} ms, p99 {b['p99_ms']:.0f} ms, {b['errors']} errors"
        )
    if "pre-encoded + writes" in results:
        w = results["pre-encoded + writes"]["writes"]
        print(
            f"\nwrites during the run: {w['upserts']} upserts, {w['replaces']} replaces, {w['deletes']} deletes, "
            f"{w['failed']} failed; {w['ids_checked']} ids read back, {w['lost_or_wrong']} lost or wrong; "
            f"{w['segments_after']} segments after"
        )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
