"""The HTTP side of ``maya review``: a Starlette app over a :class:`~maya.review.session.ReviewSession`,
served by uvicorn on 127.0.0.1 only (both come with Prefect's server).

Who may drive it: whoever holds the session's random token (``secrets.token_urlsafe``, 32 bytes), printed
in the URL. The first load carries it as ``?token=``; the answer sets it as an HttpOnly, SameSite=Strict
cookie and redirects to the bare URL, so the token leaves the address bar. Every GET needs the cookie (or
the ``X-Maya-Token`` header); every POST needs the header, which a page of another origin cannot send, so a
forged form or link cannot make decisions or move files (CSRF). Anything else gets 403. The Host header
must name this server (127.0.0.1 / localhost and its port), so a DNS-rebinding page cannot reach it either.

Routes: ``/`` the page; ``/api/state``; ``POST /api/decision``; ``/preview/{group}/{index}`` (``?full=1``);
``POST /api/plan`` (dry run), ``/api/act``, ``/api/undo``. Errors of the user's request are 400 with
``{"error": message}``; a store held by another process is 409.

:func:`serve` runs until SIGINT or SIGTERM, then closes the socket and returns (the CLI exits 0).
"""

from __future__ import annotations

import secrets
import signal
import socket
import threading
from contextlib import contextmanager
from typing import Callable

from maya.errors import MayaError, MayaUsageError
from maya.review.session import ReviewSession

COOKIE = "maya_review_token"
HEADER = "x-maya-token"


class PortError(MayaUsageError, OSError):
    """The port asked for cannot be listened on."""


def create_app(session: ReviewSession, token: str, port: int):
    """The ASGI app for ``session``; only requests with ``token`` and a Host of 127.0.0.1/localhost:``port``
    get past the guard."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
    from starlette.routing import Route

    from maya.review.page import render_page
    from maya.store import StoreLockedError

    nonce = secrets.token_urlsafe(16)
    security = {
        "Content-Security-Policy": f"default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
                                   f"script-src 'nonce-{nonce}'; connect-src 'self'; base-uri 'none'; "
                                   f"form-action 'none'; frame-ancestors 'none'",
        "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }

    async def call(fn: Callable, *args, **kw):
        """Run a session call in a thread; user errors become 400 (409 for a locked store)."""
        try:
            return JSONResponse(await run_in_threadpool(fn, *args, **kw))
        except StoreLockedError as e:
            return JSONResponse({"error": str(e)}, status_code=409)
        except MayaError as e:
            return JSONResponse({"error": str(e)}, status_code=400)

    async def body(request: Request) -> dict:
        try:
            data = await request.json()
        except ValueError:
            data = None
        return data if isinstance(data, dict) else {}

    async def page(request: Request):
        if "token" in request.query_params:  # first load: keep the token in a cookie, drop it from the URL
            r = RedirectResponse("/", status_code=303)
            r.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
            return r
        return HTMLResponse(render_page(token, nonce))

    async def state(request: Request):
        return await call(session.snapshot)

    async def decision(request: Request):
        d = await body(request)
        try:
            group_id = int(d.get("group_id"))
        except (TypeError, ValueError):
            return JSONResponse({"error": "group_id must be a number"}, status_code=400)
        return await call(session.decide, group_id, str(d.get("decision")), d.get("path"),
                          withdraw=bool(d.get("withdraw")))

    async def preview(request: Request):
        try:
            group_id, index = int(request.path_params["group"]), int(request.path_params["index"])
        except ValueError:
            return PlainTextResponse("not found", status_code=404)
        try:
            data = await run_in_threadpool(session.preview, group_id, index, full=request.query_params.get("full") == "1")
        except MayaError as e:
            return PlainTextResponse(str(e), status_code=404)
        if data is None:
            return PlainTextResponse("this file cannot be read now", status_code=404)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=60"})

    async def plan(request: Request):
        return await call(session.plan, str((await body(request)).get("kind")))

    async def act(request: Request):
        d = await body(request)
        return await call(session.act, str(d.get("kind")), str(d.get("plan_id")))

    async def undo(request: Request):
        try:
            action_id = int((await body(request)).get("action_id"))
        except (TypeError, ValueError):
            return JSONResponse({"error": "action_id must be a number"}, status_code=400)
        return await call(session.undo, action_id)

    app = Starlette(routes=[
        Route("/", page), Route("/api/state", state), Route("/api/decision", decision, methods=["POST"]),
        Route("/preview/{group}/{index}", preview), Route("/api/plan", plan, methods=["POST"]),
        Route("/api/act", act, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
    ])
    return _Guard(app, token, port, security)


class _Guard:
    """ASGI middleware: the Host check, the token check (see the module docstring), security headers."""

    def __init__(self, app, token: str, port: int, headers: dict):
        self.app, self.token, self.headers = app, token.encode(), headers
        self.hosts = {f"127.0.0.1:{port}".encode(), f"localhost:{port}".encode()}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        why = self._refused(scope, headers)
        if why:
            return await _plain(send, 403, f"forbidden: {why}")
        extra = [(k.encode(), v.encode()) for k, v in self.headers.items()]

        async def with_headers(message):
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in extra if k.lower() not in present]
            await send(message)

        await self.app(scope, receive, with_headers)

    def _refused(self, scope, headers: dict) -> str | None:
        if headers.get(b"host") not in self.hosts:
            return "this server answers only as 127.0.0.1 or localhost"
        given = headers.get(HEADER.encode())
        if scope["method"] not in ("GET", "HEAD"):
            return None if given and secrets.compare_digest(given, self.token) else \
                "changes need the session token in the X-Maya-Token header"
        from urllib.parse import parse_qs

        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        candidates = [given, *(v.encode() for v in query.get("token", []))]
        for part in headers.get(b"cookie", b"").split(b";"):
            name, _, value = part.strip().partition(b"=")
            if name == COOKIE.encode():
                candidates.append(value)
        if any(c and secrets.compare_digest(c, self.token) for c in candidates):
            return None
        return "open the URL `maya review` printed (it carries the session token)"


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def listen(port: int) -> socket.socket:
    """A socket bound to 127.0.0.1:``port`` (0: a free port). Raises :class:`PortError`."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise PortError(f"cannot listen on 127.0.0.1:{port}: {e.strerror or e} (choose another --port, "
                        f"or 0 for any free one)") from None
    sock.listen(128)
    return sock


