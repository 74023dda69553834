"""One module per screen, each with a same-named ``.tcss`` file whose rules nest under the screen's type."""
