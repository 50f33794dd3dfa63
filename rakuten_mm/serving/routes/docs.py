"""GET /docs (Swagger UI) and GET /redoc (ReDoc), both from files the app serves itself: they work offline."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rakuten_mm.serving.web import STATIC_URL, TEMPLATES

router = APIRouter(include_in_schema=False)


def docs_page(request: Request, template: str) -> HTMLResponse:
    """One of the two documentation pages, pointed at this app's OpenAPI document."""
    app = request.app
    context = {"title": app.title, "openapi_url": app.openapi_url, "static": STATIC_URL}
    return TEMPLATES.TemplateResponse(request, template, context)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI: try the endpoints (Authorize with a user name and password first)."""
    return docs_page(request, "swagger.html")


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc: the reference documentation of every endpoint."""
    return docs_page(request, "redoc.html")
