"""The manual review decision, launchable from the Dagster UI: the review id is the run config."""

import dagster as dg

from nettrace_dagster.settings import load_settings
from nettrace_dagster.validation.review import decide


class ReviewDecision(dg.Config):
    """Which review, approve or reject, who decides and why (audited)."""

    review_id: int
    decision: str = "approve"
    reason: str = ""
    reviewer: str = "dagster-ui"


@dg.op(description="Approve or reject one pending strategy review (see `nettrace review`).")
def decide_review(context: dg.OpExecutionContext, config: ReviewDecision) -> dict:
    review = decide(load_settings(), config.review_id, config.decision,
                    by=f"{config.reviewer} (dagster run {context.run_id[:8]})", reason=config.reason)
    context.log.info(f"review #{review['id']} ({review['name']}): {review['status']} by {review['decided_by']}")
    context.add_output_metadata({"review_id": review["id"], "strategy": review["name"], "status": review["status"],
                                 "decided_by": review["decided_by"], "reason": review["reason"]})
    return review


@dg.job(description="Approve (or reject) a strategy waiting for manual review. Run config: "
                    "ops: {decide_review: {config: {review_id: 1, decision: approve, reason: '...'}}}")
def review_approval() -> None:
    decide_review()
