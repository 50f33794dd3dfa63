"""FastAPI dependencies: the loaded prediction service and the authenticated user."""

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from rakuten_mm.serving.config import Settings
from rakuten_mm.serving.security import InvalidTokenError, decode_access_token
from rakuten_mm.serving.service import PredictionService
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


def get_service(request: Request) -> PredictionService:
    """The service whose models the lifespan loaded."""
    service = request.app.state.service
    if service is None:  # only between process start and the end of the lifespan startup
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "models are not loaded yet")
    return service


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


CurrentUser = Annotated[str, Depends(get_current_user)]
Service = Annotated[PredictionService, Depends(get_service)]
