"""Request and response bodies of every route: predictions, status, tokens, and what the console reads."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_DESIGNATION_CHARS = 1_000
MAX_DESCRIPTION_CHARS = 100_000
MAX_IDENTIFIER_CHARS = 256
# A designation must hold at least one non-blank character (in the OpenAPI schema too).
HAS_TEXT = r"\S"
REVIEW_THRESHOLD = ("top-1 fused probability from which a product of these models is filed automatically "
                    "(fusion.json's review block); null: every product goes to review")
Decision = Literal["auto", "review"]


class Message(BaseModel):
    """The welcome message and where to read the documentation."""

    message: str
    docs: str
    redoc: str
    openapi: str


class CandidateStatus(BaseModel):
    """The candidate model of an A/B rollout."""

    model_version: str
    model_outs: dict[str, str]
    share: float = Field(description="share of products routed to the candidate (sticky per product)")
    review_threshold: float | None = Field(None, description=REVIEW_THRESHOLD)


class Status(BaseModel):
    """Whether the API and its models are up, and which model versions are served."""

    status: str
    models_loaded: bool
    model_version: str = Field(description="version of the current model")
    model_outs: dict[str, str] = Field(
        description="md5 of each model out in dvc.lock (or of the model files when no dvc.lock describes them)")
    review_threshold: float | None = Field(None, description=REVIEW_THRESHOLD)
    candidate: CandidateStatus | None = Field(None, description="the candidate model, during an A/B rollout")
    # A public route: a short code, never the error's text (it names files); the log has the details.
    reload_error: str | None = Field(
        None, description="why the last reload failed (the previous models are served): rollout_file_invalid, "
                          "models_not_found or models_not_loadable; the API log has the details")


class Readiness(BaseModel):
    """Whether this worker can serve: models loaded, and whether the shared rate-limit store answers."""

    status: Literal["ready", "degraded", "not_ready"]
    models_loaded: bool
    rate_limit_store: Literal["ok", "unreachable", "disabled"] = Field(
        description="unreachable: limits are counted per worker process until the store answers again")


class ReloadResult(BaseModel):
    """The versions served after POST /admin/reload."""

    current: str
    candidate: str | None
    candidate_share: float
    other_workers_notified: bool = Field(
        description="whether the rollout file was touched so that the other worker processes reload too")


class Token(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the token expires")


class ClassProbability(BaseModel):
    """One product type code, its category name and its fused probability."""

    prdtypecode: int
    category: str
    probability: float


class Prediction(BaseModel):
    """The predicted product type of one product."""

    prdtypecode: int
    category: str
    probability: float = Field(description="fused probability of the predicted code")
    top5: list[ClassProbability] = Field(description="the five most probable codes, most probable first")
    modalities: list[Literal["text", "image"]] = Field(description="inputs the prediction used")
    note: str | None = Field(None, description="why a modality was not used, when one was not")
    productid: int | None = None
    imageid: int | None = None
    product_identifier: str | None = None
    model_version: str = Field(description="version of the model that answered")
    variant: Literal["current", "candidate"] = Field(description="which model of an A/B rollout answered")
    probabilities: list[ClassProbability] | None = Field(
        None, description="all 27 codes in increasing code order; only with include_probabilities=true")
    decision: Decision = Field(description="auto: file the product with this code; review: a person should look at "
                                           "it (its probability is below the threshold, or the model has none)")
    threshold: float | None = Field(description="the threshold `probability` was compared with; " + REVIEW_THRESHOLD)


class BatchPrediction(Prediction):
    """One prediction of a batch, with its position in the request."""

    row: int = Field(description="0-based position of the product in the request")


class DecisionCounts(BaseModel):
    """How many products of a batch are filed automatically, and how many go to review."""

    auto: int
    review: int


class BatchResponse(BaseModel):
    """One prediction per product, in the order of the request."""

    count: int
    decisions: DecisionCounts
    model_version: str = Field(description="version of the current model; each prediction names its own")
    predictions: list[BatchPrediction]


class BatchProduct(BaseModel):
    """One product of a JSON batch: text fields and an optional base64-encoded image."""

    model_config = ConfigDict(extra="forbid")

    designation: str = Field(max_length=MAX_DESIGNATION_CHARS, pattern=HAS_TEXT, description="product title")
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_CHARS)
    productid: int | None = None
    imageid: int | None = None
    product_identifier: str | None = Field(None, max_length=MAX_IDENTIFIER_CHARS)
    image_base64: str | None = Field(
        None, description="JPEG, PNG or WebP bytes in base64 (a data:image/...;base64, prefix is accepted)")


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
    review_share: float | None = Field(None, description="share of the compared predictions sent to review "
                                                         "(null when the log lines do not say)")
    features: dict[str, DriftFeature]


class ServedEvaluation(BaseModel):
    """The evaluate stage's scores for one served models folder, as the pipeline wrote them."""

    variant: Literal["current", "candidate"]
    model_version: str
    metrics: dict | None = Field(description="{split, models: {model: {accuracy, f1_weighted, f1_macro}}, "
                                             "per_class_f1: [{prdtypecode, category, f1}]}; null without a file")
    confusion_matrix: dict | None = Field(description="{labels, matrix[actual][predicted]}; null without a file")
    matches_served: bool | None = Field(description="whether dvc.lock says evaluate scored these exact model files")


class ReviewTopCode(BaseModel):
    """One of a queued product's five most probable codes, with its French name."""

    prdtypecode: int
    category: str
    probability: float


class ReviewItem(BaseModel):
    """A product answered `review`, as kept in the queue."""

    id: int
    designation: str
    description: str | None
    productid: int | None
    imageid: int | None
    photo: str | None = Field(description="small JPEG copy of the photo as a data: URI; null without a photo")
    prdtypecode: int = Field(description="the code the model predicted")
    category: str
    probability: float
    top5: list[ReviewTopCode]
    model_version: str
    received_at: str
    status: Literal["pending", "decided", "skipped"]


class ReviewClassCount(BaseModel):
    """Products waiting for review with one predicted code."""

    prdtypecode: int
    category: str
    pending: int


class ReviewSummary(BaseModel):
    """The queue's size, per predicted code, and the number of decisions recorded."""

    pending: int
    decisions: int
    by_class: list[ReviewClassCount]


class ReviewDecisionRequest(BaseModel):
    """A reviewer's decision: the right code (the predicted one confirms it), or null to skip the product."""

    model_config = ConfigDict(extra="forbid")

    prdtypecode: int | None = Field(description="one of the 27 codes; null: skip")


class ReviewDecision(BaseModel):
    """A recorded decision (append-only)."""

    id: int
    item_id: int
    reviewer: str
    decided_at: str
    model_version: str
    predicted_code: int
    chosen_code: int | None
    action: Literal["confirm", "correct", "skip"]
