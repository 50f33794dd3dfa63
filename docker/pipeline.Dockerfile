# syntax=docker/dockerfile:1
# The pipeline runner: DVC and every stage (requirements.txt), the repository's pipeline files, and
# docker/pipeline-entrypoint.sh, which pulls or trains the models and publishes them to /srv/bundle
# for the API. Build from the repository root:
#   docker build -f docker/pipeline.Dockerfile -t rakuten-mm-pipeline:local .
# The image has no .git: DVC runs with core.no_scm (`dvc repro`, `dvc pull`, `dvc push` work;
# `dvc exp` needs a git clone: the sweep worker makes one, see docs/deployment.md).
#
# Base image pinned by tag and digest, as in docker/api.Dockerfile (which says how to check it).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
COPY requirements.txt requirements-serve.txt requirements-encoder.txt /tmp/requirements/
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir -r /tmp/requirements/requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps -r /tmp/requirements/requirements-encoder.txt

FROM ${PYTHON_IMAGE} AS runtime
ARG APP_UID=10001
# git for the sweep worker (python -m rakuten_mm.tracking.sweep_worker, k8s/sweep/): it clones the
# repository and pushes its experiment's ref. Pinned to Debian bookworm's version, like the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends git=1:2.39.5-0+deb12u3 \
    && rm -rf /var/lib/apt/lists/*
# /app: the DVC workspace (written by the stages); /app/.dvc/cache: a volume in docker-compose.yml;
# /srv/bundle: where the models are published for the API; /srv/state: the API's logs (drift input).
RUN groupadd --system --gid "${APP_UID}" app \
    && useradd --system --uid "${APP_UID}" --gid app --home-dir /home/app --create-home --shell /usr/sbin/nologin app \
    && install -d -o app -g app /app /app/.dvc /app/.dvc/cache /srv/bundle /srv/state
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Everything `dvc repro` reads (stage code, params, dvc.yaml/dvc.lock, the remote's config) and the
# git-tracked metrics and plots (cache: false outs), so an unchanged pipeline is not rerun.
COPY --chown=app:app rakuten_mm/ ./rakuten_mm/
COPY --chown=app:app stages/ ./stages/
COPY --chown=app:app scripts/ ./scripts/
COPY --chown=app:app sweeps/ ./sweeps/
# Reviewers' corrections folders (.dvc files here, their data from the remote): a dep of the import stage.
COPY --chown=app:app corrections/ ./corrections/
COPY --chown=app:app metrics/ ./metrics/
COPY --chown=app:app plots/ ./plots/
COPY --chown=app:app .dvc/config ./.dvc/config
# The offline HTML template .dvc/config names for `dvc plots show` (Vega inlined, no CDN).
COPY --chown=app:app plots_html/ ./plots_html/
COPY --chown=app:app dvc.yaml dvc.lock params.yaml .dvcignore pyproject.toml ./
COPY --chmod=0755 docker/pipeline-entrypoint.sh docker/s3_bucket.py /opt/docker/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DVC_NO_ANALYTICS=1 \
    MODELS_BUNDLE_DIR=/srv/bundle
USER ${APP_UID}:${APP_UID}
# No git in the image: DVC must not look for a repository.
RUN dvc config --local core.no_scm true \
    && dvc config --local core.analytics false
ENTRYPOINT ["/opt/docker/pipeline-entrypoint.sh"]
CMD ["auto"]
