"""The operator domain's action specs: one validator per action, its schema, and the registry's wiring."""

from __future__ import annotations

import inspect

import pytest

from gatewaytui.model import GatewayError
from gatewaytui.ops import accounts, routing, tenants
from gatewaytui.ops.actions import ACTIONS
from gatewaytui.ops.keys import TENANT_KEY
from gatewaytui.ops.spec import Field, Spec


def test_every_actions_spec_names_exactly_its_functions_arguments() -> None:
    for name, action in ACTIONS.items():
        params = inspect.signature(inspect.unwrap(action.fn)).parameters
        named = {p for p, v in params.items() if v.kind is not v.VAR_KEYWORD} - {"rt"}
        fields = action.spec.names
        if any(v.kind is v.VAR_KEYWORD for v in params.values()):
            assert named <= fields, name
        else:
            assert named == fields, name
        required = {p for p, v in params.items() if v.default is v.empty and p in named}
        assert required <= {f.name for f in action.spec.fields if f.required}, name


@pytest.mark.parametrize(
    ("spec", "args", "says"),
    [
        (tenants.CREDIT, {"tenant": "a"}, "'amount_micro' is required"),
        (tenants.CREDIT, {"tenant": "a", "amount_micro": True}, "must be int, not bool"),
        (tenants.CREDIT, {"tenant": "a", "amount_micro": -1}, "positive"),
        (tenants.CREDIT, {"tenant": "a", "amount_micro": -1, "kind": "gift"}, "one of topup"),
        (tenants.MINT_KEY, {"tenant": " "}, "tenant name"),
        (tenants.MINT_KEY, {"tenant": "a", "models": ["x", ""]}, "list of strings"),
        (accounts.ADD_ACCOUNT, {"provider": "anthropic"}, "api_key"),
        (accounts.ADD_ACCOUNT, {"provider": "openai-compatible", "api_key": "k"}, "base_url"),
        (accounts.ADD_ACCOUNT, {"provider": "nope", "api_key": "k"}, "one of anthropic"),
        (accounts.UPDATE_ACCOUNT, {"ref": "a", "weight": 0}, "at least 1"),
        (accounts.UPDATE_ACCOUNT, {"ref": "a", "base_url": "ftp://x"}, "http:// or https://"),
        (routing.SET_ALIAS, {"alias": " ", "target": None}, "must not be empty"),
        (TENANT_KEY, {"label": "a\nb"}, "printable"),
        (TENANT_KEY, {"expires_at": 1, "expires_in_days": 1}, "not both"),
        (tenants.CREATE_TENANT, ["x"], "JSON object"),
        (tenants.CREATE_TENANT, {"name": "x", "rt": 1}, "unknown argument 'rt'"),
    ],
)
def test_the_spec_refuses_bad_arguments(spec: Spec, args: object, says: str) -> None:
    with pytest.raises(GatewayError) as info:
        spec.parse(args)
    assert info.value.kind == "invalid_request" and info.value.status == 400
    assert says in info.value.message, info.value.message


def test_the_spec_keeps_what_it_was_given_and_nothing_else() -> None:
    assert tenants.MINT_KEY.parse({"tenant": "a", "rpm": None}) == {"tenant": "a", "rpm": None}
    assert accounts.ADD_ACCOUNT.parse({"provider": "openai", "api_key": "k"}) == {
        "provider": "openai",
        "api_key": "k",
    }


def test_the_schema_is_the_specs() -> None:
    schema = accounts.UPDATE_ACCOUNT.schema(omit=("ref",))
    assert schema["additionalProperties"] is False and "ref" not in schema["properties"]
    assert schema["properties"]["weight"] == {"type": "integer", "minimum": 1}
    assert schema["properties"]["rpm"]["nullable"] is True
    assert schema["properties"]["base_url"]["pattern"] == "^https?://"
    add = accounts.ADD_ACCOUNT.schema(strict=False, oauth={"type": "boolean"})
    assert add["required"] == ["provider"] and "additionalProperties" not in add
    assert add["properties"]["provider"]["enum"][0] == "anthropic" and "oauth" in add["properties"]
    assert Field("m", "strings", max_items=3).schema() == {
        "type": "array",
        "items": {"type": "string", "minLength": 1},
        "maxItems": 3,
    }
