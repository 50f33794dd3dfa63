"""The web console and the offline API documentation: Jinja2 templates and static files."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
STATIC_URL = "/static"
TEMPLATES = Jinja2Templates(directory=WEB_DIR / "templates")
# Swagger UI and ReDoc bundles, pinned in requirements-serve.txt: no CDN, and no copy in this repository.
DOCS_ASSETS_URL = f"{STATIC_URL}/docs-ui"
DOCS_ASSETS_PACKAGE = ("fastapi_offline", "static")


def mount_static(app: FastAPI) -> None:
    """Serve the console's scripts and styles, and the packaged Swagger UI and ReDoc, under /static."""
    # The more specific mount first: Starlette tries mounts in order.
    app.mount(DOCS_ASSETS_URL, StaticFiles(packages=[DOCS_ASSETS_PACKAGE]), name="docs-assets")
    app.mount(STATIC_URL, StaticFiles(directory=WEB_DIR / "static"), name="static")
