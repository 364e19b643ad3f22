"""Deploy targets: where a region's node runs and how a release reaches it.

- `LocalTarget` (default): one `nettrace node` process per region on loopback, started, loaded
  (`POST /release` with the node token) and stopped here. Processes run in their own session, so a
  deploy job's run may end while its nodes keep trading; `stop_all` ends them (the demo, tests).
  Their pid and port are in `NETTRACE_HOME/nodes/<region>.json`, so another process (the rollback
  command) can find them.
- `FlyTarget`: one `flyctl deploy` per region (app `<NETTRACE_FLY_APP>-<region>`), the release id
  passed to the machine's environment; `FLY_API_TOKEN` reaches flyctl through its environment only.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from typing import Protocol

import httpx

from nettrace_dagster.deploy import REGIONS
from nettrace_dagster.settings import Settings

START_TIMEOUT_S = 30.0


class TargetError(RuntimeError):
    """A region could not be deployed to (the message never carries a secret)."""


class Target(Protocol):
    name: str

    def endpoint(self, region: str) -> tuple[str, str]:
        """(host name, base URL) of the region's node."""
        ...

    def deploy(self, region: str, release_id: str) -> None: ...

    def rollback(self, region: str, release_id: str | None) -> None:
        """Put `release_id` back on the region (None: it ran nothing before: stop it)."""
        ...

    def stop_all(self) -> None: ...


def node_token(settings: Settings) -> str:
    """NETTRACE_NODE_TOKEN, else one token per home (file mode 0600), made on first use."""
    if settings.nettrace_node_token:
        return settings.nettrace_node_token
    path = settings.home / "nodes" / ".token"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


class LocalTarget:
    name = "local"

    def __init__(self, settings: Settings, ports: dict[str, int] | None = None,
                 env_overrides: dict[str, dict[str, str]] | None = None, http_timeout_s: float | None = None) -> None:
        self.settings = settings
        base = int(settings.nettrace_deploy_base_port)
        self.ports = ports or {r: base + i for i, r in enumerate(REGIONS)}
        self.env_overrides = env_overrides or {}
        self.http_timeout_s = http_timeout_s or float(settings.nettrace_deploy_http_timeout_s)
        self.dir = settings.home / "nodes"
        self._procs: dict[str, subprocess.Popen] = {}

    def endpoint(self, region: str) -> tuple[str, str]:
        return "localhost", f"http://127.0.0.1:{self.ports[region]}"

    # --- processes ----------------------------------------------------------------------------
    def _record(self, region: str) -> dict | None:
        try:
            return json.loads((self.dir / f"{region}.json").read_text())
        except (OSError, ValueError):
            return None

    def pid(self, region: str) -> int | None:
        rec = self._record(region)
        return int(rec["pid"]) if rec and _alive(int(rec["pid"])) else None

    def running(self) -> dict[str, int]:
        return {r: pid for r in REGIONS if (pid := self.pid(r)) is not None}

    def _healthy(self, region: str) -> bool:
        """Our node answers on the region's port. Its pid must be the one we started: a port is
        picked free and then bound by the node, and in between another process's node (another
        home, another test) can take it; talking to that one would deploy to a stranger."""
        try:
            resp = httpx.get(self.endpoint(region)[1] + "/health", timeout=self.http_timeout_s)
        except httpx.HTTPError:
            return False
        if resp.status_code not in (200, 503):
            return False
        try:
            pid = resp.json().get("pid")
        except ValueError:
            return False
        return pid is not None and pid == self.pid(region)

    def start(self, region: str) -> None:
        if self.pid(region) is not None and self._healthy(region):
            return
        self.kill(region)
        self.dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "NETTRACE_HOME": str(self.settings.home), "NETTRACE_NODE_TOKEN": node_token(self.settings),
               **self.env_overrides.get(region, {})}
        cmd = [sys.executable, "-c", "import sys; from nettrace_dagster.cli import main; sys.exit(main())",
               "node", "--region", region, "--port", str(self.ports[region])]
        with open(self.dir / f"{region}.log", "ab") as log:
            proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        self._procs[region] = proc
        (self.dir / f"{region}.json").write_text(json.dumps({"pid": proc.pid, "port": self.ports[region],
                                                             "started_at": time.time()}))
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise TargetError(f"{region}: node exited with code {proc.returncode} at start "
                                  f"(see {self.dir / (region + '.log')})")
            if self._healthy(region):
                return
            time.sleep(0.1)
        raise TargetError(f"{region}: node did not answer within {START_TIMEOUT_S:.0f}s of starting")

    def load(self, region: str, release_id: str) -> None:
        try:
            resp = httpx.post(self.endpoint(region)[1] + "/release", json={"release": release_id},
                              headers={"Authorization": f"Bearer {node_token(self.settings)}"},
                              timeout=min(max(5 * self.http_timeout_s, 2.0), 30.0))
        except httpx.HTTPError as exc:
            raise TargetError(f"{region}: loading {release_id} failed ({type(exc).__name__})") from None
        if resp.status_code != 200:
            raise TargetError(f"{region}: loading {release_id} refused ({resp.status_code}: {resp.text[:200]})")

    def deploy(self, region: str, release_id: str) -> None:
        self.start(region)
        self.load(region, release_id)

    def rollback(self, region: str, release_id: str | None) -> None:
        if release_id is None:
            self.stop(region)
            return
        if self.pid(region) is not None and self._healthy(region):
            try:
                self.load(region, release_id)
                return
            except TargetError:
                pass  # it answers, but will not load: a fresh process on the old release
        # dead or hung: a fresh process on the old release
        self.kill(region)
        self.start(region)
        self.load(region, release_id)

    def kill(self, region: str, sig: int = signal.SIGKILL) -> None:
        pid = self.pid(region)
        if pid is not None:
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                pass
            if sig == signal.SIGKILL:
                self._wait(region, pid, 5.0)
        proc = self._procs.pop(region, None) if sig == signal.SIGKILL else None
        if proc is not None:
            proc.poll()

    def stop(self, region: str, grace_s: float = 5.0) -> None:
        pid = self.pid(region)
        if pid is None:
            return
        try:
            os.killpg(pid, signal.SIGCONT)  # a stopped (SIGSTOP) node cannot act on SIGTERM otherwise
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not self._wait(region, pid, grace_s):
            self.kill(region)
        self._procs.pop(region, None)

    def _wait(self, region: str, pid: int, timeout_s: float) -> bool:
        proc = self._procs.get(region)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            if not _alive(pid):
                return True
            time.sleep(0.05)
        return False

    def prepare(self, regions: tuple[str, ...]) -> None:
        """Boot every region's node process now, idle (no release: it trades nothing), in parallel,
        so the stages only load releases. A boot that fails here is retried by the region's deploy."""
        from concurrent.futures import ThreadPoolExecutor

        def boot(region: str) -> None:
            try:
                self.start(region)
            except TargetError:
                pass

        with ThreadPoolExecutor(max_workers=len(regions)) as pool:
            list(pool.map(boot, regions))

    def stop_idle(self, running_release: dict[str, str | None]) -> None:
        """Stop the nodes of regions that run no release (booted by `prepare` for a deploy that
        never reached them)."""
        for region, release in running_release.items():
            if release is None:
                self.stop(region)

    def stop_all(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(REGIONS)) as pool:
            list(pool.map(self.stop, REGIONS))


