"""The HTTP face of the gateway: a Quart app served by Hypercorn."""
