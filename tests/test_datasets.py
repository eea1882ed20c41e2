"""BEIR dataset lookup and download, against a real HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import json
import socket
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli import quickstart
from eval.datasets import DatasetUnavailableError, beir_dataset
from retrieval.corpus import read_docs, read_qrels


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """Serves tmp_path/www over HTTP on 127.0.0.1; yields (url pattern, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{{name}}.zip", www
    httpd.shutdown()
    httpd.server_close()


def make_zip(path: Path, name: str) -> None:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}/corpus.jsonl", json.dumps({"_id": "d1", "title": "T", "text": "cells divide"}) + "\n")
        z.writestr(f"{name}/queries.jsonl", json.dumps({"_id": "q1", "text": "cell division"}) + "\n")
        z.writestr(f"{name}/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\n")


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{{name}}.zip"


def test_download_once_then_reuse(tmp_path: Path, server) -> None:
    url, www = server
    make_zip(www / "scifact.zip", "scifact")
    got = beir_dataset(tmp_path / "missing", "scifact", tmp_path / "cache", url)
    assert got == tmp_path / "cache" / "scifact"
    assert [d.id for d in read_docs(got / "corpus.jsonl")] == ["d1"]
    assert read_qrels(got / "qrels" / "test.tsv") == {"q1": {"d1": 1}}
    (www / "scifact.zip").unlink()  # a second call does not download again
    assert beir_dataset(tmp_path / "missing", "scifact", tmp_path / "cache", url) == got
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["scifact"]


def test_local_copy_wins(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    (local / "corpus.jsonl").write_text(json.dumps({"_id": "x", "text": "y"}) + "\n")
    assert beir_dataset(local, "scifact", tmp_path / "cache", closed_port_url()) == local


@pytest.mark.parametrize("content", ["not a zip", "wrong folder"])
def test_bad_download_leaves_nothing(tmp_path: Path, server, content: str) -> None:
    url, www = server
    if content == "not a zip":
        (www / "scifact.zip").write_text("<html>moved</html>")
    else:
        make_zip(www / "scifact.zip", "nfcorpus")
    with pytest.raises(DatasetUnavailableError, match="downloading .* failed"):
        beir_dataset(tmp_path / "missing", "scifact", tmp_path / "cache", url)
    assert list((tmp_path / "cache").iterdir()) == []


def test_quickstart_without_data_or_network_says_so(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    code = quickstart.main(["--data", str(tmp_path / "nowhere"), "--beir-url", closed_port_url()])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no BEIR scifact corpus in") and "--data" in err
    assert not (tmp_path / "runs" / "scifact").exists()


def test_the_main_job_finds_its_tuned_fusion() -> None:
    """The quickstart reads the fusion tuned on scifact's train split from eval/expected (it moved to cli/)."""
    import json

    assert quickstart.EXPECTED.is_file()
    assert json.loads(quickstart.EXPECTED.read_text())["fusion"]["method"] in ("rrf", "linear", "dbsf")
