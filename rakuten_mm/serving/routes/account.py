"""GET /me: who the token belongs to (the console shows the admin actions to admins only)."""

from fastapi import APIRouter, Request

from rakuten_mm.serving.deps import CurrentUser, unauthorized
from rakuten_mm.serving.console_schemas import UserInfo

router = APIRouter(tags=["auth"], responses={401: {"description": "Missing, invalid or expired token"}})


@router.get("/me", response_model=UserInfo, summary="The signed-in user and its admin flag")
def me(request: Request, username: CurrentUser) -> UserInfo:
    """The user name of the token and whether it may call the admin endpoints."""
    user = request.app.state.users.get(username)
    if user is None:  # removed between the token check and now
        raise unauthorized("invalid token: unknown or disabled user")
    return UserInfo(username=username, admin=user.admin)
