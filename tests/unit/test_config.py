"""The configuration file: the sample loads, and each mistake names file, field and expectation."""

from pathlib import Path

import pytest

from controller.config import ConfigError, load_config

SAMPLE = Path(__file__).resolve().parents[2] / "configs" / "sample.toml"


def test_sample_loads():
    config = load_config(SAMPLE)
    web, tap = config.services
    assert (web.vip, web.port, web.protocol_number, web.policy, web.ring_size) == ("10.0.0.100", 80, 6, "fb_est", 1024)
    assert [b.capacity_mbps for b in web.backends] == [200, 100, 50]
    assert web.backends[0].capacity == 200 * 125_000  # bytes/s
    assert tap.tap_ports == [5] and tap.forwarding == "capture"
    assert config.timers.cache_timeout_ms == 1000


def broken(tmp_path, old: str, new: str) -> Path:
    path = tmp_path / "broken.toml"
    text = SAMPLE.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize("old, new, message", [
    ('mac = "02:00:00:00:00:0b"', 'mac = "02:00:00:00:0b"',
     r"services\[0\]\.backends\[1\]\.mac: expected a MAC address"),
    ("ring_size = 1024", "ring_size = 1000", r"services\[0\]\.ring_size: expected a power of two"),
    ('policy = "fb_est"', 'policy = "fastest"', r"services\[0\]\.policy: expected one of .*fb_est"),
    ('vip = "10.0.0.100"', 'vip = "10.0.0.300"', r"services\[0\]\.vip: .*does not appear to be an IPv4 or IPv6"),
    ("port = 80", "port = 80000", r"services\[0\]\.port: Input should be less than or equal to 65535"),
    ("tap_ports = [5]", "tap_ports = []", r"services\[1\]: a capture service needs `tap_ports`"),
    ("id = 11", "id = 10", r"each backend id must be used once; repeated: \[10\]"),
    ("cache_timeout_ms = 1000", "cache_timout_ms = 1000", r"timers\.cache_timout_ms: Extra inputs are not permitted"),
    ('forwarding = "dsr"', 'forwarding = "ipip"', r"services\[0\]: ipip forwarding needs `tunnel_source`"),
])
def test_mistakes_name_file_field_and_expectation(tmp_path, old, new, message):
    path = broken(tmp_path, old, new)
    with pytest.raises(ConfigError, match=message) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")


def test_missing_field_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match=r"services\[0\]\.backends\[0\]\.port: required"):
        load_config(broken(tmp_path, "port = 2\n", ""))
    bad = tmp_path / "bad.toml"
    bad.write_text("[switch\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")
