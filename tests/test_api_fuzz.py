"""Fuzzing with schemathesis against the app's own OpenAPI schema: no 5xx, whatever the request.

Each operation gets valid (positive) and invalid (negative) requests generated from the schema,
sent with a valid token. (schemathesis.pytest.from_fixture does not run on this pytest, so the
hypothesis test is built per operation from operation.as_strategy().)
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_support import running_api

MAX_EXAMPLES = 30
OPERATIONS = [("GET", "/"), ("GET", "/status"), ("POST", "/token"), ("POST", "/predict"),
              ("POST", "/predict/batch"), ("GET", "/metrics"), ("POST", "/admin/reload"), ("GET", "/me"),
              ("GET", "/reports/evaluation"), ("GET", "/reports/drift"), ("GET", "/admin/rollout"),
              ("POST", "/admin/rollout/{action}"), ("GET", "/health/ready"), ("GET", "/review/items"),
              ("GET", "/review/summary"), ("POST", "/review/items/{item_id}/decision"),
              ("POST", "/admin/review/export")]


@pytest.fixture(scope="module")
def fuzzed_api(tiny_pipeline, tmp_path_factory):
    repo, _ = tiny_pipeline
    # Default rate limits of api_support are high: the fuzzer must reach the code behind them.
    with running_api(repo, tmp_path_factory.mktemp("fuzz"), max_batch_size=8) as api:
        yield api


@pytest.fixture(scope="module")
def api_schema(fuzzed_api):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzzed_api.client.app)


def test_every_operation_is_fuzzed(api_schema):
    listed = {(result.ok().method.upper(), result.ok().path) for result in api_schema.get_all_operations()}
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize("method, path", OPERATIONS)
def test_no_server_error_for_any_generated_request(api_schema, fuzzed_api, method, path):
    operation = api_schema[path][method]
    cases = st.one_of(operation.as_strategy(schemathesis.GenerationMode.POSITIVE),
                      operation.as_strategy(schemathesis.GenerationMode.NEGATIVE))

    # /admin/* with an admin's token, so that the fuzzer reaches the reload itself.
    auth = fuzzed_api.add_admin() if path.startswith("/admin/") else fuzzed_api.auth

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    def check(case):
        response = case.call(headers={**(case.headers or {}), **auth})
        assert response.status_code < 500, f"{method} {path} -> {response.status_code}: {response.text[:500]}"

    check()
