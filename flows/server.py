"""One Prefect server for many flow processes, and child processes that end with their parent.

Every DVC stage runs its flow in a new process. Without ``PREFECT_API_URL`` each such process
starts Prefect's ephemeral API server and runs its database migrations (~8 s here, 17 s on the
first start), five times per ``dvc repro``. :func:`shared_server` starts one
``prefect server start`` on loopback for a whole block and points ``PREFECT_API_URL`` at it, so
the stage processes only connect; runs still land in the same database (``PREFECT_HOME``) and
show in the UI. When ``PREFECT_API_URL`` is already set (a team server), that one is used.

Nothing started here outlives what started it: the server and ``dvc`` are asked by the kernel
to stop when their parent dies, even by SIGKILL (Linux's parent-death signal,
:func:`die_with_parent`), and :func:`run_interruptible` passes Ctrl-C and SIGTERM on to the
child's whole process group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Iterator

from augment.runtime import die_with_parent


def run_interruptible(cmd: list[str], *, grace: float = 5.0, **popen) -> int:
    """Run ``cmd`` in a process group of its own, dying with this process; return its exit
    status. SIGINT or SIGTERM received here is passed to the whole group as SIGINT (the stage's
    flow ends as a crashed run, DVC reports the failed stage); whatever still runs ``grace``
    seconds later is killed. The status is then 128 + the signal, as a shell reports it."""
    proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=die_with_parent, **popen)
    received: list[int] = []

    def forward(signum, _frame):
        received.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGINT)

    handlers = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    deadline = None
    try:
        while (code := proc.poll()) is None:
            if received and deadline is None:
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):  # anything the group left behind
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        for s, handler in handlers.items():
            signal.signal(s, handler)
    return 128 + received[0] if received else code


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, *, timeout: float) -> None:
    """SIGTERM the process group led by ``proc`` (started with a new session); SIGKILL it if
    ``proc`` has not exited after ``timeout`` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll ``<url>/health`` until it answers; fail with the server's log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
                if response.status == 200:
                    return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:]
    raise RuntimeError(f"Prefect server at {url} did not become healthy within {timeout:.0f} s "
                       f"(exit status {proc.poll()}); its log:\n{tail}")


@contextlib.contextmanager
def shared_server(*, port: int | None = None, timeout: float = 90) -> Iterator[str]:
    """Run the block with ``PREFECT_API_URL`` pointing at a server (started here if none is set).

    The server is a child process in its own session, stopped (terminate, then kill) on exit.
    """
    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    url = f"http://127.0.0.1:{port or free_port()}/api"
    log = Path(tempfile.mkstemp(prefix="prefect-server-", suffix=".log")[1])
    prefect = Path(sys.executable).with_name("prefect")
    cmd = [str(prefect), "server", "start", "--host", "127.0.0.1",
           "--port", url.rsplit(":", 1)[1].split("/")[0]]
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=die_with_parent)
    try:
        wait_healthy(url, proc, timeout, log)
        os.environ["PREFECT_API_URL"] = url
        yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        stop_group(proc, timeout=15)  # the server and anything it started
        log.unlink(missing_ok=True)
