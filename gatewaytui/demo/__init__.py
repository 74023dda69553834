"""The built-in fake upstream: a scripted stand-in for the Anthropic, OpenAI and Gemini APIs.

It powers the test suite, ``gatewaytui --demo`` and the console screenshots. See ``upstream`` for the
server and its public API, and ``fake_script`` for the deterministic reply rules and test directives.
"""
