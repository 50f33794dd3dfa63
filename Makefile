# `make run` and `make test` set up everything on a fresh machine (Python 3.10+ only).
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run
# Airflow's own venv (make airflow-venv; see the end of this file).
AIRFLOW_VENV ?= .venv-airflow
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: run test setup clean-venv serve user

# Two steps: what the pipeline and the API need (make run, make serve), then the test, MLflow and
# encoder tools on top (make setup, make test): a newcomer's `make run` does not wait for those.
$(RUN_STAMP): requirements.txt requirements-serve.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $(RUN_STAMP)

$(STAMP): $(RUN_STAMP) requirements-dev.txt requirements-mlflow.txt requirements-encoder.txt
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -r requirements-encoder.txt
	touch $(STAMP)

setup: $(STAMP)

# The default pipeline, offline, on the synthetic sample.
run: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" dvc repro

# Test files are shared out whole between TEST_PROCESSES pytest-xdist workers (module fixtures
# such as a server or a sweep run once), in collection order: tests/conftest.py puts the files with
# slow tests first. `TEST_PROCESSES=0` runs everything in this one process.
TEST_PROCESSES ?= 2
test: $(STAMP) $(AIRFLOW_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m pytest -q -n $(TEST_PROCESSES) --dist loadfile --no-loadscope-reorder

# The prediction API on the models `make run` trained (settings: .env, see .env.example).
# The JSON request log replaces uvicorn's access log; forwarded headers are the app's business
# (RAKUTEN_API_TRUSTED_PROXIES), not uvicorn's.
WORKERS ?= 2
serve: $(RUN_STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" uvicorn rakuten_mm.serving.main:app --host 127.0.0.1 --port 8000 --workers $(WORKERS) --no-access-log --no-proxy-headers

# Add an API user: `make user NAME=alice` (prompts for the password); ADMIN=1 for an admin.
user: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make user NAME=<user name> [ADMIN=1]"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.users add "$(NAME)" $(if $(ADMIN),--admin)

# A/B rollout of the API's models (docs/api.md): `make candidate DIR=/srv/exp/models SHARE=0.1`,
# then `make promote` or `make rollback`. Set RAKUTEN_ROLLOUT_USER/_PASSWORD (admin) in .env to
# make the running API reload at once; otherwise its workers notice the change by themselves.
SHARE ?= 0.1
.PHONY: candidate promote rollback rollout-status
candidate: $(STAMP)
	@test -n "$(DIR)" || { echo "usage: make candidate DIR=<models folder> [SHARE=0.1]"; exit 2; }
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.rollout set-candidate "$(DIR)" --share $(SHARE)
promote: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.rollout promote
rollback: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.rollout rollback
rollout-status: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.serving.rollout status

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

# Airflow in its own venv (its pins would otherwise constrain the project's): the retraining DAG
# (airflow/dags) runs the project's commands with $(VENV)'s python. docs/airflow.md.
AIRFLOW_HOME ?= $(CURDIR)/.airflow
.PHONY: airflow-venv airflow
$(AIRFLOW_STAMP): airflow/requirements.txt
	test -x $(AIRFLOW_VENV)/bin/python || $(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(AIRFLOW_VENV)/bin/python -m pip install --quiet -r airflow/requirements.txt
	touch $(AIRFLOW_STAMP)

airflow-venv: $(AIRFLOW_STAMP)

# Airflow on http://127.0.0.1:8080 (scheduler, API server, DAG processor, triggerer: `airflow standalone`);
# the admin password is printed at start and kept in $(AIRFLOW_HOME). The DAG retrains the checkout
# RAKUTEN_PROJECT_DIR (default: this one). standalone starts its parts with `airflow` from PATH.
airflow: $(STAMP) $(AIRFLOW_STAMP)
	PATH="$(CURDIR)/$(AIRFLOW_VENV)/bin:$$PATH" AIRFLOW_HOME="$(AIRFLOW_HOME)" \
	AIRFLOW__CORE__DAGS_FOLDER="$(CURDIR)/airflow/dags" AIRFLOW__CORE__LOAD_EXAMPLES=False \
	AIRFLOW__API__HOST="$${AIRFLOW__API__HOST:-127.0.0.1}" RAKUTEN_PROJECT_DIR="$${RAKUTEN_PROJECT_DIR:-$(CURDIR)}" \
	airflow standalone

# Drift report of recent production traffic (the API's prediction log) against the training data:
# monitoring/reports/drift.{json,prom,png}; settings in params.yaml `monitor:`, docs/monitoring.md.
# `make monitor MONITOR_ARGS="--last-days 1 --fail-on-drift"` exits 3 on drift.
MONITOR_ARGS ?=
.PHONY: monitor
monitor: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.monitoring.monitor $(MONITOR_ARGS)

# Log the evaluated pipeline to MLflow (params, metrics, confusion matrix, git commit, dvc.lock
# hashes) and register models/ as a new version of MODEL_NAME. Server: MLFLOW_TRACKING_URI, else
# sqlite:///mlflow.db with artifacts in mlartifacts/ here. docs/remote_and_experiments.md#mlflow.
# `make register REGISTER_ARGS=--no-register` for servers without a model registry (DagsHub).
MODEL_NAME ?= rakuten-mm
REGISTER_ARGS ?=
MLFLOW_UI_PORT ?= 5000
.PHONY: register mlflow-ui
register: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" python -m rakuten_mm.tracking.register --model-name "$(MODEL_NAME)" $(REGISTER_ARGS)

# The MLflow UI on the local store, http://127.0.0.1:$(MLFLOW_UI_PORT). Job execution (GenAI jobs,
# seven extra processes) is off: nothing here uses it.
mlflow-ui: $(STAMP)
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow server --host 127.0.0.1 --port $(MLFLOW_UI_PORT) \
	  --workers 1 --backend-store-uri sqlite:///mlflow.db --artifacts-destination mlartifacts