def serve(session: ReviewSession, *, port: int = 0, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve ``session`` on 127.0.0.1:``port`` until SIGINT (Ctrl-C) or SIGTERM; ``on_ready(url)`` is called
    once the server accepts connections, with the URL that carries the token. Returns after a clean stop."""
    import uvicorn

    sock = listen(port)
    port = sock.getsockname()[1]
    token = secrets.token_urlsafe(32)
    url = f"http://127.0.0.1:{port}/?token={token}"
    config = uvicorn.Config(create_app(session, token, port), log_level="warning", access_log=False,
                            lifespan="off", timeout_graceful_shutdown=3)
    server = _Server(config)
    if on_ready is not None:
        threading.Thread(target=_when_started, args=(server, on_ready, url), daemon=True).start()
    # uvicorn listens for signals only while it serves; before and after that a signal also means "stop"
    # (a SIGTERM in those moments would otherwise kill the process instead of ending it cleanly)
    main = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, lambda *_: setattr(server, "should_exit", True))
           for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for s, h in old.items():
            signal.signal(s, h)


class _Server:
    """uvicorn's server, except that a signal ends it quietly: uvicorn re-raises the signal it caught once it
    has shut down (so the process would die of SIGTERM or raise KeyboardInterrupt); here it returns."""

    def __new__(cls, config):
        import uvicorn

        class Server(uvicorn.Server):
            @contextmanager
            def capture_signals(self):
                if threading.current_thread() is not threading.main_thread():
                    yield
                    return
                handled = [signal.SIGINT, signal.SIGTERM]
                old = {s: signal.signal(s, self.handle_exit) for s in handled}
                try:
                    yield
                finally:
                    for s, h in old.items():
                        signal.signal(s, h)

        return Server(config)


def _when_started(server, on_ready: Callable[[str], None], url: str) -> None:
    import time

    while not server.started and not server.should_exit:
        time.sleep(0.02)
    if server.started:
        on_ready(url)
