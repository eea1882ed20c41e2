"""Run the service: ``python -m service`` (settings from LSR_* environment variables), or
``python -m service import NAME COLLECTION`` to load an `lsr index` collection as a live index."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from . import logs
from .settings import Settings


def main(argv: list[str]) -> int:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    if argv[:1] == ["import"]:
        if len(argv) != 3:
            sys.stderr.write("usage: python -m service import NAME COLLECTION_FOLDER\n")
            return 2
        from retrieval.encoders import Encoders
        from retrieval.engine import Engine

        engine = Engine(settings.root, Encoders(settings.device))
        engine.open_all(load_models=False)
        if argv[1] in engine.names():
            logging.getLogger(__name__).info("index %s exists; nothing to import", argv[1])
            return 0
        try:
            index = engine.import_collection(argv[1], Path(argv[2]))
        except (OSError, ValueError, KeyError) as e:
            sys.stderr.write(f"error: cannot import {argv[2]} as {argv[1]}: {e}\n")
            return 2
        logging.getLogger(__name__).info("imported %s: %d docs", argv[1], index.num_docs)
        return 0
    if argv:
        sys.stderr.write("usage: python -m service [import NAME COLLECTION_FOLDER]\n")
        return 2
    import uvicorn

    from .app import create_app

    # our handler formats uvicorn's records too; our middleware writes the access log
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None, access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
