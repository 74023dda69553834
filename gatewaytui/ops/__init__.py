"""The operator domain: what an operator can do to a running gateway, checked once, whoever asks.

    spec.py      typed action specs: fields, bounds, rules; ``Spec.parse`` is an action's one validator,
                 ``Spec.schema`` its OpenAPI request body
    tenants.py   tenants, keys, credit, tiers, caps (+ the database work the CLI shares)
    accounts.py  upstream accounts: add, change, enable, prefer, reset, remove; status, quota, usage views
    routing.py   strategy, default and haiku models, aliases, presets
    keys.py      a tenant minting its own key: the bounds its current key sets
    snapshot.py  what a console frame shows; one request in full
    actions.py   the registry of console actions by name, and ``run_action``

The CLI, the console (in process or attached) and the admin and tenant HTTP APIs all call these; the
HTTP layer (``gatewaytui.server``) only reads bodies and writes responses. Nothing here imports
``gatewaytui.server``, Quart or the console, and the specs load without the runtime (the CLI starts fast).
"""
