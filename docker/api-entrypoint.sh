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

# The JSON request log replaces uvicorn's access log. X-Forwarded-For is honoured by the app, from
# RAKUTEN_API_TRUSTED_PROXIES only: uvicorn's own handling (which trusts 127.0.0.1) is off.
exec uvicorn rakuten_mm.serving.main:app --host "${API_HOST:-0.0.0.0}" --port "${API_PORT:-8000}" \
    --workers "${API_WORKERS:-1}" --no-access-log --no-proxy-headers "$@"
