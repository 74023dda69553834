"""The tenant API paths (keys, usage, billing) and the Stripe webhook."""

from __future__ import annotations

from typing import Any

from .components import TENANT
from .operations import error_responses, ok_response, operation, path_param, query_param, request_body
from .schema import ANY_OBJECT, BOOL, INT, NUM, STR, arr, nullable, obj, ref


def tenant_paths() -> dict[str, Any]:
    errors = error_responses(
        "OpenAIError",
        {
            "400": "invalid request",
            "401": "missing or unknown tenant key",
            "403": "not allowed for this key",
            "404": "not found (or not this tenant's)",
            "413": "body too large",
            "431": "headers too large",
        },
    )
    stripe_errors = error_responses(
        "OpenAIError", {"502": "Stripe failed", "503": "Stripe billing is not enabled on this gateway"}
    )
    key_id = path_param("key_id")
    listing = obj({"object": STR, "data": arr(ref("TenantKey"))}, ("object", "data"))
    session = obj({"object": STR, "id": STR, "url": STR}, ("object", "id", "url"))
    return {
        "/pricing": {
            "get": operation(
                "Subscription tiers",
                tags=["tenant"],
                security=[],
                op_id="pricing",
                responses={
                    "200": ok_response(obj({"object": STR, "data": arr(ANY_OBJECT)}, ("data",))),
                    **errors,
                },
            )
        },
        "/pricing/tokens": {
            "get": operation(
                "Pay-per-token prices",
                tags=["tenant"],
                security=[],
                op_id="pricing_tokens",
                responses={
                    "200": ok_response(obj({"object": STR, "data": arr(ANY_OBJECT)}, ("data",))),
                    **errors,
                },
            )
        },
        "/tenant/keys": {
            "get": operation(
                "The tenant's keys (never a secret)",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_keys",
                responses={"200": ok_response(listing), **errors},
            ),
            "post": operation(
                "Mint a key no wider than the caller's (the secret is shown once)",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_create_key",
                body=request_body(ref("KeyRequest"), required=False),
                responses={
                    "201": ok_response(
                        obj({"key": ref("TenantKey"), "secret": STR}, ("key", "secret")), "created"
                    ),
                    **errors,
                },
            ),
        },
        "/tenant/keys/{key_id}": {
            "get": operation(
                "One of the tenant's keys",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_get_key",
                parameters=[key_id],
                responses={"200": ok_response(ref("TenantKey")), **errors},
            ),
            "delete": operation(
                "Revoke one of the tenant's keys",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_revoke_key",
                parameters=[key_id],
                responses={"200": ok_response(ref("TenantKey")), **errors},
            ),
        },
        "/tenant/usage": {
            "get": operation(
                "Usage per UTC day",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_usage",
                parameters=[query_param("from", STR, "YYYY-MM-DD"), query_param("to", STR, "YYYY-MM-DD")],
                responses={
                    "200": ok_response(
                        obj(
                            {
                                "object": STR,
                                "from": STR,
                                "to": STR,
                                "data": arr(ANY_OBJECT),
                                "total": ANY_OBJECT,
                            },
                            ("data", "total"),
                        )
                    ),
                    **errors,
                },
            )
        },
        "/v1/usage/{request_id}": {
            "get": operation(
                "One request's usage and cost (its tenant only)",
                tags=["tenant"],
                security=TENANT,
                op_id="request_usage",
                parameters=[path_param("request_id")],
                responses={"200": ok_response(obj({"id": STR, "object": STR}, ("id", "object"))), **errors},
            )
        },
        "/tenant/credits": {
            "get": operation(
                "Balance and holds in flight",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_credits",
                responses={
                    "200": ok_response(
                        obj(
                            {
                                "balance_micro": INT,
                                "held_micro": INT,
                                "available_micro": INT,
                                "holds": arr(ANY_OBJECT),
                            },
                            ("balance_micro", "held_micro", "available_micro"),
                        )
                    ),
                    **errors,
                },
            )
        },
        "/tenant/subscription": {
            "get": operation(
                "Subscription tier and quota",
                tags=["tenant"],
                security=TENANT,
                op_id="tenant_subscription",
                responses={
                    "200": ok_response(
                        obj({"object": STR, "tier": nullable(STR), "status": nullable(STR)}, ("object",))
                    ),
                    **errors,
                },
            )
        },
        "/tenant/billing/topup": {
            "post": operation(
                "A Stripe Checkout session to buy credit",
                tags=["billing"],
                security=TENANT,
                op_id="billing_topup",
                body=request_body(
                    obj({"amount_usd": {"anyOf": [NUM, STR]}}, ("amount_usd",)), required=False
                ),
                responses={"200": ok_response(session), **errors, **stripe_errors},
            )
        },
        "/tenant/billing/checkout": {
            "post": operation(
                "A Stripe Checkout session for a subscription tier",
                tags=["billing"],
                security=TENANT,
                op_id="billing_checkout",
                body=request_body(obj({"tier": STR}, ("tier",)), required=False),
                responses={"200": ok_response(session), **errors, **stripe_errors},
            )
        },
        "/tenant/billing/portal": {
            "post": operation(
                "A Stripe billing portal session",
                tags=["billing"],
                security=TENANT,
                op_id="billing_portal",
                responses={"200": ok_response(session), **errors, **stripe_errors},
            )
        },
        "/stripe/webhook": {
            "post": operation(
                "Stripe events, verified by signature",
                tags=["billing"],
                security=[],
                op_id="stripe_webhook",
                parameters=[{"name": "stripe-signature", "in": "header", "required": False, "schema": STR}],
                body=request_body(ANY_OBJECT, required=False),
                responses={
                    "200": ok_response(obj({"received": BOOL, "action": STR}, ("received", "action"))),
                    **error_responses(
                        "OpenAIError",
                        {
                            "400": "bad signature or malformed event",
                            "413": "too large",
                            "431": "headers too large",
                            "503": "webhooks are disabled (no secret configured)",
                        },
                    ),
                },
            )
        },
    }
