"""A local node's port is picked free and bound a moment later: if another process's node got
there first, the target must not take that stranger for its own node (it would deploy to it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from nettrace_dagster.deploy.demo import free_ports
from nettrace_dagster.deploy.targets import LocalTarget, TargetError
from nettrace_dagster.settings import load_settings


def test_a_strangers_node_on_the_port_is_not_taken_for_ours(home: Path, tmp_path: Path) -> None:
    [port] = free_ports(1)
    assert 20_000 <= port < 32_000
    # the stranger: a node of another home, with no token, already listening on the port
    env = {**os.environ, "NETTRACE_HOME": str(tmp_path / "other"), "NETTRACE_NODE_TOKEN": ""}
    stranger = subprocess.Popen([sys.executable, "-c", "import sys; from nettrace_dagster.cli import main; "
                                 "sys.exit(main())", "node", "--region", "nrt", "--port", str(port)],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and stranger.poll() is None, "the stranger node did not start"
            time.sleep(0.2)
        target = LocalTarget(load_settings(), ports={"nrt": port})
        with pytest.raises(TargetError, match="nrt: node exited"):
            target.start("nrt")  # ours cannot bind; the stranger answering is not ours
        assert stranger.poll() is None  # untouched
    finally:
        stranger.kill()
        stranger.wait()
