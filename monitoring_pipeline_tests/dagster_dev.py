"""`dagster dev` for the tests that need the real webserver: started on a free loopback port,
waited for until it serves the code location, and stopped on every path."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["data"]


@contextmanager
def dagster_dev(args: list[str], cwd: Path, env: dict, log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """Start `dagster dev <args>`, wait until it lists assets, yield (port, process); then SIGTERM
    its process group (SIGKILL, and fail, if it does not stop within 60 s)."""
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    with log.open("w") as out:  # a file, not a pipe: nobody reads a pipe until the end, and a full one blocks
        # SIGINT back to its default: a shell's background job ignores it, the children inherit that,
        # and dagster dev then never stops on SIGTERM (it shuts its services down by interrupt).
        proc = subprocess.Popen(
            [str(dagster), "dev", *args, "-h", "127.0.0.1", "-p", str(port)],
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if graphql(port, "{ assetNodes { id } }")["assetNodes"]:
                    break
            except OSError:
                pass
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "dagster dev did not serve the code location in time"
            time.sleep(0.25)
        yield port, proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
