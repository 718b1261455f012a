"""The controller's HTTP endpoint: Prometheus metrics and a small JSON API for the CLI.

    GET  /metrics                       Prometheus text format
    GET  /api/status                    roles, flows, per-backend load, ring shares, health, SA2C
    GET  /api/flows?limit=N             installed flows
    POST /api/backends                  {"service": ..., "backend": {name, id, port, mac, ...}}
    POST /api/backends/NAME/ACTION      ACTION: quiesce, drain, activate, remove
    GET  /api/services/NAME/nd          the service's nd settings in force
    POST /api/services/NAME/nd          {"proportions": [active, new, host, forward], "smoothing": ...,
                                         "sensitivity": ..., "host_limit": ..., "cooldown_s": ...,
                                         "clear_host_limit": true}; fields left out stay

Requests are handed to the controller's serving loop and answered when it has done them.
Bound to loopback by default: anyone who reaches it can change the cluster. With a token
([api] token or token_file; required by the configuration when the address is not
loopback), every request, /metrics included, must carry `Authorization: Bearer <token>`;
others get 401.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from concurrent.futures import TimeoutError as FutureTimeout
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from controller.app import Controller

log = logging.getLogger(__name__)
COMMAND_TIMEOUT_S = 10.0
ACTIONS = ("quiesce", "drain", "activate", "remove")
SWITCH_ACTIONS = ("out", "in")


class AdminApi:
    def __init__(self, controller: Controller, address: str, port: int, token: str | None = None) -> None:
        """`token`: the bearer token every request must carry (None: no check; loopback only,
        which controller/config.py's Api enforces for the configured address)."""
        from controller.metrics import make_registry
        self.controller = controller
        self.registry = make_registry(controller.status)
        self._expected = f"Bearer {token}".encode() if token is not None else None
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if api._authorised(self):
                    api._get(self)

            def do_POST(self) -> None:
                if api._authorised(self):
                    api._post(self)

            def log_message(self, fmt: str, *args: Any) -> None:
                log.debug("api: " + fmt, *args)

        self.server = ThreadingHTTPServer((address, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="admin-api", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        assert isinstance(host, str)   # getsockname() of an AF_INET socket; the stubs allow bytes too
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ---- handlers ------------------------------------------------------------------------

    def _authorised(self, req: BaseHTTPRequestHandler) -> bool:
        if self._expected is None:
            return True
        given = (req.headers.get("Authorization") or "").strip().encode()
        if hmac.compare_digest(given, self._expected):   # constant time: no hint by timing
            return True
        log.warning("api: %s %s from %s refused: %s", req.command, req.path, req.client_address[0],
                    "no Authorization header" if not given else "wrong token")
        req.close_connection = True
        _reply(req, 401, json.dumps({"error": "unauthorised: send Authorization: Bearer <token> "
                                               "([api] token or token_file)"}).encode(),
               "application/json", {"WWW-Authenticate": 'Bearer realm="p4dispatch"'})
        return False

    def _get(self, req: BaseHTTPRequestHandler) -> None:
        url = urlparse(req.path)
        if url.path == "/metrics":
            _reply(req, 200, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        elif url.path == "/api/status":
            _json(req, 200, self.controller.status().model_dump(mode="json"))
        elif url.path == "/api/flows":
            limit = int(parse_qs(url.query).get("limit", ["100"])[0])
            self._command(req, "flows", limit=limit)
        elif (service := _nd_service(url.path)) is not None:
            self._command(req, "nd", service=service, change={})
        else:
            _json(req, 404, {"error": f"no such endpoint: {url.path}"})

    def _post(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlparse(req.path).path.strip("/").split("/")
        length = int(req.headers.get("Content-Length") or 0)
        try:
            body = json.loads(req.rfile.read(length) or b"{}")
        except json.JSONDecodeError as exc:
            _json(req, 400, {"error": f"request body is not JSON: {exc}"})
            return
        if parts == ["api", "backends"]:
            self._command(req, "add", service=body.get("service"), backend=body.get("backend"))
        elif len(parts) == 4 and parts[:2] == ["api", "backends"] and parts[3] in ACTIONS:
            self._command(req, parts[3], name=parts[2])
        elif len(parts) == 4 and parts[:2] == ["api", "switches"] and parts[3] in SWITCH_ACTIONS:
            # Several switches: out of the ECMP group on purpose, or back in (after the freeze).
            self._command(req, f"switch_{parts[3]}", name=parts[2])
        elif (service := _nd_service(urlparse(req.path).path)) is not None:
            if not isinstance(body, dict):
                _json(req, 400, {"error": "the body is a JSON object of the settings to change"})
                return
            self._command(req, "nd", service=service, change=body)
        else:
            _json(req, 404, {"error": f"no such endpoint: POST {req.path} "
                                      f"(actions: {', '.join(ACTIONS)})"})

    def _command(self, req: BaseHTTPRequestHandler, command: str, **args: Any) -> None:
        future = self.controller.submit(command, **args)
        try:
            _json(req, 200, future.result(timeout=COMMAND_TIMEOUT_S))
        except FutureTimeout:
            _json(req, 504, {"error": f"the controller did not answer within {COMMAND_TIMEOUT_S:.0f} s"})
        except ValidationError as exc:
            _json(req, 400, {"error": "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                                for e in exc.errors())})
        except (ValueError, KeyError, TypeError) as exc:
            _json(req, 400, {"error": str(exc)})
        except Exception as exc:   # a switch error: the operator must see it, the API stays up
            _json(req, 502, {"error": f"{type(exc).__name__}: {exc}"})


def _nd_service(path: str) -> str | None:
    """NAME of /api/services/NAME/nd, else None."""
    parts = path.strip("/").split("/")
    if len(parts) == 4 and parts[:2] == ["api", "services"] and parts[3] == "nd" and parts[2]:
        return parts[2]
    return None


def _reply(req: BaseHTTPRequestHandler, code: int, body: bytes, content_type: str,
           headers: dict[str, str] | None = None) -> None:
    req.send_response(code)
    req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        req.send_header(name, value)
    req.end_headers()
    req.wfile.write(body)


def _json(req: BaseHTTPRequestHandler, code: int, payload: Any) -> None:
    _reply(req, code, json.dumps(payload).encode(), "application/json")
