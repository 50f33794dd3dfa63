"""Response bodies of the routes the web console uses besides /predict: /me, /reports/* and /admin/rollout."""

from typing import Literal

from pydantic import BaseModel, Field


class UserInfo(BaseModel):
    """Who the token belongs to, and whether the console may show the admin actions."""

    username: str
    admin: bool


class RolloutFile(BaseModel):
    """The rollout file's state (what promote and rollback act on) and the versions this worker serves."""

    current: str
    candidate: str | None
    candidate_share: float
    previous: str | None = Field(description="the models folder a rollback returns to")
    updated_at: str | None
    served_version: str
    served_candidate_version: str | None


class DriftFeature(BaseModel):
    """One feature's verdict in the latest drift report."""

    test: str | None = None
    score: float | None = None
    threshold: float | None = None
    drifted: bool | None = None
    n_reference: int | None = None
    n_production: int | None = None


class DriftSummary(BaseModel):
    """The latest drift report of the monitor command, per feature (available=false without one)."""

    available: bool
    generated_at: str | None = None
    status: str | None = None
    drift_detected: bool | None = None
    n_production: int | None = None
    features: dict[str, DriftFeature]


class ServedEvaluation(BaseModel):
    """The evaluate stage's scores for one served models folder, as the pipeline wrote them."""

    variant: Literal["current", "candidate"]
    model_version: str
    metrics: dict | None = Field(description="{split, models: {model: {accuracy, f1_weighted, f1_macro}}, "
                                             "per_class_f1: [{prdtypecode, category, f1}]}; null without a file")
    confusion_matrix: dict | None = Field(description="{labels, matrix[actual][predicted]}; null without a file")
    matches_served: bool | None = Field(description="whether dvc.lock says evaluate scored these exact model files")
