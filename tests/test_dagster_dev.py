"""`dagster dev -w workspace.yaml` serves the code location with no load errors (real webserver)."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
QUERY = """{ workspaceOrError { ... on Workspace { locationEntries { name
  locationOrLoadError { __typename ... on PythonError { message } } } } }
  assetNodes { assetKey { path } } }"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow(seconds=8)
def test_ui_loads_the_asset_graph(home: Path) -> None:
    port = free_port()
    dagster = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(home / "dagster")}
    (home / "dagster").mkdir(parents=True)
    (home / "dagster" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    # A new session, so SIGINT reaches dagster dev and its children (FACTS.md).
    proc = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline, data = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}, timeout=5)
                data = r.json()["data"]
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"] and data["assetNodes"]:
                    break
            except (httpx.HTTPError, KeyError, TypeError, ValueError):
                pass  # not serving yet, or the location is still loading: poll again
            time.sleep(1)
        assert data is not None, "dagster dev did not answer within 90 s"
        location = data["workspaceOrError"]["locationEntries"][0]
        assert location["name"] == "nettrace"
        assert location["locationOrLoadError"]["__typename"] == "RepositoryLocation", location
        keys = {"/".join(n["assetKey"]["path"]) for n in data["assetNodes"]}
        assert {"candles", "regimes", "market_summary"} <= keys
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
