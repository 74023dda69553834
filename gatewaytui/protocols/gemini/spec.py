"""What names the Gemini generateContent wire, and the markers the gateway puts on it."""

NAME = "gemini"
STREAM_CONTENT_TYPE = "text/event-stream"
ARRAY_CONTENT_TYPE = "application/json"  # :streamGenerateContent without ?alt=sse

SKIP_SIGNATURE = "skip_thought_signature_validator"  # Gemini's sentinel for calls it never signed
MINTED_ID_PREFIX = (
    "call_gem_"  # ids the gateway made up for id-less upstream calls; not shown to Gemini clients
)
