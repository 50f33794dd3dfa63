"""GET /console: the web console of the catalogue administrators (its scripts call the JSON API)."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from rakuten_mm.serving.config import IMAGE_FORMATS
from rakuten_mm.serving.web import STATIC_URL, TEMPLATES

router = APIRouter(include_in_schema=False)


def console_limits(request: Request) -> dict:
    """The limits the console checks before sending, so that it can say what is wrong in French."""
    settings = request.app.state.settings
    return {
        "max_upload_bytes": settings.max_upload_bytes,
        "batch_rows": min(settings.console_batch_rows, settings.max_batch_size),
        "image_types": ",".join(f"image/{name.lower()}" for name in IMAGE_FORMATS),
    }


@router.get("/console", response_class=HTMLResponse)
def console(request: Request) -> HTMLResponse:
    """The single page of the console: sign-in, one product, a file, the service status."""
    context = {"static": STATIC_URL, "limits": console_limits(request)}
    return TEMPLATES.TemplateResponse(request, "console.html", context)
