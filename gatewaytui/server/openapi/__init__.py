"""The OpenAPI 3 document for the gateway's HTTP API, served at ``GET /openapi.json``.

It describes every route the app serves: the four client protocols (request fields the gateway reads,
success bodies, and each protocol's own error envelope), discovery and health, the tenant API and Stripe
webhook, and the operator's admin and console APIs. Model names are listed from the running catalog, so
the document says which values succeed; any other name is a documented 404.

The document is assembled here from the package's modules: ``schema`` (schema shorthands),
``operations`` (operation, parameter and response builders), ``components`` (the security schemes and
shared schemas), ``client_routes`` (the client protocols, discovery and health), ``tenant_routes`` (the
tenant API and Stripe webhook) and ``operator_routes`` (the admin and console APIs).

The test suite runs schemathesis over this document against a live gateway (``tests/test_openapi.py``):
the document is a contract, not decoration.
"""

from __future__ import annotations

from typing import Any

from quart import Quart, Response

from ...codec import dumps
from ...runtime import Runtime
from .client_routes import discovery_paths, protocol_paths
from .components import SECURITY_SCHEMES, component_schemas
from .operator_routes import admin_paths, console_paths
from .schema import JSON
from .tenant_routes import tenant_paths

__all__ = ["document", "register"]


def register(app: Quart, rt: Runtime) -> None:
    @app.get("/openapi.json")
    async def openapi_document() -> Response:
        return Response(dumps(document(rt)), content_type=JSON)


def document(rt: Runtime) -> dict[str, Any]:
    models = sorted({name for name, _ in rt.catalog.names()})
    paths: dict[str, Any] = {}
    paths.update(protocol_paths(models))
    paths.update(discovery_paths())
    paths.update(tenant_paths())
    paths.update(admin_paths())
    paths.update(console_paths())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "gatewaytui",
            "version": "1",
            "description": "A self-hosted LLM API gateway: Anthropic Messages, OpenAI Chat Completions, OpenAI "
            "Responses and Gemini generateContent in front of a pool of upstream accounts, with tenant "
            "keys, prepaid credit and an operator API. Errors come back in the caller's protocol.",
        },
        "servers": [{"url": (rt.cfg.server.public_url or rt.base_url).rstrip("/")}],
        "paths": paths,
        "components": {"schemas": component_schemas(models), "securitySchemes": SECURITY_SCHEMES},
    }
