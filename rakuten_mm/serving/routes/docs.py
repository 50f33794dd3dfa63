"""GET /docs (Swagger UI) and GET /redoc (ReDoc), both from files the app serves itself: they work offline."""

from functools import cache
from importlib.resources import files

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from rakuten_mm.serving.web import DOCS_ASSETS_PACKAGE, DOCS_ASSETS_URL, STATIC_URL, TEMPLATES

router = APIRouter(include_in_schema=False)
# ReDoc's sidebar footer loads this logo whatever its options: the one request its bundle makes off the server.
REDOC_LOGO_URL = b'"https://cdn.redoc.ly/redoc/logo-mini.svg"'


def docs_page(request: Request, template: str) -> HTMLResponse:
    """One of the two documentation pages, pointed at this app's OpenAPI document."""
    app = request.app
    context = {"title": app.title, "openapi_url": app.openapi_url, "static": STATIC_URL, "docs_assets": DOCS_ASSETS_URL}
    return TEMPLATES.TemplateResponse(request, template, context)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the endpoints (Authorize with a user name and password first)."""
    return docs_page(request, "swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the reference documentation of every endpoint."""
    return docs_page(request, "redoc.html")


@cache
def redoc_bundle() -> bytes:
    """The packaged ReDoc bundle with its footer logo replaced by an empty image (the image then hides itself)."""
    package, folder = DOCS_ASSETS_PACKAGE
    return (files(package) / folder / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO_URL, b'"data:,"')


# A route, so that it is matched before the static mount that serves the package's other files.
@router.get(f"{DOCS_ASSETS_URL}/redoc.standalone.js")
def redoc_script() -> Response:
    """ReDoc's script, kept on this server (see redoc_bundle)."""
    return Response(redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"})
