"""What names the Anthropic Messages wire (``POST /v1/messages``)."""

NAME = "anthropic"
STREAM_CONTENT_TYPE = "text/event-stream"
