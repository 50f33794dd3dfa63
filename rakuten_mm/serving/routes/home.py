"""GET / and GET /status."""

from fastapi import APIRouter, Request

from rakuten_mm.serving.schemas import CandidateStatus, Message, Status

router = APIRouter(tags=["status"])


@router.get("/", response_model=Message, summary="Welcome message and documentation links")
def welcome() -> Message:
    """Say hello and point to the documentation."""
    return Message(
        message="Bienvenue sur l'API de classification des produits Rakuten France : "
                "POST /token pour un jeton, puis POST /predict.",
        docs="/docs", redoc="/redoc", openapi="/openapi.json",
    )


@router.get("/status", response_model=Status, summary="Health, loaded models and model versions")
def status(request: Request) -> Status:
    """Whether the models are loaded, which version is current and, during an A/B rollout, the candidate."""
    deployment = request.app.state.deployment
    if deployment is None:
        return Status(status="L'API fonctionne correctement", models_loaded=False, model_version="unknown",
                      model_outs={})
    deployment.refresh_if_changed()
    served = deployment.served
    candidate = served.candidate
    return Status(
        status="L'API fonctionne correctement",
        models_loaded=True,
        model_version=served.current.version,
        model_outs=served.current.model_outs,
        candidate=CandidateStatus(model_version=candidate.version, model_outs=candidate.model_outs,
                                  share=served.candidate_share)
        if candidate else None,
        reload_error=deployment.reload_error,
    )
