"""Every setting: the API's (RAKUTEN_API_*) and the rollout command's (RAKUTEN_ROLLOUT_*), from the environment and .env."""

import ipaddress
import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from rakuten_mm.features.images import ACCEPTED_FORMATS, DEFAULT_MAX_ASPECT_RATIO, DEFAULT_MAX_PIXELS

MIB = 1024 * 1024
# HS256 keys shorter than the hash output (32 bytes) weaken the signature (RFC 7518 §3.2).
MIN_SECRET_LENGTH = 32
# The pipeline's own list: the API accepts exactly the images make_dataset can read.
IMAGE_FORMATS = ACCEPTED_FORMATS
# Largest body of /token's form and of any route that takes no upload.
SMALL_BODY_LIMIT = 64 * 1024


class MissingSecretError(RuntimeError):
    """The JWT signing secret is absent or too short outside development mode."""


class Settings(BaseSettings):
    """Every knob of the API; .env.example documents each one."""

    model_config = SettingsConfigDict(
        env_prefix="RAKUTEN_API_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # Security
    secret_key: SecretStr | None = None
    dev_mode: bool = False
    access_token_expire_minutes: int = Field(30, gt=0)
    users_file: Path = Path("users.json")
    # name -> bcrypt hash, or name -> {"password_hash": ..., "admin": true} (the users file's layout)
    users: dict[str, str | dict[str, str | bool]] = Field(default_factory=dict)
    bcrypt_rounds: int = Field(12, ge=4, le=31)
    # Models
    models_dir: Path = Path("models")
    dvc_lock: Path = Path("dvc.lock")
    tf_threads: int = Field(1, ge=0)
    # A/B rollout: the state file `python -m rakuten_mm.serving.rollout` edits, and how often each
    # worker looks at it (seconds; 0: on every request).
    rollout_file: Path = Path("deployments/rollout.json")
    rollout_check_seconds: float = Field(1.0, ge=0)
    # Rate limits (limits library syntax: "10/minute", "100 per hour", "5/second;100/minute")
    rate_limit_enabled: bool = True
    predict_rate_limit: str = "10/minute"
    batch_rate_limit: str = "10/minute"
    token_rate_limit: str = "5/minute"
    rate_limit_storage_uri: str = "memory://"
    # Reverse proxies (addresses or CIDR networks, comma-separated) whose X-Forwarded-For names the
    # client; from any other peer the header is ignored. Empty: the peer address is the client.
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Input limits
    max_upload_bytes: int = Field(10 * MIB, gt=0)
    max_image_pixels: int = Field(DEFAULT_MAX_PIXELS, gt=0)
    # Longest side over shortest side; a more elongated image is refused (422) before decoding.
    max_image_aspect_ratio: float = Field(DEFAULT_MAX_ASPECT_RATIO, ge=1)
    # PNG and WebP decode whole (Pillow cannot reduce them while decoding, as it does JPEGs): at most
    # this many declared pixels of them per request (images past it are refused, or text-only in a
    # batch), and per worker one decode over LARGE_DECODE_PIXELS at a time.
    max_request_image_pixels: int = Field(2 * DEFAULT_MAX_PIXELS, gt=0)
    max_batch_size: int = Field(128, gt=0)
    max_batch_bytes: int = Field(50 * MIB, gt=0)
    # /metrics: anonymous callers get the operational series only (HTTP, process, rate-limit store);
    # the model and drift series need `Authorization: Bearer <this token>` (Prometheus's credentials file).
    metrics_token: SecretStr | None = None
    # Logging
    log_dir: Path = Path("logs")
    log_level: str = "INFO"
    log_file_max_bytes: int = Field(10 * MIB, gt=0)
    log_file_backups: int = Field(5, ge=0)
    # Monitoring: one JSON line per predicted product (no text; blank: off), and the drift report
    # whose scores /metrics exports.
    prediction_log: Path | None = Path("logs/predictions.jsonl")
    drift_report: Path = Path("monitoring/reports/drift.json")
    # Web console: the evaluate stage's outputs shown for each served models folder, relative to the
    # folder that holds it (the pipeline checkout that trained it); an absolute path is used as is.
    evaluate_metrics: Path = Path("metrics/evaluate/metrics.json")
    confusion_matrix: Path = Path("plots/evaluate/sklearn/confusion_matrix.json")
    # Products per /predict/batch request when the console classifies a file (capped by max_batch_size).
    console_batch_rows: int = Field(64, gt=0)
    # Review queue: products answered `review` (title, description, a small JPEG copy of the photo, top-5
    # codes, model version, time; nothing about the caller) in one SQLite file that every worker shares
    # (blank: no queue). Products waiting for review are kept this many days, and at most this many (the
    # oldest go first); reviewed ones stay, as the corrections the export reads.
    review_database: Path | None = Path("review/queue.sqlite")
    review_retention_days: float = Field(30.0, gt=0)
    review_max_pending: int = Field(20_000, gt=0)
    review_photo_side: int = Field(160, ge=16, le=512)

    @field_validator("secret_key", "prediction_log", "metrics_token", "review_database", mode="before")
    @classmethod
    def _blank_is_unset(cls, value):
        """An empty RAKUTEN_API_SECRET_KEY= (PREDICTION_LOG=, METRICS_TOKEN=, REVIEW_DATABASE=) line means unset."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_networks(cls, value):
        """Comma-separated addresses or networks; each must parse, so a typo cannot trust everyone."""
        items = [item.strip() for item in value.split(",")] if isinstance(value, str) else list(value)
        items = [item for item in items if item]
        for item in items:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as error:
                raise ValueError(f"trusted proxy {item!r} is not an IP address or network") from error
        return items

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        """Accept only the standard logging level names."""
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError(f"unknown log level {value!r}")
        return level

    @cached_property
    def signing_key(self) -> str:
        """The JWT secret; a random per-process one in dev mode, else refuse to go on without it."""
        if self.secret_key is not None:
            key = self.secret_key.get_secret_value()
            if len(key) >= MIN_SECRET_LENGTH or self.dev_mode:
                return key
            raise MissingSecretError(
                f"RAKUTEN_API_SECRET_KEY is {len(key)} characters long; use at least {MIN_SECRET_LENGTH}"
            )
        if self.dev_mode:
            # Tokens die with the process and are not shared between workers: development only.
            return secrets.token_urlsafe(48)
        raise MissingSecretError(
            "RAKUTEN_API_SECRET_KEY is not set. Generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'` and put it in the "
            "environment or .env, or set RAKUTEN_API_DEV_MODE=true for a throw-away local key."
        )

    @property
    def predict_body_limit(self) -> int:
        """Largest /predict request body: one image plus room for the text fields."""
        return self.max_upload_bytes + MIB


class RolloutClientSettings(BaseSettings):
    """Where the running API is and which admin user the rollout command logs in as."""

    model_config = SettingsConfigDict(env_prefix="RAKUTEN_ROLLOUT_", env_file=".env", env_file_encoding="utf-8",
                                      extra="ignore")

    api_url: str = "http://127.0.0.1:8000"
    user: str | None = None
    password: SecretStr | None = None
    # Loading models takes seconds; a reload answers once they are loaded.
    timeout_seconds: float = 300.0
