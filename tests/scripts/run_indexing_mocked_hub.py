"""Run `examples/run_indexing.py` with the Hub client mocked: every Hub call is recorded, none leaves the machine.

Usage: `python run_indexing_mocked_hub.py CALLS_JSON [run_indexing.py arguments...]`. `HfApi.create_repo`,
`create_commit` and `upload_folder` (what `Trainer` and `PushToHubMixin` call, through `transformers.utils.hub.hf_api`)
record their repository, token, the files they would send (`upload_folder` applies its ignore patterns, as the
real client does) and the model card, and `CALLS_JSON` gets the list of calls at exit.
"""

import atexit
import hashlib
import json
import runpy
import sys
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

from huggingface_hub import HfApi
from huggingface_hub.hf_api import DEFAULT_IGNORE_PATTERNS
from huggingface_hub.utils import filter_repo_objects


SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "run_indexing.py"
CALLS: list[dict] = []


def read_bytes(content) -> bytes:
    """An operation's content: a path, bytes or a file object."""
    if isinstance(content, (str, Path)):
        return Path(content).read_bytes()
    if hasattr(content, "read"):
        content.seek(0)
        return content.read()
    return content


def sha256_of(content) -> str:
    return hashlib.sha256(read_bytes(content)).hexdigest()


def create_repo(self, repo_id, token=None, **kwargs):
    CALLS.append({"call": "create_repo", "repo_id": repo_id, "token": token})
    return SimpleNamespace(repo_id=repo_id, url=f"https://huggingface.co/{repo_id}")


def create_commit(self, repo_id, operations, token=None, **kwargs):
    files = {
        operation.path_in_repo: sha256_of(operation.path_or_fileobj)
        for operation in operations
        if hasattr(operation, "path_or_fileobj")
    }
    cards = [read_bytes(op.path_or_fileobj).decode() for op in operations if op.path_in_repo == "README.md"]
    CALLS.append(
        {"call": "create_commit", "repo_id": repo_id, "token": token, "files": files, "card": (cards or [None])[0]}
    )
    return f"https://huggingface.co/{repo_id}/commit/{len(CALLS)}"


def upload_folder(
    self, repo_id, folder_path, token=None, run_as_future=False, path_in_repo=None, ignore_patterns=None, **kwargs
):
    folder = Path(folder_path)
    ignore_patterns = [ignore_patterns] if isinstance(ignore_patterns, str) else list(ignore_patterns or [])
    relative_paths = [str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()]
    kept = filter_repo_objects(relative_paths, ignore_patterns=ignore_patterns + DEFAULT_IGNORE_PATTERNS)
    files = {relative_path: sha256_of(folder / relative_path) for relative_path in kept}
    card = (folder / "README.md").read_text() if "README.md" in files else None
    CALLS.append(
        {
            "call": "upload_folder",
            "repo_id": repo_id,
            "token": token,
            "files": files,
            "path_in_repo": path_in_repo,
            "card": card,
        }
    )
    url = f"https://huggingface.co/{repo_id}/commit/{len(CALLS)}"
    if not run_as_future:
        return url
    future = Future()
    future.set_result(url)
    return future


def write_calls(path: str) -> None:
    Path(path).write_text(json.dumps(CALLS))


if __name__ == "__main__":
    calls_path, *arguments = sys.argv[1:]
    HfApi.create_repo, HfApi.create_commit, HfApi.upload_folder = create_repo, create_commit, upload_folder
    atexit.register(write_calls, calls_path)
    sys.argv = [str(SCRIPT), *arguments]
    sys.path[0] = str(SCRIPT.parent)  # as when the script itself is run
    runpy.run_path(str(SCRIPT), run_name="__main__")
