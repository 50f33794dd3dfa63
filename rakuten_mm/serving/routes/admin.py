"""POST /admin/reload: load the models again from disk, for admin users only."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status

from rakuten_mm.serving.config import SMALL_BODY_LIMIT
from rakuten_mm.serving.deployment import ReloadError
from rakuten_mm.serving.deps import AdminUser, LoadedModels
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
