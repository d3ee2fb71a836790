"""The interactive API docs (``/docs``), served whole by the application.

FastAPI's default ``/docs`` loads swagger-ui and its favicon from a CDN, so on a clinic's
offline network it showed a blank page. Here the swagger-ui files are vendored
(``static/swagger-ui``: swagger-ui-dist 5.35.0, Apache-2.0, which renders OpenAPI 3.1) and
served under ``/static/swagger-ui``; ReDoc (CDN only) is off.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

SWAGGER = Path(__file__).parent / "static" / "swagger-ui"
PREFIX = "/static/swagger-ui"


def install(app: FastAPI) -> None:
    """``/docs`` and its assets; the app must be built with ``docs_url=None``."""
    app.mount(PREFIX, StaticFiles(directory=SWAGGER), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - API",
            swagger_js_url=f"{PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{PREFIX}/favicon-32x32.png")
