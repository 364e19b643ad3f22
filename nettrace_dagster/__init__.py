"""NetTrace: autonomous crypto trading research and execution, orchestrated by Dagster."""
