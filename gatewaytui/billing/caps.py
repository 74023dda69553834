"""Per-call spending caps: a tenant may refuse any single request whose worst case exceeds a limit.

A cap is set per model (``model_caps``, by configured model name) or for every model
(``per_call_cap_micro``); the per-model cap wins. Caps apply to pay-per-token requests, before a hold.
"""

from __future__ import annotations

from ..config import ModelConfig
from ..model import GatewayError
from .plans import Plans
from .pricing import format_usd


class Caps:
    def __init__(self, plans: Plans) -> None:
        self.plans = plans

    def cap_for(self, tenant_id: int, model: ModelConfig) -> int | None:
        plan = self.plans.get(tenant_id)
        if plan is None:
            return None
        cap = plan.model_caps.get(model.name)
        return cap if cap is not None else plan.per_call_cap_micro

    def check(self, tenant_id: int, model: ModelConfig, worst: int) -> None:
        cap = self.cap_for(tenant_id, model)
        if cap is not None and worst > cap:
            raise GatewayError(
                "invalid_request",
                f"this request may cost up to {format_usd(worst)} on {model.name}, above this tenant's per-call cap of "
                f"{format_usd(cap)}; set a lower max_tokens (without one, a request is priced at the model's "
                f"output ceiling of {model.max_tokens:,} tokens) or shorten the prompt",
                code="per_call_cap_exceeded",
            )
