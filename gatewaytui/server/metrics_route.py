"""``GET /metrics``: the Prometheus exposition of this gateway's registry (``telemetry.metrics``).

Never public: it answers the admin token, or the scrape-only token named by ``[metrics] token_env``.
With neither configured it is refused (403), like the admin API; with ``[metrics] enabled = false``, 404.
A ``--workers`` worker answers with its siblings' families too (``telemetry.siblings``), so one scrape of
the shared port sees every worker.
"""

from __future__ import annotations

import hmac
import os
from typing import Any

from prometheus_client.exposition import choose_encoder
from quart import Response, request

from ..codec import dumps
from ..model import GatewayError
from ..runtime import Runtime
from ..telemetry.siblings import Gathered
from .auth import require_admin


def register(app: Any, rt: Runtime) -> None:
    @app.get("/metrics")
    async def metrics() -> Response:
        telemetry_metrics = rt.telemetry.metrics
        try:
            if telemetry_metrics is None:
                raise GatewayError(
                    "not_found", "metrics are disabled on this gateway ([metrics] enabled = false)"
                )
            authorise(rt)
        except GatewayError as err:  # the admin API's error shape
            body = dumps({"error": {"type": err.kind, "message": err.message}})
            return Response(body, status=err.status, content_type="application/json")
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        siblings = rt.telemetry.siblings
        body = encoder(
            telemetry_metrics.registry if siblings is None else Gathered(await siblings.families())
        )
        return Response(body, status=200, content_type=content_type, headers={"cache-control": "no-store"})


def authorise(rt: Runtime) -> None:
    """The scrape token (``[metrics] token_env``) or the admin token; raises 401/403 otherwise."""
    env = rt.cfg.metrics.token_env
    scrape = os.environ.get(env) if env else None
    if scrape:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8", "surrogatepass"), scrape.encode()
        ):
            return
        if not rt.cfg.server.admin_token:
            raise GatewayError("authentication", f"metrics token required (Authorization: Bearer ${env})")
    require_admin(rt)
