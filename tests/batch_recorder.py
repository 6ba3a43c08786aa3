"""
Run a training script with every training batch recorded: `python batch_recorder.py LOG_PREFIX SCRIPT [ARGS...]`.

The distributed tests launch their scripts in fresh processes, where a pytest monkeypatch cannot reach; this wrapper
patches `LMIndexerDataCollator.__call__` there, so that a test can check the order its sampler promised. Each process
appends one JSON line per batch to `LOG_PREFIX.rank<RANK>.jsonl`: the ID level, the epoch, and the document indices
and token counts in batch order.
"""

import json
import os
import runpy
import sys

from modeling_lmindexer.data.collator import LMIndexerDataCollator


def main() -> None:
    log_prefix, script, *script_args = sys.argv[1:]
    log_path = f"{log_prefix}.rank{os.environ.get('RANK', '0')}.jsonl"
    collate = LMIndexerDataCollator.__call__

    def recording_call(collator: LMIndexerDataCollator, features: list[dict]) -> dict:
        record = {
            "level": collator.level,
            "epoch": collator.epoch,
            "doc_indices": [int(feature["doc_index"]) for feature in features],
            "lengths": [int(feature["length"]) for feature in features],
        }
        with open(log_path, "a", encoding="utf-8") as log_file:
            log_file.write(json.dumps(record) + "\n")
        return collate(collator, features)

    LMIndexerDataCollator.__call__ = recording_call
    sys.argv = [script, *script_args]
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
