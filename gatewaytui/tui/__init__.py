"""The operator console (Textual). The core never imports this package; it reads a *source* (``source.py``)."""
