"""FastAPI dependencies: the served models, the authenticated user and the admin user."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.security import InvalidTokenError, decode_access_token
from rakuten_mm.serving.deployment import Deployment
from rakuten_mm.serving.users import UserStore

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="token")


def unauthorized(detail: str) -> HTTPException:
    """A 401 that tells the client to come back with a bearer token."""
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


def get_settings(request: Request) -> Settings:
    """The settings the app was built with."""
    return request.app.state.settings


def get_user_store(request: Request) -> UserStore:
    """The users loaded at startup."""
    return request.app.state.users


def get_loaded_deployment(request: Request) -> Deployment:
    """The models the lifespan loaded, as they are."""
    deployment = request.app.state.deployment
    if deployment is None:  # only between process start and the end of the lifespan startup
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "models are not loaded yet")
    return deployment


def get_deployment(request: Request) -> Deployment:
    """The models the lifespan loaded, reloaded first if the rollout file changed."""
    deployment = get_loaded_deployment(request)
    # A sync dependency: a reload (seconds) runs in the thread pool, not on the event loop.
    deployment.refresh_if_changed()
    return deployment


def get_current_user(request: Request, token: Annotated[str, Depends(oauth2_scheme)]) -> str:
    """The name of the user a valid, unexpired token was issued to; 401 otherwise."""
    try:
        username = decode_access_token(token, request.app.state.settings.signing_key)
    except InvalidTokenError as error:
        raise unauthorized(f"invalid token: {error}") from error
    if request.app.state.users.get(username) is None:
        # A removed or disabled user's tokens stop working at once, not when they expire.
        raise unauthorized("invalid token: unknown or disabled user")
    request.state.user = username  # read by the rate limiter and the request log
    return username


def get_admin_user(request: Request, username: Annotated[str, Depends(get_current_user)]) -> str:
    """The authenticated user when it has the admin flag; 403 otherwise."""
    user = request.app.state.users.get(username)
    if user is None or not user.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this endpoint is for admin users")
    return username


CurrentUser = Annotated[str, Depends(get_current_user)]
AdminUser = Annotated[str, Depends(get_admin_user)]
Models = Annotated[Deployment, Depends(get_deployment)]
LoadedModels = Annotated[Deployment, Depends(get_loaded_deployment)]
