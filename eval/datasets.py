"""BEIR datasets: a local folder, or the official BEIR zip downloaded once.

The official location is the UKP server that the BEIR package downloads from.
A download is checked (a zip holding ``<name>/corpus.jsonl``) and unpacked into
a staging folder that is renamed into place, so a failed or partial download
never looks like a dataset.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from indexer.atomic import staged
from retrieval.corpus import find

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
TIMEOUT_S = 30


class DatasetUnavailableError(RuntimeError):
    """Neither a local copy nor a download: the message says what was tried."""


def beir_dataset(local: Path, name: str, cache: Path, url: str = BEIR_URL) -> Path:
    """A BEIR dataset folder: ``local`` if it holds a corpus, else ``cache/name``
    (downloaded from ``url`` the first time)."""
    for folder in (local, cache / name):
        try:
            find(folder, "corpus")
            return folder
        except FileNotFoundError:
            continue
    source = url.format(name=name)
    logger.info("no %s corpus in %s; downloading %s", name, local, source)
    try:
        return _download(source, name, cache)
    except (urllib.error.URLError, OSError, zipfile.BadZipFile, ValueError) as e:
        raise DatasetUnavailableError(
            f"no BEIR {name} corpus in {local} and downloading {source} failed ({e}); "
            f"pass the folder of a local copy (--data)"
        ) from None


def _download(source: str, name: str, cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache, suffix=".zip.part") as tmp:
        with urllib.request.urlopen(source, timeout=TIMEOUT_S) as response:  # noqa: S310 (a fixed https URL)
            shutil.copyfileobj(response, tmp)
        tmp.flush()
        with zipfile.ZipFile(tmp.name) as z:
            members = z.namelist()
            if f"{name}/corpus.jsonl" not in members:
                raise ValueError(f"the zip holds no {name}/corpus.jsonl")
            if any(m.startswith("/") or ".." in Path(m).parts for m in members):
                raise ValueError("the zip has paths outside its folder")
            with staged(cache / name, overwrite=False) as work:
                z.extractall(work)
                for item in (work / name).iterdir():
                    item.rename(work / item.name)
                (work / name).rmdir()
    logger.info("downloaded %s into %s", source, cache / name)
    return cache / name
