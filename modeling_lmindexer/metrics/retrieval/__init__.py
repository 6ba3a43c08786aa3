"""Holds the `evaluate` script `retrieval.py`; a package only so that wheels ship the script."""
