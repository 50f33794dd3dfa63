# syntax=docker/dockerfile:1
# The prediction API (rakuten_mm/serving): uvicorn on port 8000, non-root, read-only friendly.
# It carries the package and requirements-serve.txt only (no DVC, no training stages); the models
# come from a volume at /srv/bundle, which the pipeline image fills (`dvc pull` or `dvc repro`,
# see docs/deployment.md). Build from the repository root:
#   docker build -f docker/api.Dockerfile -t rakuten-mm-api:local .
#
# Base image: an exact release tag plus the digest of its multi-platform index. Docker Hub was not
# reachable where this was written, so the digest is the one public projects cite for this tag,
# not one read here: check it with `docker buildx imagetools inspect python:3.11.14-slim-bookworm`.
# Docker pulls by the digest and ignores the tag, which is there for people. Another base:
#   --build-arg PYTHON_IMAGE=python:3.11.<patch>-slim-bookworm@sha256:<digest>
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
# Wheels only: every pinned package has a manylinux wheel, so the builder needs no compiler.
COPY requirements-serve.txt requirements-encoder.txt /tmp/
# requirements-encoder.txt without dependencies: it says why (tensorflow-text vs tensorflow-cpu).
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: -r /tmp/requirements-serve.txt \
    && /opt/venv/bin/pip install --no-cache-dir --only-binary=:all: --no-deps -r /tmp/requirements-encoder.txt

FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
# /srv/bundle: the models (read-only); /srv/state: users, logs, rollout state (writable).
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app /srv/bundle /srv/state
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
COPY rakuten_mm/ ./rakuten_mm/
COPY --chmod=0755 docker/api-entrypoint.sh docker/healthcheck.py /opt/docker/
# Paths inside the container; every other RAKUTEN_API_* setting keeps the package's default unless
# the environment sets it (docker-compose.yml passes them from .env, Kubernetes from a ConfigMap).
# PROMETHEUS_MULTIPROC_DIR: with several workers, /metrics adds up all of them.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    API_PORT=8000 \
    API_WORKERS=1 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc \
    RAKUTEN_API_MODELS_DIR=/srv/bundle/current/models \
    RAKUTEN_API_DVC_LOCK=/srv/bundle/current/dvc.lock \
    RAKUTEN_API_USERS_FILE=/srv/state/users.json \
    RAKUTEN_API_ROLLOUT_FILE=/srv/state/rollout.json \
    RAKUTEN_API_LOG_DIR=/srv/state/logs \
    RAKUTEN_API_PREDICTION_LOG=/srv/state/logs/predictions.jsonl \
    RAKUTEN_API_REVIEW_DATABASE=/srv/state/review/queue.sqlite \
    RAKUTEN_API_DRIFT_REPORT=/srv/state/reports/drift.json
USER ${APP_UID}:${APP_UID}
EXPOSE 8000
# Healthy once /status answers with the models loaded (loading TensorFlow takes a few seconds).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/opt/docker/healthcheck.py", "http://127.0.0.1:8000/status", "models_loaded"]
ENTRYPOINT ["/opt/docker/api-entrypoint.sh"]
