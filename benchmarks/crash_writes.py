"""Acknowledged writes survive SIGKILL: a writer loads the service, the service is killed mid-write, restarted,
and every id the writer touched is read back.

    python -m benchmarks.crash_writes [--rounds 5] [--seconds 4] [--out benchmarks/results/crash-writes.json]

Each round: the service (``python -m service``) runs over one live index; a writer sends upserts of 20 documents
with their vectors (no encoding: the writes themselves are what is measured), replacements and deletes as fast
as the service answers, several in flight; after ``--seconds`` the service gets SIGKILL. It is started again on
the same folder, and every id is checked against what the service acknowledged before it died:

- lost: an acknowledged upsert that is missing after the restart;
- wrong: present, with another text than the last acknowledged one;
- resurrected: acknowledged as deleted, present again.

Calls that were in flight at the kill (no answer) may or may not have happened; their ids are left out and
counted as ``uncertain``. Every count but that one must be 0. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_service import free_port, start_service, wait_ready

INDEX = "crash"
VOCAB = 30_522  # splade-tiny's vocabulary: the index is made for it, the vectors are random


def vector(rng: random.Random) -> dict:
    terms = rng.sample(range(VOCAB), 12)
    return {"indices": terms, "values": [round(rng.uniform(0.1, 3.0), 3) for _ in terms]}


async def writer(base: str, seconds: float, seed: int, inflight: int = 4) -> tuple[dict, set, dict]:
    """Writes until killed or ``seconds`` pass: returns the acknowledged state (id -> text, None: deleted), the
    ids of calls without an answer, and counts."""
    rng = random.Random(seed)
    acked: dict[str, str | None] = {}
    uncertain: set[str] = set()
    live: list[str] = []
    counts = {"upserts": 0, "replaces": 0, "deletes": 0, "failed": 0}
    end = time.monotonic() + seconds
    n = 0

    def claim(count: int) -> list[str]:
        """Live ids taken out of the pool while a call changes them: no two calls in flight touch one id."""
        picked = rng.sample(range(len(live)), count)
        ids = [live[j] for j in picked]
        for j in sorted(picked, reverse=True):
            live.pop(j)
        return ids

    async def one(client: httpx.AsyncClient, k: int) -> None:
        nonlocal n
        while time.monotonic() < end:
            n += 1
            op = rng.random()
            if op < 0.6 or len(live) < 40:
                ids = [f"w{seed}-{k}-{n}-{j}" for j in range(20)]
                docs = [{"id": i, "text": f"{i} v{n}", "sparse": vector(rng)} for i in ids]
                kind, call = "upserts", client.post(f"/v1/indexes/{INDEX}/documents", json={"documents": docs})
                result = {d["id"]: d["text"] for d in docs}
            elif op < 0.8:
                ids = claim(5)
                docs = [{"id": i, "text": f"{i} replaced {n}", "sparse": vector(rng)} for i in ids]
                kind, call = "replaces", client.post(f"/v1/indexes/{INDEX}/documents", json={"documents": docs})
                result = {d["id"]: d["text"] for d in docs}
            else:
                ids = claim(5)
                kind, call = "deletes", client.post(f"/v1/indexes/{INDEX}/documents/delete", json={"ids": ids})
                result = dict.fromkeys(ids)
            for i in ids:  # in flight: unknown until answered
                uncertain.add(i)
            try:
                r = await call
                r.raise_for_status()
            except (httpx.HTTPError, OSError):
                counts["failed"] += 1
                return  # the service is gone: these ids stay uncertain
            for i in ids:
                uncertain.discard(i)
            acked.update(result)
            counts[kind] += 1
            live.extend(i for i, text in result.items() if text is not None)  # claimed ids come back

    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        await asyncio.gather(*(one(client, k) for k in range(inflight)))
    return acked, uncertain, counts


def check(base: str, acked: dict, uncertain: set) -> dict:
    lost = wrong = resurrected = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for i, text in acked.items():
            if i in uncertain:
                continue
            r = client.get(f"/v1/indexes/{INDEX}/documents/{i}")
            if text is None:
                resurrected += r.status_code != 404
            elif r.status_code != 200:
                lost += 1
            elif r.json()["text"] != text:
                wrong += 1
    return {"checked": len(acked) - len(uncertain & set(acked)), "uncertain": len(uncertain), "lost": lost,
            "wrong": wrong, "resurrected": resurrected}  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/crash-writes.json"))
    a = ap.parse_args(argv)
    rounds = []
    with tempfile.TemporaryDirectory(prefix="crash-writes-") as tmp:
        root = Path(tmp) / "root"
        acked_all: dict[str, str | None] = {}
        uncertain_all: set[str] = set()
        for k in range(a.rounds):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            proc = start_service(root, port, Path(tmp) / f"service-{k}.log")
            try:
                wait_ready(base, proc)
                if k == 0:
                    r = httpx.post(f"{base}/v1/indexes", json={"name": INDEX, "dense_model": None}, timeout=120)
                    r.raise_for_status()
                before = check(base, acked_all, uncertain_all)  # what the last kill left, after this restart
                loop_task = writer(base, a.seconds * 3, seed=k)

                async def run_and_kill(task=loop_task, pid: int = proc.pid) -> tuple:  # noqa: ANN001
                    killer = asyncio.get_running_loop().call_later(a.seconds, os.kill, pid, signal.SIGKILL)
                    try:
                        return await task
                    finally:
                        killer.cancel()

                acked, uncertain, counts = asyncio.run(run_and_kill())
            finally:
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
            for i in uncertain:  # a call without an answer may or may not have happened
                acked_all.pop(i, None)
            acked_all.update({i: t for i, t in acked.items() if i not in uncertain})
            uncertain_all |= uncertain
            uncertain_all -= set(acked)  # ids answered later are certain again
            rounds.append({"round": k, **counts, "after_previous_kill": before})
            print(f"round {k}: {counts}; after the previous kill: {before}", flush=True)  # noqa: T201
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_service(root, port, Path(tmp) / "service-final.log")
        try:
            wait_ready(base, proc)
            final = check(base, acked_all, uncertain_all)
        finally:
            proc.terminate()
            proc.wait(30)
    print("\n| check | ids | lost | wrong | resurrected | uncertain |\n|---|---:|---:|---:|---:|---:|")  # noqa: T201
    for r in rounds[1:]:
        b = r["after_previous_kill"]
        print(f"| after kill {r['round'] - 1} | {b['checked']} | {b['lost']} | {b['wrong']} | {b['resurrected']} "  # noqa: T201
              f"| {b['uncertain']} |")  # fmt: skip
    print(f"| after kill {a.rounds - 1} | {final['checked']} | {final['lost']} | {final['wrong']} "  # noqa: T201
          f"| {final['resurrected']} | {final['uncertain']} |")  # fmt: skip
    out = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "seconds": a.seconds,
           "rounds": rounds, "final": final}  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {a.out}")  # noqa: T201
    return out


if __name__ == "__main__":
    main()
