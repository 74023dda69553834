"""gatewaytui: a self-hosted LLM API gateway with an operator console in the terminal."""

__version__ = "0.1.0"
