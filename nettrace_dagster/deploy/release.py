"""Releases: an immutable bundle of strategy code hashes, a parameter set and the rules version,
with an id derived from that content, stored in the ledger.

A built-in strategy's code hash is the sha256 of its class source; a file strategy's is the
sha256 of the file. The rules version is the hash of the effective `Rules` (with any tightening
from the environment). Same content → same id, so creating a release twice is harmless and the
deploy sensor (run key = release id) never deploys one twice.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nettrace_dagster.deploy import DeployError
from nettrace_dagster.ledger.db import Ledger, ledger_of
from nettrace_dagster.ledger.deploy_tables import Release, ReleaseInForce
from nettrace_dagster.settings import Settings, load_settings


@dataclass(frozen=True)
class ReleaseInfo:
    release_id: str
    content: dict[str, Any]
    created_at: float
    source: str
    new: bool = False  # created by this call (False: the same content existed already)

    @property
    def strategies(self) -> dict[str, dict[str, Any]]:
        return self.content["strategies"]

    @property
    def params(self) -> dict[str, Any]:
        return self.content["params"]

    def as_dict(self) -> dict[str, Any]:
        return {"release": self.release_id, "created_at": self.created_at, "source": self.source,
                "new": self.new, **self.content}


def sha256_text(text: str | bytes) -> str:
    return hashlib.sha256(text.encode() if isinstance(text, str) else text).hexdigest()


def builtin_code_hash(name: str) -> str:
    """sha256 of a built-in strategy's class source: it changes exactly when its code does."""
    from nettrace_dagster.strategies.registry import STRATEGIES

    return sha256_text(inspect.getsource(STRATEGIES[name]))


def file_code_hash(path: Path | str) -> str:
    return sha256_text(Path(path).read_bytes())


def rules_version(settings: Settings) -> tuple[str, dict[str, Any]]:
    from nettrace_dagster.rules import load_rules

    rules = asdict(load_rules(settings))
    return sha256_text(canonical(rules))[:16], rules


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def normalise_params(params: dict[str, Any] | None) -> dict[str, Any]:
    """A ParamSet `{"portfolio": {...}, "strategies": {name: {...}}}`; None: the parameters in force."""
    if params is None:
        from nettrace_dagster.strategies.registry import params_in_force

        return {"portfolio": {}, "strategies": params_in_force()}
    if not isinstance(params, dict) or not isinstance(params.get("strategies"), dict) or not params["strategies"]:
        raise DeployError("a release's parameter set needs a non-empty 'strategies' object {name: {...}}")
    portfolio = params.get("portfolio") or {}
    if not isinstance(portfolio, dict):
        raise DeployError("a release's 'portfolio' parameters must be an object")
    return {"portfolio": dict(portfolio), "strategies": {str(k): dict(v) for k, v in params["strategies"].items()}}


def release_content(params: dict[str, Any] | None = None, strategy_files: dict[str, str | Path] | None = None,
                    settings: Settings | None = None) -> dict[str, Any]:
    from nettrace_dagster.strategies.registry import STRATEGIES

    settings = settings or load_settings()
    paramset = normalise_params(params)
    files = {k: Path(v).resolve() for k, v in (strategy_files or {}).items()}
    strategies: dict[str, dict[str, Any]] = {}
    for name in sorted(paramset["strategies"]):
        if name in files:
            if not files[name].is_file():
                raise DeployError(f"strategy {name!r}: no file {files[name]}")
            strategies[name] = {"kind": "file", "path": str(files[name]), "code_sha256": file_code_hash(files[name])}
        elif name in STRATEGIES:
            strategies[name] = {"kind": "builtin", "code_sha256": builtin_code_hash(name)}
        else:
            raise DeployError(f"strategy {name!r} is neither built-in ({', '.join(sorted(STRATEGIES))}) "
                              "nor given as a file")
    version, rules = rules_version(settings)
    return {"params": paramset, "strategies": strategies, "rules_version": version, "rules": rules}


def release_id_of(content: dict[str, Any]) -> str:
    return "r-" + sha256_text(canonical(content))[:16]


def create_release(params: dict[str, Any] | None = None, strategy_files: dict[str, str | Path] | None = None,
                   source: str = "cli", put_in_force: bool = True, settings: Settings | None = None,
                   ledger: Ledger | None = None) -> ReleaseInfo:
    """Make (or find) the release of `params` (default: the parameters in force) and, with
    `put_in_force`, record it as the release in force — the deploy sensor then rolls it out.
    The promotion pipeline calls this at FULL with the promoted ParamSet."""
    settings = settings or load_settings()
    ledger = ledger or ledger_of(settings)
    if params is None:  # the parameters in force: the ledger's FULL set (defaults before any)
        from nettrace_dagster.paramsets.in_force import current

        now_in_force = current(ledger)
        params = now_in_force.param_set
        strategy_files = {name: f["path"] for name, f in now_in_force.strategy_files.items()}
    content = release_content(params, strategy_files, settings)
    rid = release_id_of(content)
    now = time.time()
    with ledger.tx() as s:
        row = s.scalars(select(Release).where(Release.release_id == rid)).first()
        new = row is None
        if new:
            row = Release(release_id=rid, content=canonical(content), source=source[:128], created_at=now)
            s.add(row)
        if put_in_force:
            s.add(ReleaseInForce(release_id=rid, by=source[:128], at=now))
        info = ReleaseInfo(rid, json.loads(row.content), row.created_at, row.source, new)
    if new:
        from nettrace_dagster.audit import append_audit

        append_audit(settings.audit_dir, "deploy_history", {"event": "release_created", "release": rid,
                                                           "stage": "release", "region": None, "status": "created",
                                                           "source": source, "rules_version": content["rules_version"],
                                                           "strategies": sorted(content["strategies"])})
    return info


def get_release(ledger: Ledger, release_id: str) -> ReleaseInfo:
    with ledger.read() as s:
        row = s.scalars(select(Release).where(Release.release_id == release_id)).first()
        if row is None:
            raise DeployError(f"no release {release_id!r} in the ledger (see `nettrace deploy status`)")
        return ReleaseInfo(row.release_id, json.loads(row.content), row.created_at, row.source)


def releases_in_force(ledger: Ledger, after_id: int = 0) -> list[tuple[int, str]]:
    """(row id, release id) of releases put in force after row `after_id`, oldest first."""
    with ledger.read() as s:
        return [(r.id, r.release_id) for r in s.scalars(
            select(ReleaseInForce).where(ReleaseInForce.id > after_id).order_by(ReleaseInForce.id))]


def list_releases(ledger: Ledger, limit: int = 50) -> list[dict[str, Any]]:
    with ledger.read() as s:
        return [{"release": r.release_id, "created_at": r.created_at, "source": r.source}
                for r in s.scalars(select(Release).order_by(Release.seq.desc()).limit(limit))]
