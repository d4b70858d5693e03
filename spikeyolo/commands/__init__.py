"""The command layer: every mode of ``spikeyolo MODE key=value ...`` (and ``train.py`` / ``test.py``).

Nothing below this floor imports it.
"""
