"""What names the OpenAI Chat Completions wire (``POST /v1/chat/completions``)."""

NAME = "openai_chat"
STREAM_CONTENT_TYPE = "text/event-stream"
THINKING_FAMILY = "openai"  # who can read reasoning that came over this wire
