"""Helpers for the API tests: settings on the tiny pipeline's models, users, tokens, images."""

import functools
import io
import json
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from rakuten_mm.models.predictor import ProductClassifier
from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.main import create_app
from rakuten_mm.serving.security import hash_password
from rakuten_mm.serving.users import User, read_users_file, write_users_file

# bcrypt's cheapest cost: the tests check behaviour, not hashing strength.
TEST_ROUNDS = 4


@functools.cache
def shared_classifier(models_dir: Path) -> ProductClassifier:
    """One loaded classifier per models folder for the whole test session (apps are many, models one)."""
    return ProductClassifier(models_dir)


def make_settings(repo: Path, tmp: Path, **overrides) -> Settings:
    """Settings on the tiny pipeline's models, a fresh random secret, files under tmp, no .env."""
    values = dict(
        secret_key=secrets.token_urlsafe(48), models_dir=repo / "models", dvc_lock=repo / "dvc.lock",
        users_file=tmp / "users.json", log_dir=tmp / "logs", bcrypt_rounds=TEST_ROUNDS,
        predict_rate_limit="1000/minute", batch_rate_limit="1000/minute", token_rate_limit="1000/minute",
        rollout_file=tmp / "deployments" / "rollout.json", rollout_check_seconds=0,
        prediction_log=tmp / "logs" / "predictions.jsonl", drift_report=tmp / "drift.json",
        review_database=tmp / "review" / "queue.sqlite",
        metrics_token=secrets.token_urlsafe(24),
    )
    return Settings(_env_file=None, **{**values, **overrides})


def add_users(path: Path, count: int = 1, prefix: str = "user", admin: bool = False) -> dict[str, str]:
    """Add `count` users (admins with admin=True) with random passwords to a users file; return {name: password}."""
    users = read_users_file(path)
    credentials = {f"{prefix}{len(users) + i}": secrets.token_urlsafe(12) for i in range(count)}
    for name, password in credentials.items():
        users[name] = User(name, hash_password(password, TEST_ROUNDS), admin=admin)
    write_users_file(path, users)
    return credentials


def candidate_models(models_dir: Path, dest: Path, text_weight: float = 0.5) -> Path:
    """A copy of a models folder whose fusion weighs the text differently: a candidate with another version."""
    # The whole folder: every member model the classifier loads (text, image, baseline), not a file list.
    shutil.copytree(models_dir, dest, dirs_exist_ok=True)
    fusion_file = dest / "fusion" / "fusion.json"
    fusion = json.loads(fusion_file.read_text())
    fusion.update(method="weighted", weights={"text": text_weight, "image": 1.0 - text_weight}, fallback="text")
    fusion_file.write_text(json.dumps(fusion, indent=2))
    return dest


def models_with_review(models_dir: Path, dest: Path, threshold: float | None) -> Path:
    """A copy of a models folder whose fusion.json holds a review block with this threshold (as train_fusion writes it)."""
    shutil.copytree(models_dir, dest, dirs_exist_ok=True)
    fusion_file = dest / "fusion" / "fusion.json"
    fusion = json.loads(fusion_file.read_text())
    fusion["review"] = {"threshold": threshold, "chosen_by": "target_precision", "target_precision": 0.95,
                        "target_coverage": None, "oof": {"rows": 100, "precision": 0.95, "coverage": 0.5}}
    fusion_file.write_text(json.dumps(fusion, indent=2))
    return dest


def models_without_review(models_dir: Path, dest: Path) -> Path:
    """A copy of a models folder whose fusion.json has no review block: every product it answers goes to review.

    The tiny pipeline's train_fusion writes a review block, so that its threshold files some products
    automatically; tests of the review queue that need every product queued serve this copy.
    """
    shutil.copytree(models_dir, dest, dirs_exist_ok=True)
    fusion_file = dest / "fusion" / "fusion.json"
    fusion = json.loads(fusion_file.read_text())
    fusion.pop("review", None)
    fusion_file.write_text(json.dumps(fusion, indent=2))
    return dest


@dataclass
class Api:
    """A running app (lifespan entered), its settings and one user's credentials."""

    client: TestClient
    settings: Settings
    username: str
    password: str
    _headers: dict = field(default_factory=dict)

    def token(self, username: str | None = None, password: str | None = None) -> str:
        """A fresh token from POST /token."""
        response = self.client.post("/token", data={"username": username or self.username,
                                                     "password": password or self.password})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    def add_admin(self) -> dict:
        """Authorization header of a new admin user of this app."""
        (name, password), = add_users(self.settings.users_file, prefix="admin", admin=True).items()
        return {"Authorization": f"Bearer {self.token(name, password)}"}

    def metrics(self, trusted: bool = True) -> str:
        """GET /metrics, with the metrics token (every series) or anonymously (the public ones)."""
        token = self.settings.metrics_token.get_secret_value()
        response = self.client.get("/metrics", headers={"Authorization": f"Bearer {token}"} if trusted else {})
        assert response.status_code == 200, response.text
        return response.text

    @property
    def auth(self) -> dict:
        """Authorization header of the default user (one token per Api)."""
        if not self._headers:
            self._headers["Authorization"] = f"Bearer {self.token()}"
        return self._headers


@contextmanager
def running_api(repo: Path, tmp: Path, classifier_factory=shared_classifier, **overrides) -> Iterator[Api]:
    """Build the app on the tiny models with one user, and run its lifespan around the block."""
    tmp.mkdir(parents=True, exist_ok=True)
    settings = make_settings(repo, tmp, **overrides)
    (username, password), = add_users(settings.users_file).items()
    app = create_app(settings, classifier_factory=classifier_factory)
    with TestClient(app) as client:
        yield Api(client, settings, username, password)


def product_jpeg(side: int = 500, seed: int = 0, fmt: str = "JPEG") -> bytes:
    """A product-like photo: a few coloured shapes on white, side x side, encoded in fmt."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (side, side), "white")
    draw = ImageDraw.Draw(image)
    for _ in range(3):
        x0, y0 = (int(v) for v in rng.integers(side // 10, side // 2, size=2))
        x1, y1 = (int(v) for v in rng.integers(side // 2, side - side // 10, size=2))
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 220, size=3)))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()
