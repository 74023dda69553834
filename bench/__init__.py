"""gatewaytui's benchmark: the gateway against the fake upstream directly, a bare Quart+Hypercorn
endpoint and LiteLLM proxy, interleaved in one run. See bench/README.md; run ``python -m bench``."""
