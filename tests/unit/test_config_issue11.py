"""The configuration's issue 11 parts: [health] in Config, per-service `admission` and `nd`,
[visibility], and the API's token; each mistake named by file and field. The sample's
commented-out sections are real fields: uncommented, they load."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from controller.config import Api, ConfigError, is_loopback, load_config
from controller.policies.nd import NetworkDispatcher
from controller.ring_updates import policy_for

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "sample.toml"
TOKEN = "s3cret-token-0123456789"


def edited(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    text = SAMPLE.read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new, 1)
    path = tmp_path / "edited.toml"
    path.write_text(text)
    return path


def uncomment(text: str, first: str, last: str) -> str:
    """The commented lines from the one starting with `first` through the one with `last`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith(first))
    end = next(i for i in range(start, len(lines)) if last in lines[i])
    for i in range(start, end + 1):
        lines[i] = re.sub(r"^(\s*)# ", r"\1", lines[i], count=1)
    return "\n".join(lines) + "\n"


def test_the_sample_has_the_sections_with_their_defaults():
    config = load_config(SAMPLE)
    assert config.health.period_s == 1.0 and config.health.agents == [] and config.health.advisors == []
    assert config.visibility.min_samples == 3
    assert all(s.admission is None and s.nd is None for s in config.services)
    assert config.api.bearer_token() is None


def test_the_sample_s_commented_health_admission_and_nd_sections_load(tmp_path):
    text = SAMPLE.read_text()
    text = uncomment(text, "# [[health.agents]]", "# host_id = 7")
    text = uncomment(text, "# [[health.advisors]]", "# name = ")
    text = uncomment(text, "# [services.admission]", "# refuse_established")
    text = uncomment(text, "# [services.nd]", "# cooldown_s")
    text = text.replace('policy = "fb_est"', 'policy = "nd"', 1)
    path = tmp_path / "all.toml"
    path.write_text(text)
    config = load_config(path)
    web = config.services[0]
    assert [a.backend for a in config.health.agents] == ["web1", "web2"]
    assert config.health.advisors[0].path == "/obj/0" and config.health.advisors[0].port == 443
    assert web.admission is not None and (web.admission.t1, web.admission.c) == (0.70, 0.98)
    assert web.nd is not None and web.nd.host_limit == 0.9
    policy = policy_for(web)
    assert isinstance(policy, NetworkDispatcher)
    assert (policy.proportions, policy.host_limit, policy.cooldown_s) == ((0.3, 0.2, 0.3, 0.2), 0.9, 10)
    assert config.health.plan(config.services).hosts == {10: (10,), 7: (11,)}


@pytest.mark.parametrize("edits, message", [
    ([("[health]\n", "[health]\nperiod = 1\n")], r"health\.period: Extra inputs are not permitted"),
    ([('listen_address = "127.0.0.1"', 'listen_address = "0.0.0.0"')], r"health: listening on 0\.0\.0\.0 needs"),
    ([("# [[health.agents]]\n# backend = \"web1\"", "[[health.agents]]\nbackend = \"web9\"")],
     r"\(top level\): health\.agents: no backend named 'web9'"),
    ([("  # [services.admission]\n  # t1 = 0.70", "  [services.admission]\n  t1 = 0.85")],
     r"services\[0\]\.admission: SA2C needs T1 < T2 < T3 < C"),
    ([("  # [services.nd]\n  # proportions = [0.3, 0.2, 0.3, 0.2]", "  [services.nd]\n  proportions = [0, 0, 0, 0]")],
     r"services\[0\]\.nd\.proportions: nd proportions are four numbers"),
    ([("  # [services.nd]\n  # proportions", "  [services.nd]\n  # proportions")],
     r"services\[0\]: `nd` settings are for policy \"nd\", and this service's policy is 'fb_est'"),
    ([('address = "127.0.0.1"       # /metrics', 'address = "0.0.0.0"       # /metrics')],
     r"api: listening on '0\.0\.0\.0' needs `token` or `token_file`"),
    ([("# token_file = \"/etc/p4dispatch/api.token\"", "token = \"short\"")],
     r"api\.token: String should have at least 16 characters"),
    ([("# token_file = \"/etc/p4dispatch/api.token\"", "token_file = \"/nonexistent/api.token\"")],
     r"api: cannot read the API token file /nonexistent/api\.token"),
    ([("min_samples = 3", "min_samples = 0")], r"visibility\.min_samples: Input should be greater than or equal to 1"),
])
def test_mistakes_name_the_field(tmp_path, edits, message):
    with pytest.raises(ConfigError, match=message):
        load_config(edited(tmp_path, *edits))


def test_a_token_lets_the_api_listen_beyond_loopback(tmp_path):
    token_file = tmp_path / "api.token"
    token_file.write_text(TOKEN + "\n")
    api = Api(address="0.0.0.0", token_file=token_file)
    assert api.bearer_token() == TOKEN
    assert Api(address="10.0.9.1", token=TOKEN).bearer_token() == TOKEN
    assert Api(token=TOKEN).bearer_token() == TOKEN          # on loopback too, when given
    with pytest.raises(ValueError, match="not both"):
        Api(token=TOKEN, token_file=token_file)
    token_file.write_text("short")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Api(token_file=token_file)


@pytest.mark.parametrize("address, loopback", [
    ("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True),
    ("0.0.0.0", False), ("", False), ("10.0.0.1", False), ("::", False), ("controller.example", False)])
def test_what_counts_as_loopback(address, loopback):
    assert is_loopback(address) is loopback

