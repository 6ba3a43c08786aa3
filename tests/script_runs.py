"""
Run an example script or an installed command the way a user does, as its own process, without paying a new
interpreter's imports each time.

A fresh `python examples/run_retrieval.py ...` spends most of a bad-input test importing torch, transformers and the
library. Here every run is a process forked from one server process that imported them once (multiprocessing's
`forkserver` start method): the run has its own argv, working folder, environment, stdout, stderr and exit status, as
a subprocess has, and starts from the state of an interpreter that has just done those imports, never from the test
process's state.
"""

import atexit
import importlib
import importlib.metadata
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch


# What every script imports before doing anything: imported once, in the server.
PRELOADED_MODULES = ["trainers.commands.index", "trainers.commands.retrieve", "trainers.commands.recommend"]

_context = multiprocessing.get_context("forkserver")
_context.set_forkserver_preload(PRELOADED_MODULES)


def run_script(
    target: str | Path,
    *arguments: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """
    Run `target` with `arguments` in `cwd` and wait for it, like `subprocess.run(..., capture_output=True, text=True)`.

    `target` is a script's path (run as `__main__`) or the name of an installed console command (its entry point is
    looked up in the installed package's metadata, so an unregistered command fails). `env` is the whole environment
    of the run (default: this process's, with `HF_HUB_OFFLINE=1`); `OMP_NUM_THREADS` in it sets torch's threads, as
    it would in a new interpreter. Raises `subprocess.TimeoutExpired` after `timeout` seconds.
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1") if env is None else dict(env)
    entry_point = None
    if not isinstance(target, Path):
        (command,) = importlib.metadata.entry_points(group="console_scripts", name=target)
        entry_point = command.value
    argv = [str(target), *arguments]
    with tempfile.TemporaryDirectory() as folder:
        stdout_path, stderr_path = Path(folder) / "stdout", Path(folder) / "stderr"
        process = _context.Process(
            target=_run_in_child, args=(argv, entry_point, str(cwd), env, str(stdout_path), str(stderr_path))
        )
        process.start()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(argv, timeout, stdout_path.read_text(), stderr_path.read_text())
        return subprocess.CompletedProcess(argv, process.exitcode, stdout_path.read_text(), stderr_path.read_text())


def _run_in_child(
    argv: list[str], entry_point: str | None, cwd: str, env: dict[str, str], stdout_path: str, stderr_path: str
) -> None:
    """
    The forked run: redirect its output, enter its folder and environment, and run the script `argv[0]` or, given
    one, the command's entry point `module:function`. An uncaught exception prints its traceback and
    `sys.exit(message)` prints the message, each with exit status 1, as the interpreter does (multiprocessing's
    process bootstrap handles both the same way).
    """
    for descriptor, path in ((1, stdout_path), (2, stderr_path)):
        file_descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(file_descriptor, descriptor)
        os.close(file_descriptor)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    if "OMP_NUM_THREADS" in env:
        torch.set_num_threads(int(env["OMP_NUM_THREADS"]))
    sys.argv = argv
    try:
        if entry_point is None:
            sys.path.insert(0, str(Path(argv[0]).parent))  # as `python script.py` does
            runpy.run_path(argv[0], run_name="__main__")
        else:
            module_name, _, function_name = entry_point.partition(":")
            getattr(importlib.import_module(module_name), function_name)()
    finally:
        # What an interpreter runs when it exits: a forked process ends in os._exit, which skips it.
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()


def forking_subprocess_run(real_run: Callable[..., subprocess.CompletedProcess]) -> Callable:
    """
    A stand-in for `subprocess.run` that starts `python SCRIPT.py ...` commands writing to a file
    (`stdout=<file>, stderr=subprocess.STDOUT`, as the benchmarks run the example scripts) with `run_script`, and
    hands every other call to `real_run`.
    """

    def run(command, *args, cwd=None, stdout=None, stderr=None, env=None, check=False, **kwargs):
        is_script = (
            not args
            and not kwargs
            and isinstance(command, list)
            and len(command) > 1
            and command[0] == sys.executable
            and str(command[1]).endswith(".py")
            and hasattr(stdout, "write")
            and stderr == subprocess.STDOUT
        )
        if not is_script:
            return real_run(command, *args, cwd=cwd, stdout=stdout, stderr=stderr, env=env, check=check, **kwargs)
        completed = run_script(Path(command[1]), *map(str, command[2:]), cwd=Path(cwd or os.getcwd()), env=env)
        stdout.write(completed.stdout + completed.stderr)
        stdout.flush()
        if check and completed.returncode != 0:
            raise subprocess.CalledProcessError(completed.returncode, command)
        return subprocess.CompletedProcess(command, completed.returncode)

    return run
