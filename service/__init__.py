"""HTTP scoring service (FastAPI). Not built yet: the library and CLI come first (see README)."""