class FlyTarget:
    name = "fly"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.flyctl = settings.flyctl_path
        if not settings.fly_api_token:
            raise TargetError("the fly deploy target needs FLY_API_TOKEN")

    def app(self, region: str) -> str:
        return f"{self.settings.nettrace_fly_app}-{region}"

    def endpoint(self, region: str) -> tuple[str, str]:
        host = f"{self.app(region)}.fly.dev"
        return host, f"https://{host}"

    def _run(self, region: str, args: list[str]) -> None:
        env = {**os.environ, "FLY_API_TOKEN": self.settings.fly_api_token}
        try:
            proc = subprocess.run([self.flyctl, *args], env=env, capture_output=True, text=True, timeout=1800)
        except FileNotFoundError:
            raise TargetError(f"{region}: flyctl not found at {self.flyctl!r} (FLYCTL_PATH)") from None
        except subprocess.TimeoutExpired:
            raise TargetError(f"{region}: flyctl did not finish within 30 minutes") from None
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            msg = tail[0].replace(self.settings.fly_api_token, "<secret>")[:200]
            raise TargetError(f"{region}: flyctl exited {proc.returncode}: {msg}")

    def deploy(self, region: str, release_id: str) -> None:
        self._run(region, ["deploy", "--app", self.app(region), "--regions", region,
                           "--image", self.settings.nettrace_fly_image, "--env", f"NETTRACE_RELEASE={release_id}",
                           "--env", f"NETTRACE_REGION={region}", "--strategy", "immediate", "--yes"])

    def rollback(self, region: str, release_id: str | None) -> None:
        if release_id is None:
            self._run(region, ["scale", "count", "0", "--app", self.app(region), "--yes"])
        else:
            self.deploy(region, release_id)

    def stop_all(self) -> None:
        """Fly machines are long-lived by design: nothing to stop from here."""


def make_target(settings: Settings, **kwargs: object) -> Target:
    if settings.nettrace_deploy_target == "fly":
        return FlyTarget(settings)
    return LocalTarget(settings, **kwargs)  # type: ignore[arg-type]
