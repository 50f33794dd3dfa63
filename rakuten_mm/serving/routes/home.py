"""GET / and GET /status."""

from fastapi import APIRouter, Request

from rakuten_mm.serving.schemas import Message, Status

router = APIRouter(tags=["status"])


@router.get("/", response_model=Message, summary="Welcome message and documentation links")
def welcome() -> Message:
    """Say hello and point to the documentation."""
    return Message(
        message="Bienvenue sur l'API de classification des produits Rakuten France : "
                "POST /token pour un jeton, puis POST /predict.",
        docs="/docs", redoc="/redoc", openapi="/openapi.json",
    )


@router.get("/status", response_model=Status, summary="Health, loaded models and model version")
def status(request: Request) -> Status:
    """Whether the models are loaded and which version (md5 of the model outs in dvc.lock) is served."""
    service = request.app.state.service
    return Status(
        status="L'API fonctionne correctement",
        models_loaded=service is not None,
        model_version=service.version if service else "unknown",
        model_outs=service.model_outs if service else {},
        models_dir=str(request.app.state.settings.models_dir),
    )
