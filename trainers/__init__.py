"""Trainers of the lmindexer models (the progressive indexer trainer lands with the trainer issue)."""
