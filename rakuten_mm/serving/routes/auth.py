"""POST /token: the OAuth2 password flow."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.security import OAuth2PasswordRequestForm
from slowapi import Limiter

from rakuten_mm.serving.config import SMALL_BODY_LIMIT, Settings
from rakuten_mm.serving.deps import unauthorized
from rakuten_mm.serving.schemas import Token
from rakuten_mm.serving.security import create_access_token

TOKEN_ERRORS = {401: {"description": "Wrong user name or password"},
                429: {"description": "Too many attempts from this client"}}


def build_router(limiter: Limiter, settings: Settings) -> APIRouter:
    """The /token route, rate-limited per client address to slow password guessing."""
    router = APIRouter(tags=["auth"])

    @router.post("/token", response_model=Token, responses=TOKEN_ERRORS, max_body_size=SMALL_BODY_LIMIT,
                 summary="Get a bearer token")
    @limiter.limit(settings.token_rate_limit)
    def login(request: Request, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
        """Exchange a user name and password (form fields) for a JWT bearer token."""
        # A sync route: bcrypt's deliberate slowness runs in the thread pool, not the event loop.
        user = request.app.state.users.authenticate(form.username, form.password)
        if user is None:
            raise unauthorized("incorrect user name or password")
        minutes = settings.access_token_expire_minutes
        token = create_access_token(user.username, settings.signing_key, minutes)
        request.state.user = user.username
        return Token(access_token=token, expires_in=minutes * 60)

    return router
