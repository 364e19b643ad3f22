"""Failed Dagster runs are P1 alerts (Slack, Discord fallback, always audited)."""

import dagster as dg


@dg.run_failure_sensor(name="alert_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                       monitor_all_code_locations=False,
                       description="Sends a P1 alert for every failed run (never blocks anything).")
def alert_on_run_failure(context: dg.RunFailureSensorContext) -> None:
    from nettrace_dagster.notify import alert

    run = context.dagster_run
    message = (context.failure_event.message or "")[:500] if context.failure_event else ""
    alert("P1", f"Dagster run failed: {run.job_name}", f"run {run.run_id}: {message}")
