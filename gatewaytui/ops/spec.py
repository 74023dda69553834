"""Typed action specs: the one validator of an operator action's arguments, and its JSON Schema.

An action's spec lists its fields (JSON type, required, nullable, bounds, choices), the rules that tie
fields together and the checks against the gateway it runs on (``Bounds``: the models it serves, the
operator's configured limits). ``Spec.parse`` is the only place an action's arguments are checked: the admin and tenant
HTTP APIs, the console (in process or attached) and the CLI all hand it the arguments as a dict, and the
OpenAPI request bodies are generated from ``Spec.schema`` instead of being written a second time.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..model import GatewayError

if TYPE_CHECKING:
    from ..catalog import Catalog

T = TypeVar("T")
Kind = Literal["string", "integer", "number", "boolean", "strings", "object"]

_PY: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "strings": (list,),
    "object": (dict,),
}


def bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError("invalid_request", message, param=param)


@dataclass(frozen=True, slots=True)
class Field:
    """One argument: its JSON kind and the bounds every caller is held to."""

    name: str
    kind: Kind
    required: bool = False
    nullable: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    max_items: int | None = None
    url: bool = False  # a string that must be an http(s) URL
    printable: bool = False  # a string without control characters
    doc: str = ""

    def check(self, action: str, value: Any) -> Any:
        try:
            return self._check(action, value)
        except GatewayError as err:
            err.param = self.name
            raise

    def _check(self, action: str, value: Any) -> Any:
        where = f"{action}: argument {self.name!r}"
        if value is None:
            if not self.nullable:
                raise bad(f"{where} must not be null")
            return None
        types = _PY[self.kind]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            expected = " or ".join(t.__name__ for t in types)
            raise bad(f"{where} must be {expected}, not {type(value).__name__}")
        return self._bounds(where, value)

    def _bounds(self, where: str, value: Any) -> Any:
        if self.kind == "strings":
            if not all(isinstance(v, str) and v.strip() for v in value):
                raise bad(f"{where} must be a list of strings")
            if self.max_items is not None and len(value) > self.max_items:
                raise bad(f"{where} may hold at most {self.max_items} names")
        if self.choices and value not in self.choices:
            raise bad(f"{where} must be one of {', '.join(self.choices)}, not {str(value)[:100]!r}")
        if self.minimum is not None and value < self.minimum:
            raise bad(f"{where} must be at least {_num(self.minimum)}")
        if self.maximum is not None and value > self.maximum:
            raise bad(f"{where} must be at most {_num(self.maximum)}")
        if isinstance(value, str) and self.max_length is not None and len(value) > self.max_length:
            raise bad(f"{where} must be at most {self.max_length} characters")
        if self.printable and not value.isprintable():
            raise bad(f"{where} must be printable text")
        if self.url and not value.startswith(("http://", "https://")):
            raise bad(f"{where}: base_url must start with http:// or https://")
        return value

    def schema(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.kind == "strings":
            out = {"type": "array", "items": {"type": "string", "minLength": 1}}
            if self.max_items is not None:
                out["maxItems"] = self.max_items
        else:
            out = {"type": self.kind}
        if self.choices:
            out["enum"] = list(self.choices)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.url:
            out["pattern"] = "^https?://"
        if self.nullable:
            out["nullable"] = True
        if self.doc:
            out["description"] = self.doc
        return out


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


Rule = Callable[[dict[str, Any]], None]


@dataclass(frozen=True, slots=True)
class Bounds:
    """What arguments are checked against beyond their own shape: the gateway's models (``None``: not
    known here, so not checked) and the operator's configured ceilings."""

    catalog: Catalog | None = None
    max_credit_micro: int = 10_000 * 1_000_000  # [billing] max_credit_usd's default

    @classmethod
    def of(cls, cfg: Any, catalog: Catalog | None) -> Bounds:
        """The bounds of a gateway with this configuration and catalog (the runtime's, or the CLI's)."""
        return cls(catalog=catalog, max_credit_micro=cfg.billing.max_credit_micro)


Check = Callable[[dict[str, Any], Bounds], None]


@dataclass(frozen=True, slots=True)
class Spec:
    """An action's arguments. ``rules`` check what single fields cannot (e.g. one field needs another)."""

    name: str
    fields: tuple[Field, ...]
    rules: tuple[Rule, ...] = ()
    doc: str = ""
    checks: tuple[Check, ...] = ()  # rules that need the gateway's ``Bounds``

    @property
    def names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields)

    def parse(
        self, args: Any, *, extra: Literal["forbid", "ignore"] = "forbid", bounds: Bounds | None = None
    ) -> dict[str, Any]:
        """The checked arguments (only those given); raises ``GatewayError`` (400 or 404) on bad input.

        ``bounds``: the gateway's models and limits (default: no model check, the default ceilings)."""
        if not isinstance(args, dict):
            raise bad(f"{self.name}: the body must be a JSON object of arguments")
        known = {f.name for f in self.fields}
        if extra == "forbid":
            unknown = sorted(k for k in args if k not in known)
            if unknown:
                raise bad(
                    f"{self.name}: unknown argument {unknown[0]!r}; known: {', '.join(sorted(known))}",
                    unknown[0],
                )
        out: dict[str, Any] = {}
        for f in self.fields:
            if f.name not in args:
                if f.required:
                    raise bad(f"{self.name}: argument {f.name!r} is required")
                continue
            out[f.name] = f.check(self.name, args[f.name])
        for rule in self.rules:
            rule(out)
        for check in self.checks:
            check(out, bounds or Bounds())
        return out

    def schema(
        self, *, strict: bool = True, omit: tuple[str, ...] = (), **more: dict[str, Any]
    ) -> dict[str, Any]:
        """The JSON Schema (OpenAPI 3.0 dialect) of the arguments: the request body an HTTP adapter documents.

        ``omit`` leaves out fields the adapter takes from the path; ``more`` adds adapter-only fields.
        """
        fields = [f for f in self.fields if f.name not in omit]
        properties = {f.name: f.schema() for f in fields}
        properties.update(more)
        out: dict[str, Any] = {"type": "object", "properties": properties}
        required = [f.name for f in fields if f.required]
        if required:
            out["required"] = required
        if strict:
            out["additionalProperties"] = False
        if self.doc:
            out["description"] = self.doc
        return out


def string(name: str, **kw: Any) -> Field:
    return Field(name, "string", **kw)


def integer(name: str, **kw: Any) -> Field:
    return Field(name, "integer", **kw)


UNSET: Any = object()  # "leave this field as it is" (distinct from None, which clears it)


def validated(spec: Spec) -> Callable[[Callable[..., Awaitable[T]]], Callable[..., Awaitable[T]]]:
    """Make ``spec.parse`` the gate of an action: every call, from any front end, is checked by it.

    The action is called with its arguments as keywords (positional ones are bound by name first);
    ``UNSET`` values are left out, as if not given.
    """

    def wrap(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
        params = list(inspect.signature(fn).parameters)[1:]

        @functools.wraps(fn)
        async def action(rt: Any, /, *args: Any, **kwargs: Any) -> T:
            if len(args) > len(params):
                raise bad(f"{spec.name}: too many arguments")
            given = {**dict(zip(params, args, strict=False)), **kwargs}
            given = {k: v for k, v in given.items() if v is not UNSET}
            checked = spec.parse(given, bounds=Bounds.of(rt.cfg, rt.catalog))
            return await fn(rt, **checked)

        return action

    return wrap
