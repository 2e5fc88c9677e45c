"""The HTTP service: ``create_app(settings)`` builds it; ``matcher serve`` runs it under uvicorn.

At startup the database is migrated (unless ``service_db_auto_upgrade`` is off, as in the workers
``matcher serve`` starts after migrating once), and the current artifact version loads and warms
before the worker accepts requests (up to ``service_startup_wait_s``; after that, or with nothing
published, it starts anyway: ``/health`` answers, ``/ready`` says 503 until a version is loaded).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

import sqlalchemy as sa
from fastapi import Depends, FastAPI, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from matcher.loading import load_catalog
from matcher.settings import Settings
from matcher.store.db import Store, describe, upgrade
from service import errors, schemas as api
from service.auth import KeyCache, need
from service.errors import PayloadTooLargeError, error_body
from service.holder import ArtifactHolder
from service.logwriter import ServedLogWriter
from service.quotas import Quotas
from service.metrics import CONTENT_TYPE_LATEST, Metrics
from service.routes import router
from service.state import ServiceState

log = logging.getLogger("service")
access = logging.getLogger("service.access")
STATIC_DIR = Path(__file__).resolve().parent / "static"
PLACEHOLDER = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chain Matcher review</title></head>
<body><h1>Chain Matcher</h1><p>The review page is not installed; the API is documented at <a href="/docs">/docs</a>.</p></body></html>
"""
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The review page loads only its own files (no inline script or style attribute: app.js sets
# styles through the CSSOM, which CSP allows); the same policy is sent with every response.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
# /docs and /redoc are FastAPI's Swagger UI and ReDoc pages: an inline script and a CDN bundle,
# so they get a policy that allows exactly that, still never framed.
DOCS_POLICY = ("default-src 'self'; img-src 'self' data: https://fastapi.tiangolo.com; "
               "style-src 'self' https://cdn.jsdelivr.net https://fonts.googleapis.com; font-src https://fonts.gstatic.com; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
               "worker-src 'self' blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc")
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"no-referrer")]


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    policy = DOCS_POLICY if path.startswith(DOCS_PATHS) else CONTENT_SECURITY_POLICY
    return [(b"content-security-policy", policy.encode()), *SECURITY_HEADERS]


