"""Command-line entry points (run with python -m espnet_p4q.bin.<name>)."""
