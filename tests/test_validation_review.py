"""Manual review (queue, CLI, the Dagster approval job, audit) and the `validated_strategies`
asset over a stand-in `generated_strategies` (the discovery assets are another module's)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from assets.validation import validated_strategies
from jobs.review import review_approval
from nettrace_dagster.audit import read_audit
from nettrace_dagster.cli import main
from nettrace_dagster.resources import build_resources
from nettrace_dagster.settings import Settings
from nettrace_dagster.validation.demo import demo_counts
from nettrace_dagster.validation.review import list_reviews

HOSTILE = Path(__file__).parent / "hostile"
# Passes all six layers with one warning (scores not from the evidence families): manual review.
OWN_SCORES = '''"""Scores its own entries from the size of the last move."""
import numpy as np

from nettrace_dagster.strategies import Signals, Strategy


class OwnScores(Strategy):
    """Long on a large move; its own confidence."""

    name = "own_scores"
    default_params = {"every": 50}
    param_space = {"every": ("int", 10, 100)}
    trigger_family = "momentum"

    def signals(self, candles, params):
        n = len(candles)
        entries = np.zeros(n, dtype=bool)
        entries[::int(params["every"])] = True
        moves = np.abs(np.diff(np.log(candles["close"].to_numpy()), prepend=0.0))
        confidence = np.clip(moves * 100, 0, 1)
        confirmations = (confidence > 0.5).astype(np.int64) * 2
        return Signals(entries, np.roll(entries, 5), confidence, confirmations)
'''


def _item(path: Path, opportunity: str) -> dict[str, Any]:
    return {"name": path.stem, "path": str(path), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
            "opportunity_id": opportunity, "mode": "template", "source": "test"}


@pytest.fixture
def files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Path]:
    good = tmp_path / "good_cross.py"
    assert main(["strategy", "new", "--template", "crossover", "--out", str(good)]) == 0
    review = tmp_path / "own_scores.py"
    review.write_text(OWN_SCORES)
    capsys.readouterr()
    return {"good": good, "review": review, "hostile": HOSTILE / "getattr_hidden.py"}


def test_review_queue_cli_and_audit(settings: Settings, files: dict[str, Path],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["review"]), "--review", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "in_review" and out["review_id"] == 1
    assert main(["validate", str(files["review"]), "--review", "--json"]) == 0  # same content: same row
    assert json.loads(capsys.readouterr().out)["review_id"] == 1
    assert main(["review", "--json"]) == 0
    pending = json.loads(capsys.readouterr().out)["reviews"]
    assert [r["id"] for r in pending] == [1] and pending[0]["warnings"]
    assert main(["review", "reject", "1"]) == 2  # a rejection needs a reason
    assert "needs a reason" in capsys.readouterr().err
    assert main(["review", "approve", "7"]) == 2
    assert "no review #7" in capsys.readouterr().err
    assert main(["review", "approve", "1", "--by", "alice", "--reason", "scores checked by hand", "--json"]) == 0
    decided = json.loads(capsys.readouterr().out)
    assert decided["status"] == "approved" and decided["decided_by"] == "alice" and decided["decided_at"]
    assert main(["review", "reject", "1", "--reason", "changed my mind"]) == 2  # a decision is final
    assert "already approved by alice" in capsys.readouterr().err
    events = [(r["event"], r["by"]) for r in read_audit(settings.audit_dir, "strategy_reviews")]
    assert events == [("queued", "validation"), ("approved", "alice")]
    assert list_reviews(settings, "pending") == [] and len(list_reviews(settings, "approved")) == 1


def test_approving_a_changed_file_is_refused(settings: Settings, files: dict[str, Path],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(files["review"]), "--review"]) == 0
    files["review"].write_text(OWN_SCORES.replace("* 100", "* 1000"))
    assert main(["review", "approve", "1"]) == 2
    assert "changed since it was validated" in capsys.readouterr().err
    assert list_reviews(settings)[0]["status"] == "pending"


def test_the_asset_sorts_strategies_and_the_ui_job_approves(settings: Settings, files: dict[str, Path]) -> None:
    items = [_item(files["good"], "opp-1"), _item(files["review"], "opp-2"), _item(files["hostile"], "opp-3"),
             {**_item(files["good"], "opp-4"), "sha256": "0" * 64}]

    @dg.asset(name="generated_strategies")
    def stand_in() -> list:
        """Stand-in for the discovery assets' output."""
        return items

    instance = dg.DagsterInstance.ephemeral()
    resources = build_resources(settings)
    resources["io_manager"] = resources["json_io_manager"]  # the stand-in's list is JSON too
    result = dg.materialize([stand_in, validated_strategies], resources=resources, instance=instance)
    assert result.success
    records = result.output_for_node("validated_strategies")
    assert [r["status"] for r in records] == ["validated", "in_review", "rejected", "rejected"]
    assert records[0]["opportunity_id"] == "opp-1" and records[0]["name"] == "good_cross"
    assert len(records[0]["layers"]) == 6 and all(layer["passed"] for layer in records[0]["layers"])
    assert records[2]["reasons"][0].startswith("security: ") and "getattr" in records[2]["reasons"][0]
    assert "sha256 differs" in records[3]["reasons"][0]
    review_id = records[1]["review"]["id"]
    assert demo_counts(settings, instance) == {"validated": 1, "rejected": 2, "in_review": 1}
    metadata = instance.get_latest_materialization_event(dg.AssetKey("validated_strategies")) \
        .asset_materialization.metadata
    assert "getattr" in metadata["table"].value and "getattr_hidden" in str(metadata["rejected_reasons"].value)

    # The approval job, as launched from the UI with the review id as run config.
    job = dg.Definitions(jobs=[review_approval]).get_job_def("review_approval")
    run = job.execute_in_process(instance=instance, run_config={"ops": {"decide_review": {"config": {
        "review_id": review_id, "decision": "approve", "reason": "looked fine", "reviewer": "bob"}}}})
    assert run.success
    assert list_reviews(settings, "approved")[0]["decided_by"].startswith("bob (dagster run ")
    again = dg.materialize([stand_in, validated_strategies], resources=resources, instance=instance)
    assert [r["status"] for r in again.output_for_node("validated_strategies")][:2] == ["validated", "validated"]
    assert demo_counts(settings, instance) == {"validated": 2, "rejected": 2, "in_review": 0}


def test_demo_counts_before_any_materialization(settings: Settings) -> None:
    assert demo_counts(settings, dg.DagsterInstance.ephemeral()) == {"validated": 0, "rejected": 0, "in_review": 0}


def test_nothing_generated_yet_validates_nothing(settings: Settings) -> None:
    """Before the discovery assets ever ran, the asset reads its input as [] (the demo stays green)."""
    never_run = dg.AssetSpec("generated_strategies", metadata={"dagster/io_manager_key": "json_io_manager"})
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([never_run, validated_strategies], instance=instance,
                            resources=build_resources(settings), selection=[validated_strategies])
    assert result.success and result.output_for_node("validated_strategies") == []
    assert demo_counts(settings, instance) == {"validated": 0, "rejected": 0, "in_review": 0}
    assert json.loads((settings.lake_dir / "validated_strategies.json").read_text()) == []