class RequestContext:
    """Pure ASGI middleware: request id (``X-Request-ID``), body size limit, per-route metrics."""

    def __init__(self, app, metrics: Metrics, max_body: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if REQUEST_ID.match(incoming) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500}
        extra = [(b"x-request-id", rid.encode()), *security_headers(scope.get("path", ""))]

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                present = {name.lower() for name, _ in message["headers"]}
                message["headers"] = list(message["headers"]) + [h for h in extra if h[0] not in present]
            await send(message)

        try:
            length = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > self.max_body:
            response = JSONResponse(error_body(413, "payload_too_large", f"request body larger than {self.max_body} bytes", rid),
                                    status_code=413)
            await response(scope, receive, send_with_id)
            self._record(scope, status["code"], started)
            return
        received = {"bytes": 0}

        async def limited_receive():
            message = await receive()
            if message["type"] == "http.request":
                received["bytes"] += len(message.get("body", b""))
                if received["bytes"] > self.max_body:
                    raise PayloadTooLargeError(self.max_body)
            return message

        try:
            await self.app(scope, limited_receive, send_with_id)
        finally:
            self._record(scope, status["code"], started)

    def _record(self, scope, status: int, started: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope.get("method", "")
        seconds = time.perf_counter() - started
        self.metrics.requests.labels(template, method, str(status)).inc()
        self.metrics.latency.labels(template, method).observe(seconds)
        if access.isEnabledFor(logging.INFO):
            state = scope.get("state") or {}
            actor = state.get("actor")
            # One JSON line per request: who (key prefix and role, never the key), what, outcome.
            access.info(json.dumps({"request_id": state.get("request_id"), "method": method, "route": template,
                                    "path": scope.get("path"), "status": status, "ms": round(seconds * 1000, 2),
                                    "key": actor.prefix if actor else None, "role": actor.role if actor else None}))


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (built from ``MATCHER_*`` / ``DATABASE_URL`` when None, as in
    uvicorn workers started with ``--factory``)."""
    settings = settings or Settings()
    if settings.service_torch_threads:
        # Each worker encodes one short query at a time: one intra-op thread per worker. PyTorch's
        # default (a thread per core) makes concurrent workers' threads wait on each other (~10x
        # slower per query under load on 2 cores).
        import torch

        torch.set_num_threads(settings.service_torch_threads)
    if settings.service_db_auto_upgrade:
        upgrade(settings.db_url)
    store = Store(settings.db_url)
    store.check_schema()
    for engine in {store.engine, store.write_engine}:
        errors.watch_database(engine)  # reconnect once a read-only or unreachable database is back
    metrics = Metrics()

    def load(version: str | None):
        catalog = load_catalog(settings, version)
        # OpenVINO: compiled once, then cheaper per search; MATCHER_EMBEDDING_BACKEND=torch turns it off.
        catalog.query_backend = "torch" if settings.embedding_backend == "torch" else settings.service_query_backend
        previous = holder.current
        if previous is not None:
            catalog.adopt_encoder(previous.catalog)  # same model: a new version reuses it
        return catalog

    state_box: dict = {}

    def on_swap(loaded) -> None:
        created = loaded.created_at
        metrics.set_artifact(loaded.version, loaded.catalog.ranker_name, created.timestamp() if created else None)
        metrics.reloads.inc()

    holder = ArtifactHolder(settings.artifacts_dir, load, exclusions=lambda: state_box["state"].all_exclusions(),
                            poll_s=settings.service_reload_poll_s, explain_top=settings.service_warm_explain_top,
                            warm_gaps=settings.service_warm_gaps, max_lists=settings.service_cache_lists,
                            on_swap=on_swap)
    writer = ServedLogWriter(store, flush_s=settings.service_log_flush_s)
    state = ServiceState(settings=settings, store=store, holder=holder, writer=writer, metrics=metrics,
                         keys=KeyCache(store, settings.service_auth_cache_s))
    state_box["state"] = state

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        writer.start()
        holder.start()
        # Accept connections once the version is loaded (so no worker of several answers 503
        # while its siblings serve); with nothing published, start at once and say 503 on /ready.
        if holder.published() is not None:
            await asyncio.to_thread(holder.first_check.wait, settings.service_startup_wait_s)
        log.info("service started: database %s, artifacts %s", describe(settings.db_url), settings.artifacts_dir)
        try:
            yield
        finally:
            holder.stop()
            writer.stop()
            store.dispose()

    app = FastAPI(
        title="Chain Matcher",
        version="1",
        description="Prospects that fill a district's industrial-chain gaps, ranked and explained; shortlists, reviews "
                    "and outcomes. Every /v1 route needs `Authorization: Bearer <key>` (keys from `matcher keys create`). "
                    "Every error has the shape of `ErrorResponse`.",
        lifespan=lifespan,
    )
    app.state.svc = state
    app.state.keys = state.keys
    app.state.quotas = Quotas(settings.service_rate_limit, settings.service_rate_limit_storage)
    errors.install(app)
    app.add_middleware(RequestContext, metrics=metrics, max_body=settings.service_max_body_bytes)
    app.include_router(router)

    @app.get("/health", response_model=api.HealthResponse, tags=["operations"], summary="The process is up")
    def health():
        return {"status": "ok"}

    def database_problem() -> str | None:
        """Why the database does not answer now (no host, no path), or None when it does."""
        try:
            with store.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.SQLAlchemyError as exc:
            if not errors.database_unavailable(exc):
                raise
            log.warning("ready: database %s unavailable: %s", describe(settings.db_url), str(exc).splitlines()[0])
            return f"database unavailable ({type(getattr(exc, 'orig', None) or exc).__name__}); requests that need it answer 503"
        return None

    @app.get("/ready", response_model=api.ReadyResponse, tags=["operations"],
             summary="Artifacts loaded (which version) and the database answering",
             responses={503: {"model": api.ReadyResponse, "description": "no version loaded yet, or the database is unavailable"}})
    def ready():
        loaded = holder.current
        problem = database_problem()
        database = "unavailable" if problem else "ok"
        if loaded is None or problem:
            body = api.ReadyResponse(ready=False, database=database,
                                     message=problem or holder.last_error or "loading the current artifact version")
            if loaded is not None:
                body = body.model_copy(update={"version": loaded.version, "ranker": loaded.catalog.ranker_name,
                                               "loaded_at": loaded.loaded_at})
            return JSONResponse(body.model_dump(mode="json"), status_code=503,
                                headers={"Retry-After": str(errors.RETRY_AFTER_S)})
        return api.ReadyResponse(ready=True, database=database, version=loaded.version, ranker=loaded.catalog.ranker_name,
                                 loaded_at=loaded.loaded_at, message=holder.last_error or "")

    # Metrics tell request rates, routes and versions: an admin key unless the port is private.
    metrics_access = [] if settings.service_metrics_public else [Depends(need("admin"))]

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics (an admin key unless MATCHER_SERVICE_METRICS_PUBLIC)",
             response_class=Response, dependencies=metrics_access,
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text format"}})
    def prometheus():
        loaded = holder.current
        cache = {"hits": loaded.hits, "misses": loaded.misses, "entries": loaded.cached_lists} if loaded else {}
        return Response(metrics.render(writer.pending, writer.dropped, cache), media_type=CONTENT_TYPE_LATEST)

    if not (STATIC_DIR / "index.html").exists():
        STATIC_DIR.mkdir(exist_ok=True)
        (STATIC_DIR / "index.html").write_text(PLACEHOLDER)

    @app.api_route("/ui", methods=["GET", "HEAD"], include_in_schema=False)
    def ui():
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    return app
