# The NetTrace code location image: one image for the user-code deployment (gRPC code server), the
# run workers the K8sRunLauncher starts from it, and `nettrace worker` Celery workers.
#   docker build -t nettrace:0.1.0 .
# Settings come from the environment (README "Settings"); secrets from Kubernetes secrets, never baked in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    NETTRACE_HOME=/data/nettrace \
    DAGSTER_HOME=/data/nettrace/dagster

WORKDIR /opt/nettrace
COPY pyproject.toml README.md workspace.yaml ./
COPY nettrace_dagster ./nettrace_dagster
COPY assets ./assets
COPY jobs ./jobs
COPY sensors ./sensors
# dagster-k8s for the chart's K8sRunLauncher; the scale extra for PostgreSQL storage and Celery.
RUN pip install '.[scale]' 'dagster-k8s==0.29.27' \
    && useradd --create-home --uid 10001 nettrace \
    && mkdir -p /data/nettrace && chown -R nettrace /data

USER nettrace
EXPOSE 3030
# The chart overrides this with `dagster api grpc ...` (dagsterApiGrpcArgs); standalone it serves
# the code location for a webserver elsewhere.
CMD ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", "3030", "-m", "nettrace_dagster.definitions"]
