"""GET /reports/evaluation and GET /reports/drift: what the pipeline and the drift monitor wrote."""

from fastapi import APIRouter, Request

from rakuten_mm.serving.deps import CurrentUser, Models
from rakuten_mm.serving.reports import drift_summary, evaluation_report
from rakuten_mm.serving.console_schemas import DriftSummary, ServedEvaluation

router = APIRouter(prefix="/reports", tags=["status"],
                   responses={401: {"description": "Missing, invalid or expired token"}})


@router.get("/evaluation", response_model=list[ServedEvaluation],
            summary="Evaluate-stage scores of the served models")
def evaluation(user: CurrentUser, models: Models) -> list[dict]:
    """Weighted F1 per model, per-class F1 and the confusion matrix the evaluate stage wrote beside each
    served models folder (current, then the candidate of an A/B rollout)."""
    return evaluation_report(models.served, models.settings)


@router.get("/drift", response_model=DriftSummary, summary="Latest drift verdict per feature")
def drift(request: Request, user: CurrentUser) -> dict:
    """The verdict, score and threshold of each feature in the monitor command's latest report."""
    return drift_summary(request.app.state.settings.drift_report)
