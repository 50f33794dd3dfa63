# syntax=docker/dockerfile:1
# The docker compose stack's S3-compatible store for the DVC remote: moto's S3 server on port 9000,
# non-root. moto keeps objects in memory: a restarted container is empty (the pipeline's DVC cache
# volume keeps everything; docs/deployment.md). Build from the repository root:
#   docker build -f docker/s3.Dockerfile -t rakuten-mm-s3:local .
# Base image pinned by tag and digest, as in docker/api.Dockerfile (which says how to check it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY docker/requirements-s3.txt /tmp/requirements-s3.txt
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements-s3.txt

FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --no-create-home --shell /usr/sbin/nologin app
COPY --from=builder /opt/venv /opt/venv
COPY --chmod=0755 docker/healthcheck.py /opt/docker/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER ${APP_UID}:${APP_UID}
EXPOSE 9000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/docker/healthcheck.py", "http://127.0.0.1:9000/moto-api/"]
CMD ["moto_server", "-H", "0.0.0.0", "-p", "9000"]
