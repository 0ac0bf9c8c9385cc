"""The dashboard page (docs/reports.md, "Dashboard"): one HTML page and its script and style,
shipped in the package (``services/static``, package data) and served here, so it works with
no network beyond this service. The page holds no data: it calls the report endpoints with
the API key the user gives it, so it needs no authentication of its own."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from litestar import MediaType, Response, get
from litestar.datastructures import CacheControlHeader

from services.errors import NotFound

STATIC = Path(__file__).resolve().parent.parent / "static"
#: the files the page loads, by name: nothing else under STATIC is served
ASSETS = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}
#: only this origin's own script, style and API: nothing from elsewhere can load or run
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
#: revalidate each time: a new version of the service serves its new script at once
REVALIDATE = CacheControlHeader(no_cache=True)


@cache
def _read(name: str) -> bytes:
    return (STATIC / name).read_bytes()


@get("/dashboard", include_in_schema=False, media_type=MediaType.HTML, cache_control=REVALIDATE)
async def dashboard() -> Response[bytes]:
    # the key may arrive in the URL fragment: no referrer carries the page's address on
    return Response(_read("dashboard.html"), headers={"Content-Security-Policy": CSP, "Referrer-Policy": "no-referrer"})


@get("/dashboard/assets/{name:str}", include_in_schema=False, cache_control=REVALIDATE)
async def dashboard_asset(name: str) -> Response[bytes]:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no dashboard asset {name!r}")
    return Response(_read(name), media_type=media_type)
