"""Warm stage processes: fork each stage's flow from a process that has already imported
Prefect, torch and augment.

A shared server removes Prefect's per-process server start-up, but every stage process still
pays ``import prefect`` (~2 s here) on top of ``import torch``. Under :func:`stage_launcher`
(what ``python -m flows repro`` uses), a launcher process imports all of that once and listens on
a Unix socket named by ``AUGMENT_LAUNCHER``. The stage command in ``dvc.yaml``,
``python -m flows <stage>``, then imports nothing heavy: it sends its argv, working directory and
environment with its stdin/stdout/stderr descriptors; the launcher forks, the child runs the
stage's flow (a Prefect flow run like any other) writing straight to those descriptors, and the
exit status goes back. One stage at a time, as DVC runs them; without the variable, or if the
launcher is gone, the stage runs in its own process as before.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Iterator

from flows.server import stop_group

ENV = "AUGMENT_LAUNCHER"


def delegate(argv: list[str]) -> int | None:
    """Run ``python -m flows <argv>`` in the launcher; None when there is none to reach."""
    path = os.environ.get(ENV)
    if not path:
        return None
    with socket.socket(socket.AF_UNIX) as conn:
        try:
            conn.connect(path)
        except OSError:
            return None
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)})
        socket.send_fds(conn, [request.encode() + b"\n"], [0, 1, 2])
        conn.shutdown(socket.SHUT_WR)
        reply = b"".join(iter(lambda: conn.recv(64), b""))
    return int(reply or 1)


def _child(request: dict, fds: list[int]) -> int:
    """In the forked child: adopt the caller's descriptors, directory and env; run the CLI."""
    from flows.__main__ import run_cli

    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    os.environ.pop(ENV, None)
    sys.argv = ["python -m flows", *request["argv"]]
    try:
        return run_cli(request["argv"])
    except SystemExit as done:  # argparse --help / usage errors
        return done.code if isinstance(done.code, int) else 1


def _serve_one(conn: socket.socket) -> None:
    data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 3)
    while not data.endswith(b"\n"):
        data += conn.recv(1 << 16)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = _child(json.loads(data), fds)
        except BaseException:  # a crash: print its traceback, as a plain process would
            traceback.print_exc()
        finally:
            atexit._run_exitfuncs()  # Prefect flushes its API log queue at exit
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    for fd in fds:
        os.close(fd)
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    with contextlib.suppress(OSError):  # the caller may have gone (interrupted DVC)
        conn.sendall(str(status if status >= 0 else 128 - status).encode())


def serve(path: str) -> None:
    """Import the stage code once, then fork one child per request, one at a time."""
    import flows.__main__  # noqa: F401 - the CLI
    import flows.evaluate  # noqa: F401 - every stage flow and what it imports
    import flows.stages  # noqa: F401

    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path + ".tmp")
        server.listen()
        os.replace(path + ".tmp", path)  # appears only once ready to accept
        while True:
            conn, _ = server.accept()
            with conn:
                _serve_one(conn)


@contextlib.contextmanager
def stage_launcher(timeout: float = 120) -> Iterator[str]:
    """Run a launcher for the block and export ``AUGMENT_LAUNCHER`` to child processes."""
    folder = tempfile.mkdtemp(prefix="augment-launcher-")
    path = str(Path(folder) / "socket")
    proc = subprocess.Popen([sys.executable, "-m", "flows.launcher", path],
                            start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not os.path.exists(path):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"stage launcher did not start (exit status {proc.poll()})")
            time.sleep(0.1)
        os.environ[ENV] = path
        yield path
    finally:
        os.environ.pop(ENV, None)
        stop_group(proc, timeout=10)  # the launcher and any stage it forked
        with contextlib.suppress(OSError):
            os.remove(path)
            os.rmdir(folder)


if __name__ == "__main__":
    serve(sys.argv[1])
