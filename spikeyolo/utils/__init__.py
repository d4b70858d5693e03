"""Small helpers: offline environment, command-line arguments."""
