"""Password hashing (bcrypt) and access tokens (JWT, HS256 only)."""

from datetime import UTC, datetime, timedelta

import bcrypt
import jwt

# The one signing algorithm the API issues and accepts: a token that names another one
# (including "none") is refused before its signature is even looked at.
ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "sub"]
# bcrypt reads at most 72 bytes of a password; longer ones are refused rather than truncated.
MAX_PASSWORD_BYTES = 72


class InvalidTokenError(ValueError):
    """The token is malformed, expired, tampered with or signed with another algorithm."""


def hash_password(password: str, rounds: int = 12) -> str:
    """A bcrypt hash of the password (cost 2**rounds), as text for the users file."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        raise ValueError(f"password is {len(encoded)} bytes long; bcrypt reads at most {MAX_PASSWORD_BYTES}")
    return bcrypt.hashpw(encoded, bcrypt.gensalt(rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    """True when the password matches the bcrypt hash; False for a malformed hash or password."""
    encoded = password.encode("utf-8")
    if len(encoded) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(encoded, password_hash.encode("ascii"))
    # A hand-edited users file can hold anything; a bad hash is a failed login, not a 500.
    except (ValueError, UnicodeEncodeError):
        return False


def create_access_token(subject: str, secret: str, expires_minutes: float, now: datetime | None = None) -> str:
    """A signed JWT naming the user (sub), with issue (iat) and expiry (exp) times."""
    issued = now or datetime.now(UTC)
    claims = {"sub": subject, "iat": issued, "exp": issued + timedelta(minutes=expires_minutes)}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> str:
    """The user name of a valid token; InvalidTokenError for anything else."""
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], options={"require": REQUIRED_CLAIMS})
    except jwt.PyJWTError as error:
        raise InvalidTokenError(str(error)) from error
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise InvalidTokenError("token subject must be a non-empty string")
    return subject
