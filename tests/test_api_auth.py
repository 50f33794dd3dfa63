"""Security of the API: passwords, tokens (expired, tampered, alg none), users, secret, /token limits."""

import asyncio
import io
import json
import os
import secrets
import stat
from pathlib import Path
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from api_support import TEST_ROUNDS, add_users, make_settings, running_api
from rakuten_mm.serving.config import MissingSecretError, Settings
from rakuten_mm.serving.main import create_app
from rakuten_mm.serving.security import (
    InvalidTokenError, create_access_token, decode_access_token, hash_password, verify_password,
)
from rakuten_mm.serving.users import UserStore, main as users_main, read_users_file

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def api(tiny_pipeline, tmp_path_factory):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path_factory.mktemp("auth")) as running:
        yield running


@pytest.fixture
def secret() -> str:
    return secrets.token_urlsafe(48)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def status_with(api, headers: dict) -> int:
    """Status of a text-only /predict with these headers."""
    return api.client.post("/predict", data={"designation": "Jeu de société"}, headers=headers).status_code


# --- passwords and tokens, as functions ---

def test_passwords_are_bcrypt_hashed_and_checked():
    hashed = hash_password("correct horse battery", TEST_ROUNDS)
    assert hashed.startswith("$2b$04$") and "correct" not in hashed
    assert verify_password("correct horse battery", hashed)
    assert not verify_password("correct horse batterY", hashed)


def test_odd_passwords_and_hashes_fail_instead_of_raising():
    hashed = hash_password("x" * 72, TEST_ROUNDS)
    assert not verify_password("x" * 73, hashed)
    assert not verify_password("anything", "not a bcrypt hash")
    assert not verify_password("anything", "é")
    with pytest.raises(ValueError):
        hash_password("x" * 73, TEST_ROUNDS)


def test_token_round_trip(secret):
    assert decode_access_token(create_access_token("alice", secret, 5), secret) == "alice"


def test_expired_token_is_refused(secret):
    old = datetime.now(UTC) - timedelta(hours=2)
    with pytest.raises(InvalidTokenError, match="expired"):
        decode_access_token(create_access_token("alice", secret, 30, now=old), secret)


def test_tampered_token_is_refused(secret):
    header, payload, signature = create_access_token("alice", secret, 5).split(".")
    forged_payload = jwt.utils.base64url_encode(b'{"sub":"admin","iat":1,"exp":9999999999}').decode()
    with pytest.raises(InvalidTokenError):
        decode_access_token(f"{header}.{forged_payload}.{signature}", secret)
    with pytest.raises(InvalidTokenError):
        decode_access_token(create_access_token("alice", secrets.token_urlsafe(48), 5), secret)


@pytest.mark.parametrize("algorithm", ["none", "HS512", "HS384"])
def test_other_algorithms_are_refused(secret, algorithm):
    claims = {"sub": "alice", "iat": datetime.now(UTC), "exp": datetime.now(UTC) + timedelta(minutes=5)}
    token = jwt.encode(claims, None if algorithm == "none" else secret, algorithm=algorithm)
    with pytest.raises(InvalidTokenError):
        decode_access_token(token, secret)


def test_tokens_need_expiry_and_subject(secret):
    for claims in ({"sub": "alice"}, {"exp": datetime.now(UTC) + timedelta(minutes=5), "iat": datetime.now(UTC)}):
        with pytest.raises(InvalidTokenError):
            decode_access_token(jwt.encode(claims, secret, algorithm="HS256"), secret)


# --- the endpoints ---

def test_token_endpoint_returns_a_bearer_jwt(api):
    response = api.client.post("/token", data={"username": api.username, "password": api.password})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "HS256"
    assert status_with(api, bearer(body["access_token"])) == 200


@pytest.mark.parametrize("username, password", [("user0", "wrong password"), ("nobody", "whatever-it-is")])
def test_wrong_password_or_unknown_user_is_401(api, username, password):
    response = api.client.post("/token", data={"username": username, "password": password})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "incorrect user name or password"


def test_token_form_needs_both_fields(api):
    assert api.client.post("/token", data={"username": api.username}).status_code == 422


