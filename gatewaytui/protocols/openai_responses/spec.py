"""What names the OpenAI Responses wire (``POST /v1/responses``)."""

from ..base import CARRIER

NAME = "openai_responses"
STREAM_CONTENT_TYPE = "text/event-stream"
FAMILY = "openai"  # who can verify a plain encrypted_content blob
STATELESS = "this gateway is stateless: send the full conversation in input"

__all__ = ["CARRIER", "FAMILY", "NAME", "STATELESS", "STREAM_CONTENT_TYPE"]
