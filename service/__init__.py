"""The REST search service (FastAPI): ``create_app(settings)``; run with ``python -m service``."""
