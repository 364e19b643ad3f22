"""The deploy sensor: each release put in force (by the promotion pipeline at FULL, or `nettrace
release create`) starts the `deploy` job once. The run key is the release id, so one release is
never deployed twice, whatever the cursor; only the newest release in force is deployed (an older
one put in force in the same interval is superseded)."""

import dagster as dg

from jobs.deploy import deploy
from nettrace_dagster.ledger.db import ledger_of
from nettrace_dagster.settings import load_settings


def deploy_requests(cursor: int, settings=None) -> tuple[int, list[dg.RunRequest]]:  # noqa: ANN001
    """(new cursor, run requests) for releases put in force after row `cursor`."""
    from nettrace_dagster.deploy.release import releases_in_force

    rows = releases_in_force(ledger_of(settings or load_settings()), cursor)
    if not rows:
        return cursor, []
    last_id, release = rows[-1]
    return last_id, [dg.RunRequest(run_key=release, tags={"nettrace/release": release},
                                   run_config={"ops": {"deployments": {"config": {"release": release}}}})]


@dg.sensor(job=deploy, default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30,
           description="Starts the deploy job for each new release put in force (run key = release id).")
def deploy_on_release_in_force(context: dg.SensorEvaluationContext) -> dg.SensorResult | dg.SkipReason:
    cursor = int(context.cursor) if context.cursor else 0
    new_cursor, requests = deploy_requests(cursor)
    if not requests:
        return dg.SkipReason("no new release in force")
    return dg.SensorResult(run_requests=requests, cursor=str(new_cursor))
