#!/bin/sh
# Start the prediction API: uvicorn on $API_HOST:$API_PORT (default 0.0.0.0:8000) with $API_WORKERS
# worker processes.
# Extra arguments go to uvicorn (e.g. --log-level debug). exec: uvicorn gets SIGTERM directly.
set -eu

# prometheus_client's multiprocess mode keeps one file per worker process: files left by a previous
# run would be added to the new counts, so the folder is emptied (not removed) before the start.
if [ -n "${PROMETHEUS_MULTIPROC_DIR:-}" ]; then
    mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
    find "$PROMETHEUS_MULTIPROC_DIR" -mindepth 1 -delete
fi

# The JSON request log replaces uvicorn's access log.
exec uvicorn rakuten_mm.serving.main:app --host "${API_HOST:-0.0.0.0}" --port "${API_PORT:-8000}" \
    --workers "${API_WORKERS:-1}" --no-access-log "$@"
