# `make run` and `make test` set up everything on a fresh machine (Python 3.10+ only).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test setup clean-venv serve user

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

# The default pipeline, offline, on the synthetic sample.
run: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

test: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q

# The prediction API on the models `make run` trained (settings: .env, see .env.example).
# The JSON request log replaces uvicorn's access log.
WORKERS ?= 2
serve: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" uvicorn rakuten_mm.serving.main:app --host 127.0.0.1 --port 8000 --workers $(WORKERS) --no-access-log

# Add an API user: `make user NAME=alice` (prompts for the password).
user: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make user NAME=<user name>"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.users add "$(NAME)"

clean-venv:
	rm -rf $(VENV)

# Quality gate: fail when fusion.f1_weighted (params.yaml `gate:`) drops below its value at REV.
REV ?= main
gate: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.evaluation.gate --rev $(REV)

# A local S3 (moto, in memory) for the `storage` remote: credentials and endpoint go to the
# git-ignored .dvc/config.local only. Everything pushed is lost when the server stops.
S3_LOCAL_PORT ?= 5555
S3_LOCAL_BUCKET ?= rakuten-mm
S3_LOCAL_PID := .dvc/tmp/moto_server.pid
S3_LOCAL_URL := http://127.0.0.1:$(S3_LOCAL_PORT)
.PHONY: gate s3-local s3-local-stop
s3-local: $(STAMP)
	@mkdir -p .dvc/tmp
	@if test -f $(S3_LOCAL_PID) && kill -0 $$(cat $(S3_LOCAL_PID)) 2>/dev/null; then echo "moto already running (pid $$(cat $(S3_LOCAL_PID)))"; \
	else $(BIN)/moto_server -H 127.0.0.1 -p $(S3_LOCAL_PORT) > .dvc/tmp/moto_server.log 2>&1 & echo $$! > $(S3_LOCAL_PID); fi
	@# Retry the bucket creation until the server answers (a few seconds at most).
	@for attempt in $$(seq 50); do \
	  $(BIN)/python -c "import boto3; boto3.client('s3', endpoint_url='$(S3_LOCAL_URL)', aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1').create_bucket(Bucket='$(S3_LOCAL_BUCKET)')" 2>/dev/null && break; \
	  test $$attempt -lt 50 || { echo "moto did not answer on $(S3_LOCAL_URL): see .dvc/tmp/moto_server.log"; exit 1; }; sleep 0.2; done
	$(BIN)/dvc remote modify --local storage endpointurl $(S3_LOCAL_URL)
	$(BIN)/dvc remote modify --local storage access_key_id testing
	$(BIN)/dvc remote modify --local storage secret_access_key testing
	@echo "moto S3 on $(S3_LOCAL_URL), bucket $(S3_LOCAL_BUCKET); stop with: make s3-local-stop"

# Stops the server and removes the local endpoint (the remote is AWS again).
s3-local-stop:
	@if test -f $(S3_LOCAL_PID); then kill $$(cat $(S3_LOCAL_PID)) 2>/dev/null || true; rm -f $(S3_LOCAL_PID); echo "moto stopped"; fi
	-$(BIN)/dvc remote modify --local --unset storage endpointurl
	-$(BIN)/dvc remote modify --local --unset storage access_key_id
	-$(BIN)/dvc remote modify --local --unset storage secret_access_key
