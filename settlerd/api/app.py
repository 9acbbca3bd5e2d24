"""aiohttp application factory: routes under /v1."""

from __future__ import annotations

from aiohttp import web

from settlerd import __version__

NODE_ID: web.AppKey[str] = web.AppKey("node_id", str)


async def health(request: web.Request) -> web.Response:
    """Liveness: the event loop answers. Readiness of nodes and store is `/v1/ready`'s job."""
    return web.json_response({"status": "ok", "node_id": request.app[NODE_ID], "version": __version__})


def make_app(node_id: str) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[NODE_ID] = node_id
    app.router.add_get("/v1/health", health)
    return app
