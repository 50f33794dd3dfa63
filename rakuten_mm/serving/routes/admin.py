"""Admin-only routes: POST /admin/reload, and the rollout file with promote and roll back (GET/POST /admin/rollout...)."""

from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, status

from rakuten_mm.serving.config import SMALL_BODY_LIMIT
from rakuten_mm.serving.deployment import ReloadError
from rakuten_mm.serving.deps import AdminUser, LoadedModels, Models
from rakuten_mm.serving.rollout_actions import apply_rollout_action, rollout_file_state
from rakuten_mm.serving.rollout_state import RolloutError
from rakuten_mm.serving.console_schemas import RolloutFile
from rakuten_mm.serving.schemas import ReloadResult

ADMIN_ERRORS = {401: {"description": "Missing, invalid or expired token"},
                403: {"description": "The user is not an admin"},
                409: {"description": "The models could not be loaded; the previous ones are still served"}}

CHANGED_ONLY = ("keep the loaded models whose files did not change (what the rollout command asks: "
                "a promotion then loads nothing)")

router = APIRouter(prefix="/admin", tags=["admin"], responses=ADMIN_ERRORS)


@router.post("/reload", response_model=ReloadResult, max_body_size=SMALL_BODY_LIMIT,
             summary="Reload the models (current and candidate) from disk")
def reload_models(
    request: Request,
    admin: AdminUser,
    models: LoadedModels,
    changed_only: Annotated[bool, Query(description=CHANGED_ONLY)] = False,
) -> ReloadResult:
    """Re-read the rollout file and load the models it names, without a restart.

    This worker reloads at once; it then touches the rollout file, so that the other uvicorn
    workers reload at their next request (within RAKUTEN_API_ROLLOUT_CHECK_SECONDS).
    """
    # A sync route: loading models takes seconds and runs in the thread pool.
    try:
        served, notified = models.reload(reuse=changed_only)
    except ReloadError as error:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"reload failed, previous models still served: {error}") from error
    return ReloadResult(current=served.current.version,
                        candidate=served.candidate.version if served.candidate else None,
                        candidate_share=served.candidate_share, other_workers_notified=notified)


@router.get("/rollout", response_model=RolloutFile, summary="The rollout file: current, candidate, previous")
def rollout_status(admin: AdminUser, models: Models) -> RolloutFile:
    """What promote and rollback would act on, and the versions this worker serves."""
    try:
        state = rollout_file_state(models)
    except RolloutError as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from error
    served = models.served
    return RolloutFile(current=state.current, candidate=state.candidate, candidate_share=state.candidate_share,
                       previous=state.previous, updated_at=state.updated_at, served_version=served.current.version,
                       served_candidate_version=served.candidate.version if served.candidate else None)


@router.post("/rollout/{action}", response_model=ReloadResult, max_body_size=SMALL_BODY_LIMIT,
             summary="Promote the candidate, or roll back to the previous models")
def rollout_action(admin: AdminUser, models: LoadedModels, action: Literal["promote", "rollback"]) -> ReloadResult:
    """promote: the candidate serves every product (the current models are kept for a rollback);
    rollback: the previous models serve again and any candidate stops. 409 when there is nothing to
    promote or roll back to, or when the models cannot be loaded (the rollout file is then restored).
    """
    # A sync route: a rollback loads models (seconds) in the thread pool.
    try:
        served, notified = apply_rollout_action(models, action)
    except (RolloutError, ReloadError) as error:
        raise HTTPException(status.HTTP_409_CONFLICT, f"{action} refused: {error}") from error
    return ReloadResult(current=served.current.version,
                        candidate=served.candidate.version if served.candidate else None,
                        candidate_share=served.candidate_share, other_workers_notified=notified)
