"""The API over real HTTP on loopback: the bearer token (401 without it, for every endpoint,
/metrics included), nd's proportions and tuning changed at run time through the API and
the CLI, and a taken health port as a clear start-up error.

The Controller has no switch (tests/switch_stub.py); a thread runs its serving-loop turns,
so API commands are answered by the loop as in production.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from switch_stub import InMemorySwitch, program

from controller import cli
from controller.admin_api import AdminApi
from controller.app import Controller
from controller.config import Config
from controller.health_control import HealthStartError
from controller.policies.nd import NetworkDispatcher

TOKEN = "s3cret-token-0123456789"


def config(**health) -> Config:
    backends = [{"name": f"b{i}", "id": 10 + i, "port": 2 + i, "mac": f"02:00:00:00:00:1{i}"} for i in range(3)]
    return Config.model_validate({
        "health": health,
        "services": [
            {"name": "web", "id": 1, "mode": "vip", "vip": "10.0.0.100", "port": 80, "policy": "nd",
             "nd": {"proportions": [1, 0, 0, 0], "smoothing": 0.5}, "backends": backends},
            {"name": "dns", "id": 2, "mode": "vip", "vip": "10.0.0.53", "port": 53, "protocol": "udp",
             "backends": [{"name": "d0", "id": 20, "port": 6, "mac": "02:00:00:00:00:20"}]}]})


@contextmanager
def serving(tmp_path, token: str | None) -> Iterator[tuple[Controller, str]]:
    """A primary Controller whose loop turns in a thread, and its API on 127.0.0.1 (a free port)."""
    controller = Controller(config(), program(tmp_path))
    switch = InMemorySwitch(controller.info)
    controller.flows.writer = switch
    controller._set_role("primary")
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            controller._turn(switch, None)
            time.sleep(0.002)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    api = AdminApi(controller, "127.0.0.1", 0, token=token)
    api.start()
    try:
        yield controller, api.url
    finally:
        api.stop()
        stop.set()
        thread.join(timeout=5)


def request(url: str, body: dict | None = None, authorization: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    req = urllib.request.Request(url, data=json.dumps(body).encode() if body is not None else None,
                                 headers=headers, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# ---- the token ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path, body", [("/api/status", None), ("/metrics", None), ("/api/flows", None),
                                        ("/api/services/web/nd", None), ("/api/backends/b1/quiesce", {}),
                                        ("/api/services/web/nd", {"smoothing": 0.9})])
def test_without_the_right_token_every_endpoint_answers_401(tmp_path, path, body):
    with serving(tmp_path, TOKEN) as (controller, url):
        for authorization in (None, "", f"Bearer {TOKEN[:-1]}", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}"):
            code, answer = request(url + path, body, authorization)
            assert code == 401, (path, authorization)
            assert b"Authorization: Bearer" in answer
        code, _ = request(url + path, body, f"Bearer {TOKEN}")
        assert code == 200, path
        nd = controller.ring_updater.policies[1]
        assert isinstance(nd, NetworkDispatcher)
        assert nd.smoothing == (0.9 if body == {"smoothing": 0.9} else 0.5), "only the authorised request acted"


def test_without_a_token_configured_loopback_needs_none(tmp_path):
    with serving(tmp_path, None) as (_, url):
        assert request(url + "/api/status")[0] == 200
        assert request(url + "/api/status", authorization="Bearer anything")[0] == 200


def test_the_cli_sends_the_token_from_a_file_or_the_environment(tmp_path, monkeypatch, capsys):
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    with serving(tmp_path, TOKEN) as (_, url):
        monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
        assert cli_main("status", "--json", "--api", url) == 1
        assert "unauthorised" in capsys.readouterr().err
        assert cli_main("status", "--json", "--api", url, "--token-file", str(token_file)) == 0
        assert json.loads(capsys.readouterr().out)["role"] == "primary"
        monkeypatch.setenv(cli.TOKEN_ENV, TOKEN)
        assert cli_main("nd", "web", "--api", url) == 0
        assert json.loads(capsys.readouterr().out)["smoothing"] == 0.5
        assert cli_main("flows", "--api", url, "--token-file", str(tmp_path / "missing")) == 1
        assert "cannot read the token file" in capsys.readouterr().err


def cli_main(*argv: str) -> int:
    from controller.__main__ import main
    return main(list(argv))


# ---- nd at run time ----------------------------------------------------------------------------

def test_nd_proportions_and_tuning_change_at_run_time(tmp_path):
    with serving(tmp_path, None) as (controller, url):
        nd = controller.ring_updater.policies[1]
        assert isinstance(nd, NetworkDispatcher) and nd.proportions == (1, 0, 0, 0)   # from the config
        code, body = request(url + "/api/services/web/nd")
        assert code == 200 and json.loads(body)["proportions"] == {"active": 1, "new": 0, "host": 0, "forward": 0}

        code, body = request(url + "/api/services/web/nd",
                             {"proportions": [0, 0, 1, 1], "sensitivity": 0.1, "host_limit": 0.8, "cooldown_s": 5})
        assert code == 200, body
        assert (nd.proportions, nd.sensitivity, nd.host_limit, nd.cooldown_s) == ((0, 0, 1, 1), 0.1, 0.8, 5)
        assert json.loads(body)["host_limit"] == 0.8

        for bad, message in (({"proportions": [0, 0, 0, 0]}, "four numbers"),
                             ({"proportions": [1, 1, 1, 1], "smoothing": 0}, "smoothing must be in"),
                             ({"weights": [1, 1, 1, 1]}, "Extra inputs"),
                             ({"proportions": [1, 1]}, "proportions")):
            code, body = request(url + "/api/services/web/nd", bad)
            assert code == 400 and message in json.loads(body)["error"], (bad, body)
        assert (nd.proportions, nd.smoothing) == ((0, 0, 1, 1), 0.5), "a refused change changes nothing"

        assert request(url + "/api/services/web/nd", {"clear_host_limit": True})[0] == 200
        assert nd.host_limit is None
        code, body = request(url + "/api/services/dns/nd", {"smoothing": 0.5})
        assert code == 400 and "runs policy 'round_robin', not nd" in json.loads(body)["error"]
        code, body = request(url + "/api/services/mail/nd")
        assert code == 400 and "no service named 'mail'" in json.loads(body)["error"]


def test_the_nd_command_changes_what_the_next_poll_uses(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(cli.TOKEN_ENV, raising=False)
    with serving(tmp_path, None) as (controller, url):
        assert cli_main("nd", "web", "--api", url, "--proportions", "0", "1", "0", "0", "--smoothing", "1",
                        "--host-limit", "0.9") == 0
        out = json.loads(capsys.readouterr().out)
        assert out["proportions"] == {"active": 0, "new": 1, "host": 0, "forward": 0} and out["smoothing"] == 1
        nd = controller.ring_updater.policies[1]
        assert isinstance(nd, NetworkDispatcher) and (nd.proportions, nd.host_limit) == ((0, 1, 0, 0), 0.9)
        assert cli_main("nd", "web", "--api", url, "--sensitivity", "-1") == 1
        assert "sensitivity" in capsys.readouterr().err


def test_a_backup_refuses_nd_changes_like_every_command(tmp_path):
    controller = Controller(config(), program(tmp_path))
    controller._set_role("backup")
    # A backup's loop answers commands with its role (controller/app.py _while_backup).
    future = controller.submit("nd", service="web", change={"smoothing": 0.9})
    controller._while_backup()
    with pytest.raises(ValueError, match="backup, not primary"):
        future.result(timeout=1)
    nd = controller.ring_updater.policies[1]
    assert isinstance(nd, NetworkDispatcher) and nd.smoothing == 0.5


# ---- start-up -------------------------------------------------------------------------------------

def test_a_taken_health_port_is_a_clear_start_up_error(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        cfg = config(listen_port=port, agents=[{"backend": "b0"}])
        controller = Controller(cfg, program(tmp_path))
        with pytest.raises(HealthStartError, match=rf"UDP 127\.0\.0\.1:{port}: .*\[health\] listen_address"):
            controller.health.start()
        controller.health.stop()


def test_without_agents_no_port_is_opened(tmp_path):
    controller = Controller(config(), program(tmp_path))
    controller.health.start()
    try:
        assert controller.health.cluster.listener is None
    finally:
        controller.health.stop()
