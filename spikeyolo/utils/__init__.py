"""Small helpers: the offline environment, directories written whole or not at all."""
