"""The [health] section: defaults, clear errors, names resolved against the services, and
its inclusion in controller/config.py's Config."""

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from controller.config import Config, load_config
from controller.health.config import HealthConfig

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "sample.toml"
KEY = "0123456789abcdef0123456789abcdef\n"


def health(text: str) -> HealthConfig:
    return HealthConfig.model_validate(tomllib.loads(text).get("health", {}))


def test_defaults_follow_sara():
    h = HealthConfig()
    s = h.monitor_settings()
    assert (s.period_s, s.missed_limit, s.recovery_periods) == (1.0, 3, 3)
    assert (h.listen_address, h.listen_port, h.key()) == ("127.0.0.1", 9190, None)
    assert h.stale_after_s == 3.0
    assert h.down_entries_for("vip") == "delete" and h.down_entries_for("capture") == "keep"
    assert HealthConfig(down_entries="keep").down_entries_for("vip") == "keep"


def test_plan_resolves_names_to_ids():
    services = load_config(SAMPLE).services
    plan = health("""
        [health]
        [[health.agents]]
        backend = "web1"
        [[health.agents]]
        backend = "web2"
        host_id = 7
        [[health.advisors]]
        service = "web"
        backends = ["web2", "web3"]
        kind = "http"
        path = "/obj/0"
        timeout_s = 0.5
        [[health.advisors]]
        service = "web"
        kind = "tcp"
        port = 8080
    """).plan(services)
    assert plan.hosts == {10: (10,), 7: (11,)}
    assert [(b, a.name, a.address, a.port, a.path) for b, a in plan.advisors] == [
        (11, "http:80/obj/0", "10.0.2.11", 80, "/obj/0"), (12, "http:80/obj/0", "10.0.2.12", 80, "/obj/0"),
        (10, "tcp:8080", "10.0.2.10", 8080, "/"), (11, "tcp:8080", "10.0.2.11", 8080, "/"),
        (12, "tcp:8080", "10.0.2.12", 8080, "/")]
    assert plan.advisor_names[11] == ("http:80/obj/0", "tcp:8080")
    assert plan.down_entries == {1: "delete", 2: "keep"}


@pytest.mark.parametrize("text, message", [
    ('[[health.agents]]\nbackend = "web9"', "no backend named 'web9'"),
    ('[[health.advisors]]\nservice = "mail"\nkind = "tcp"', "no service named 'mail'"),
    ('[[health.advisors]]\nservice = "web"\nkind = "tcp"\nbackends = ["web7"]', r"has no backends \['web7'\]"),
    ('[[health.advisors]]\nservice = "tap"\nkind = "tcp"', "has no port; give the advisor one"),
])
def test_plan_errors_name_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        health("[health]\n" + text).plan(load_config(SAMPLE).services)


@pytest.mark.parametrize("fields, message", [
    ({"listen_address": "0.0.0.0"}, "needs `key_file`"),
    ({"listen_address": "localhost"}, "not an IP address"),
    ({"key_file": "/nonexistent/key"}, "cannot read the health key"),
    ({"period_s": 0.05}, "greater than or equal to 0.1"),
    ({"missed_limit": 0}, "greater than or equal to 1"),
    ({"advisors": [{"service": "web", "kind": "tcp", "timeout_s": 2.0}]}, "must not exceed period_s"),
    ({"advisors": [{"service": "web", "kind": "icmp"}]}, "'tcp' or 'http'"),
    ({"advisors": [{"service": "web", "kind": "http", "path": "health"}]}, "should match pattern"),
    ({"agents": [{"backend": "web1"}, {"backend": "web1"}]}, r"repeated: \['web1'\]"),
    ({"hearbeat": 1}, "Extra inputs are not permitted"),
])
def test_clear_errors(fields, message):
    with pytest.raises(ValidationError, match=message):
        HealthConfig.model_validate(fields)


def test_a_key_allows_listening_beyond_loopback(tmp_path):
    key = tmp_path / "health.key"
    key.write_text(KEY)
    h = HealthConfig(listen_address="0.0.0.0", key_file=key)
    assert h.key() == KEY.strip().encode()
    assert HealthConfig(listen_address="0.0.0.0", allow_unsigned=True).key() is None
    key.write_text("short")
    with pytest.raises(ValidationError, match="at least 16"):
        HealthConfig(key_file=key)


def test_included_in_the_configuration_file():
    """controller/config.py's Config has the section and checks its names against the services."""
    data = tomllib.loads(SAMPLE.read_text())
    data["health"] |= {"period_s": 0.5, "agents": [{"backend": "web3"}]}
    config = Config.model_validate(data)
    assert config.health.period_s == 0.5 and config.health.plan(config.services).hosts == {12: (12,)}
    data["health"]["agents"][0]["backend"] = "web4"
    with pytest.raises(ValidationError, match="no backend named 'web4'"):
        Config.model_validate(data)
