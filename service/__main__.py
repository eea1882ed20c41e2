"""Run the service: ``python -m service`` (settings from LSR_* environment variables), or
``python -m service import NAME COLLECTION`` to load an `lsr index` collection as a live index."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from . import logs
from .settings import Settings

USAGE = """usage: python -m service                               serve (settings from the environment)
       python -m service import NAME COLLECTION     load an `lsr index` collection as the live index NAME
       python -m service --help                     this text
"""


def help_text() -> str:
    rows = Settings.describe()
    width = max(len(v) for v, _, _ in rows)
    lines = [f"  {var:<{width}}  {desc} (default: {default})" for var, default, desc in rows]
    return USAGE + "\nsettings (environment variables):\n" + "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    if argv[:1] in (["--help"], ["-h"]):
        sys.stdout.write(help_text())
        return 0
    from pydantic import ValidationError

    try:
        settings = Settings()
    except ValidationError as e:
        problems = "; ".join(f"LSR_{'.'.join(map(str, x['loc'])).upper()}: {x['msg']}" for x in e.errors())
        sys.stderr.write(f"error: bad settings: {problems}\n")
        return 2
    logs.configure(settings.log_format, settings.log_level)
    if argv[:1] == ["import"]:
        if len(argv) != 3:
            sys.stderr.write(USAGE)
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
        sys.stderr.write(USAGE)
        return 2
    import uvicorn

    from .app import create_app
    from .http_protocol import server_config

    config = server_config(create_app(settings), settings.host, settings.port,
                           timeout_graceful_shutdown=settings.shutdown_timeout_s)  # fmt: skip
    uvicorn.Server(config).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