def test_predict_without_token_is_401(api):
    response = api.client.post("/predict", data={"designation": "x"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
    assert api.client.post("/predict/batch", json=[{"designation": "x"}]).status_code == 401


@pytest.mark.parametrize("header", ["Bearer", "Bearer not-a-jwt", "Bearer a.b.c", "Basic dXNlcjpwYXNz", "token"])
def test_malformed_authorization_is_401(api, header):
    assert status_with(api, {"Authorization": header}) == 401


def test_expired_token_is_401(api):
    old = datetime.now(UTC) - timedelta(hours=1)
    token = create_access_token(api.username, api.settings.signing_key, 30, now=old)
    assert status_with(api, bearer(token)) == 401


def test_token_with_a_wrong_signature_is_401(api):
    token = create_access_token(api.username, secrets.token_urlsafe(48), 30)
    assert status_with(api, bearer(token)) == 401


def test_alg_none_token_is_401(api):
    claims = {"sub": api.username, "iat": datetime.now(UTC), "exp": datetime.now(UTC) + timedelta(minutes=5)}
    assert status_with(api, bearer(jwt.encode(claims, None, algorithm="none"))) == 401


def test_token_of_an_unknown_user_is_401(api):
    token = create_access_token("ghost", api.settings.signing_key, 30)
    response = api.client.post("/predict", data={"designation": "x"}, headers=bearer(token))
    assert response.status_code == 401 and "unknown" in response.json()["detail"]


def test_token_rate_limit_per_client(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, token_rate_limit="2/minute") as limited:
        form = {"username": limited.username, "password": "wrong password"}
        assert [limited.client.post("/token", data=form).status_code for _ in range(2)] == [401, 401]
        refused = limited.client.post("/token", data={"username": limited.username, "password": limited.password})
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        assert "Too many requests" in refused.json()["detail"]


# --- where users and the secret come from ---

def test_the_app_refuses_to_start_without_a_secret(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with pytest.raises(MissingSecretError, match="RAKUTEN_API_SECRET_KEY"):
        create_app(make_settings(repo, tmp_path, secret_key=None))
    with pytest.raises(MissingSecretError, match="at least 32"):
        create_app(make_settings(repo, tmp_path, secret_key="short"))


def test_dev_mode_makes_a_throw_away_secret(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    with running_api(repo, tmp_path, secret_key=None, dev_mode=True) as dev:
        assert len(dev.settings.signing_key) >= 32
        assert status_with(dev, dev.auth) == 200


def test_settings_come_from_the_environment_and_dotenv(tmp_path, monkeypatch, secret):
    monkeypatch.setenv("RAKUTEN_API_SECRET_KEY", secret)
    monkeypatch.setenv("RAKUTEN_API_PREDICT_RATE_LIMIT", "7/minute")
    dotenv = tmp_path / ".env"
    dotenv.write_text("RAKUTEN_API_MAX_BATCH_SIZE=9\nRAKUTEN_API_PREDICT_RATE_LIMIT=1/minute\n")
    settings = Settings(_env_file=dotenv)
    assert settings.signing_key == secret
    assert settings.predict_rate_limit == "7/minute"  # the environment wins over .env
    assert settings.max_batch_size == 9


def test_users_from_the_environment(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    password = secrets.token_urlsafe(12)
    with running_api(repo, tmp_path, users={"envuser": hash_password(password, TEST_ROUNDS)}) as api:
        assert status_with(api, bearer(api.token("envuser", password))) == 200


def test_users_added_to_the_file_need_no_restart_and_removed_ones_lose_access(api):
    (name, password), = add_users(api.settings.users_file, prefix="late").items()
    token = api.token(name, password)
    assert status_with(api, bearer(token)) == 200
    assert users_main(["--file", str(api.settings.users_file), "remove", name]) == 0
    assert status_with(api, bearer(token)) == 401


def test_a_broken_users_file_keeps_the_last_good_users(tmp_path):
    path = tmp_path / "users.yaml"
    add_users(path)
    store = UserStore(path, bcrypt_rounds=TEST_ROUNDS)
    assert store.get("user0") is not None
    path.write_text("users: [not, a, mapping")
    os.utime(path, (1, 1))
    assert store.get("user0") is not None
    with pytest.raises(ValueError, match="cannot read users file"):
        UserStore(path, bcrypt_rounds=TEST_ROUNDS)


def test_users_cli_adds_updates_lists_and_removes(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"
    password = secrets.token_urlsafe(12)
    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    assert users_main(["--file", str(path), "add", "bob", "--password-stdin", "--rounds", "4"]) == 0
    assert verify_password(password, read_users_file(path)["bob"].password_hash)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert password not in path.read_text()
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-password\n"))
    assert users_main(["--file", str(path), "add", "bob", "--rounds", "4"]) == 1  # exists
    monkeypatch.setattr(sys, "stdin", io.StringIO("another-password\n"))
    assert users_main(["--file", str(path), "add", "bob", "--update", "--rounds", "4"]) == 0
    assert verify_password("another-password", read_users_file(path)["bob"].password_hash)
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert users_main(["--file", str(path), "add", "carl", "--rounds", "4"]) == 1
    monkeypatch.setattr(sys, "stdin", io.StringIO("long-enough-password\n"))
    assert users_main(["--file", str(path), "add", "bad name!", "--rounds", "4"]) == 1
    capsys.readouterr()
    assert users_main(["--file", str(path), "list"]) == 0 and capsys.readouterr().out.strip() == "bob"
    assert users_main(["--file", str(path), "remove", "bob"]) == 0
    assert read_users_file(path) == {}


def test_users_cli_runs_as_a_module_reading_stdin(tmp_path):
    path = tmp_path / "users.yaml"
    env = {**os.environ, "RAKUTEN_API_USERS_FILE": str(path), "RAKUTEN_API_BCRYPT_ROUNDS": "4"}
    result = subprocess.run([sys.executable, "-m", "rakuten_mm.serving.users", "add", "dora"], input="a-good-password\n",
                            capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    assert verify_password("a-good-password", read_users_file(path)["dora"].password_hash)


def test_env_example_documents_every_setting():
    documented = (REPO_ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"RAKUTEN_API_{name.upper()}" in documented, name


def test_a_bcrypt_hash_survives_dotenv_quoting(tmp_path):
    hashed = hash_password("a-good-password", TEST_ROUNDS)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"RAKUTEN_API_USERS='{{\"eve\": \"{hashed}\"}}'\n")
    assert Settings(_env_file=dotenv).users == {"eve": hashed}


def test_users_cli_marks_admins_and_update_keeps_the_flag(tmp_path, monkeypatch, capsys):
    path = tmp_path / "users.json"

    def users(*args: str) -> int:
        monkeypatch.setattr(sys, "stdin", io.StringIO("a-good-password\n"))
        return users_main(["--file", str(path), *args, "--rounds", "4"])

    assert users("add", "ops", "--admin") == 0 and users("add", "bob") == 0
    assert {name: u.admin for name, u in read_users_file(path).items()} == {"ops": True, "bob": False}
    assert users("add", "ops", "--update") == 0 and read_users_file(path)["ops"].admin
    capsys.readouterr()
    assert users_main(["--file", str(path), "list"]) == 0
    assert capsys.readouterr().out.splitlines() == ["bob", "ops (admin)"]
    assert users("add", "ops", "--update", "--no-admin") == 0 and not read_users_file(path)["ops"].admin


def test_admins_from_the_environment_may_reload_and_plain_users_may_not(tiny_pipeline, tmp_path):
    repo, _ = tiny_pipeline
    password = secrets.token_urlsafe(12)
    hashed = hash_password(password, TEST_ROUNDS)
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"RAKUTEN_API_USERS='{{\"ops\": {{\"password_hash\": \"{hashed}\", \"admin\": true}}, "
                      f"\"eve\": \"{hashed}\"}}'\n")
    users = Settings(_env_file=dotenv).users
    with running_api(repo, tmp_path, users=users) as api:
        assert api.client.post("/admin/reload", headers=bearer(api.token("ops", password))).status_code == 200
        assert api.client.post("/admin/reload", headers=bearer(api.token("eve", password))).status_code == 403


def call_without_lifespan(app, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[dict, int]:
    """One ASGI request of 5 MB declared body that is never sent: (the JSON answer, times the app read the body)."""
    reads, sent = [], []

    async def receive():
        reads.append(1)  # a refusal before reading never gets here
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"multipart/form-data; boundary=x"), (b"content-length", b"5000000"),
                         *headers], "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    start, body = sent[0], b"".join(m.get("body", b"") for m in sent[1:])
    return {"status": start["status"], **json.loads(body)}, len(reads)


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize("authorization, detail", [
    (None, "Not authenticated"), ("Bearer not.a.token", "invalid token: Invalid header padding")])
def test_an_anonymous_upload_is_refused_before_its_body_is_read(tmp_path, path, authorization, detail):
    # No lifespan, no models: the refusal comes before routing, from the headers alone.
    app = create_app(make_settings(tmp_path, tmp_path))
    headers = [(b"authorization", authorization.encode())] if authorization else []
    answer, reads = call_without_lifespan(app, path, headers)
    assert answer == {"status": 401, "detail": detail}
    assert reads == 0


def test_a_signed_in_upload_is_read(tmp_path):
    settings = make_settings(tmp_path, tmp_path)
    (username, _), = add_users(settings.users_file).items()
    token = create_access_token(username, settings.signing_key, 5)
    answer, reads = call_without_lifespan(create_app(settings), "/predict", [(b"authorization", f"Bearer {token}".encode())])
    # Past the check, FastAPI reads the body (and answers 400: these bytes are no multipart form).
    assert reads > 0 and answer["status"] == 400
