"""The web console and the offline API documentation: Jinja2 templates and static files, all in this folder."""

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

WEB_DIR = Path(__file__).parent
STATIC_URL = "/static"
TEMPLATES = Jinja2Templates(directory=WEB_DIR / "templates")


def mount_static(app: FastAPI) -> None:
    """Serve the console's scripts and styles and the vendored Swagger UI and ReDoc under /static."""
    app.mount(STATIC_URL, StaticFiles(directory=WEB_DIR / "static"), name="static")
