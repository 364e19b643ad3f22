"""Validate a batch of generated strategies: the domain behind the `validated_strategies` asset."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from nettrace_dagster.settings import Settings
from nettrace_dagster.validation.report import LayerResult, UnusableInput, ValidationReport
from nettrace_dagster.validation.review import review_by_hash, submit_for_review
from nettrace_dagster.validation.validate import validate_file

STATUSES = ("validated", "rejected", "in_review")


def _rejected_input(item: dict[str, Any], message: str) -> ValidationReport:
    report = ValidationReport(str(item.get("path", "")), str(item.get("sha256", "")))
    report.layers.append(LayerResult("static", False, [message]))
    return report


def _validate(item: dict[str, Any]) -> ValidationReport:
    path = Path(str(item.get("path", "")))
    try:
        declared = str(item.get("sha256") or "")
        if declared and hashlib.sha256(path.read_bytes()).hexdigest() != declared:
            return _rejected_input(item, f"{path}: its content is not the generated file's (sha256 differs)")
        return validate_file(path)
    except (UnusableInput, OSError) as exc:
        return _rejected_input(item, str(exc) if isinstance(exc, UnusableInput) else f"{path}: {exc.strerror}")


def validate_batch(settings: Settings, generated: list[dict[str, Any]], workers: int = 2) -> list[dict[str, Any]]:
    """One record per generated strategy: status validated / rejected / in_review and the layers.
    Passed-with-warnings files are queued for review; a review already decided gives its verdict
    (approved → validated, rejected → rejected with the reviewer's reason)."""
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:  # each validation is a sandbox process
        reports = list(pool.map(_validate, generated))
    out = []
    for item, report in zip(generated, reports, strict=True):
        record: dict[str, Any] = {
            "name": (report.strategy or {}).get("name") or item.get("name"), "path": str(item.get("path", "")),
            "sha256": report.sha256 or item.get("sha256"), "opportunity_id": item.get("opportunity_id"),
            "status": report.status, "layers": [layer.to_dict() for layer in report.layers],
            "strategy": report.strategy, "reasons": [],
        }
        if report.status == "rejected":
            failed = report.failed_layer
            record["reasons"] = [f"{failed.name}: {e}" for e in failed.errors] if failed else ["rejected"]
        elif report.status == "in_review":
            review = review_by_hash(settings, report.sha256) or submit_for_review(
                settings, report, name=str(record["name"]), path=record["path"],
                opportunity_id=item.get("opportunity_id"))
            record["review"] = {k: review[k] for k in ("id", "status", "decided_by", "reason")}
            record["reasons"] = report.warnings
            if review["status"] == "approved":
                record["status"] = "validated"
            elif review["status"] == "rejected":
                record["status"] = "rejected"
                record["reasons"] = [f"review #{review['id']}: rejected by {review['decided_by']}: {review['reason']}"]
        out.append(record)
    return out


def counts(records: list[dict[str, Any]]) -> dict[str, int]:
    return {status: sum(1 for r in records if r.get("status") == status) for status in STATUSES}
