"""Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document."""

from __future__ import annotations

from aiohttp import web

from settlerd import __version__

from .context import METRICS, READINESS, REPLICA, SETTINGS, STORE
from .metrics import CONTENT_TYPE
from .openapi import openapi_document


async def health(request: web.Request) -> web.Response:
    """Liveness: the event loop answers. Readiness of nodes and store is `/v1/ready`'s job."""
    return web.json_response(
        {"status": "ok", "node_id": request.app[SETTINGS].node_id, "version": __version__}
    )


async def ready(request: web.Request) -> web.Response:
    results = await request.app[READINESS].run()
    is_ready = all(result.ok for result in results)
    checks = {result.name: {"ok": result.ok, "error": result.error} for result in results}
    body = {"ready": is_ready, "checks": checks}
    if REPLICA in request.app:
        body["replica"] = request.app[REPLICA].status()
    return web.json_response(body, status=200 if is_ready else 503)


async def metrics(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    body = await request.app[METRICS].render(request.app[STORE], mqtt_enabled=settings.mqtt.enabled)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document())
