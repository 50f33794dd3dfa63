# syntax=docker/dockerfile:1
# The MLflow tracking server and model registry on port 5000, non-root. Runs and registered models
# in SQLite and artifacts on disk, both under /mlflow (a volume); clients upload artifacts through
# the server (--serve-artifacts, the default), so they need no storage credentials.
# Build from the repository root:
#   docker build -f docker/mlflow.Dockerfile -t rakuten-mm-mlflow:local .
# MLFLOW_SERVER_ALLOWED_HOSTS must list the Host headers clients use (e.g. mlflow:5000 inside
# docker compose); the server refuses others (DNS rebinding protection).
# Base image pinned by tag and digest, as in docker/api.Dockerfile (which says how to check it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# The project's own MLflow pin: server and clients (make register) run the same version.
COPY requirements-mlflow.txt /tmp/requirements-mlflow.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-mlflow.txt

FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app /mlflow
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /opt/docker/
# Job execution (GenAI jobs: seven extra worker processes) is off: nothing here uses it.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
USER ${APP_UID}:${APP_UID}
WORKDIR /mlflow
EXPOSE 5000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/docker/healthcheck.py", "http://127.0.0.1:5000/health"]
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000", "--workers", "2", \
     "--backend-store-uri", "sqlite:////mlflow/mlflow.db", "--artifacts-destination", "/mlflow/artifacts"]
