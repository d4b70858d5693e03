"""Entry points behind ``train.py`` and ``test.py`` (``key=value`` arguments, like ``yolo``)."""
