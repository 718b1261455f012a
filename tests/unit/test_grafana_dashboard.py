"""The Grafana dashboard is a valid dashboard and queries only metrics the controller exports.

The queries are read with a PromQL parser (promql-parser), not a regex: metric names are the
vector selectors of the parsed expression, so function names, label names and `by (...)`
lists can never pass for metrics. The exported side is the controller's real /metrics, got
over HTTP from the admin API: a Controller built from configs/sample.toml (plus an agent,
heard over real UDP on loopback, and SA2C on the web service) that is connected to no switch,
whose flow manager installed flows through an in-memory switch and whose serving-loop turns
and counter polls went through the loop's own `_turn` (health, load estimates, ring rewrites,
admission, status). Only the switch is a stand-in (tests/switch_stub.py). The P4Info is the
compiled program's when build/ has it; otherwise a small one with the few entities the
Controller itself looks up (same names), so this test runs without the P4 toolchain.
"""

from __future__ import annotations

import json
import re
import socket
import time
import tomllib
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from controller_fakes import digest_list
from prometheus_client.parser import text_string_to_metric_families
from switch_stub import InMemorySwitch, program

from controller.admin_api import AdminApi
from controller.app import Controller
from controller.config import Config
from controller.counter_poller import CounterReading
from controller.dataplane.constants import DropReason
from controller.dataplane.dispatcher_tables import CounterValue
from controller.health.messages import Codec, Heartbeat, HeartbeatFlag, LoadReport

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "grafana" / "p4dispatch.json"
METRICS_DOC = REPO / "docs" / "metrics.md"
CONFIG = REPO / "configs" / "sample.toml"
DATASOURCE_UID = "${datasource}"

# Grafana's own variables that stand where PromQL wants a duration; anything else with a $
# outside a string fails to parse, and the test says which panel has it.
GRAFANA_DURATIONS = {"$__rate_interval": "1m", "${__rate_interval}": "1m", "$__interval": "15s",
                     "${__interval}": "15s", "$__range": "30m", "${__range}": "30m"}


# ---- reading the dashboard --------------------------------------------------------------

def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def all_panels(panels: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def as_promql(expr: str) -> str:
    for variable in sorted(GRAFANA_DURATIONS, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_DURATIONS[variable])
    return expr


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (Grafana variables allowed) reads."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        by_matcher = [m for m in node.matchers.matchers if m.name == "__name__"]
        if node.name:
            names.add(node.name)
        elif len(by_matcher) == 1 and by_matcher[0].op == promql_parser.MatchOp.Equal:
            names.add(by_matcher[0].value)
        else:
            # A regex over names could match anything or nothing: this check could not say.
            raise ValueError(f"selector {node} does not name one metric")

    promql_parser.walk(promql_parser.parse(as_promql(expr)), visit)
    return names


LABEL_VALUES = re.compile(r"^\s*label_values\((?P<selector>.+),\s*[A-Za-z_]\w*\s*\)\s*$")


def variable_metric_names(query: str) -> set[str]:
    """Metric names in a Prometheus template variable's query (label_values(selector, label))."""
    match = LABEL_VALUES.match(query)
    if match is None:
        raise ValueError(f"variable query {query!r} is not label_values(selector, label)")
    return metric_names(match["selector"])


def dashboard_queries(dashboard: dict[str, Any]) -> dict[str, list[str]]:
    """Where -> PromQL expressions: every panel target and every query variable."""
    queries: dict[str, list[str]] = {}
    for panel in all_panels(dashboard["panels"]):
        exprs = [t["expr"] for t in panel.get("targets", [])]
        if exprs:
            queries[f"panel {panel['id']} {panel['title']!r}"] = exprs
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries[f"variable ${variable['name']}"] = [query["query"] if isinstance(query, dict) else query]
    return queries


def unexported(queries: dict[str, list[str]], exported: set[str]) -> dict[str, set[str]]:
    """Where -> metrics it queries that are not among the exported sample names."""
    missing: dict[str, set[str]] = {}
    for where, exprs in queries.items():
        reads: set[str] = set()
        for expr in exprs:
            if where.startswith("variable"):
                reads |= variable_metric_names(expr)
            else:
                reads |= metric_names(expr)
        if reads - exported:
            missing[where] = reads - exported
    return missing


# ---- the controller's real /metrics -------------------------------------------------------

def web_flow(i: int, backend: int) -> dict[str, int]:
    return {"src_addr": (0xFFFF << 32) | (0xC0A80000 + i), "dst_addr": (0xFFFF << 32) | 0x0A000064,
            "protocol": 6, "src_port": 40000 + i, "dst_port": 80, "service_id": 1, "backend_id": backend}


FLOWS = 30
DROPPED_VIP_PORT = 7


def config_with_health_and_admission() -> Config:
    """The sample, with an agent on web1 (UDP on loopback, any free port), SA2C on web and
    signalling read on the capture service."""
    data = tomllib.loads(CONFIG.read_text())
    data["health"] |= {"listen_port": 0, "agents": [{"backend": "web1"}]}
    data["services"][0]["admission"] = {"smoothing": 1.0}
    data["services"][1]["sessions"] = {"sip": [5060]}     # session affinity's metrics
    return Config.model_validate(data)


def heard_from_web1(controller: Controller, switch: InMemorySwitch) -> None:
    """web1's agent, as datagrams: one heartbeat and one load report, taken by a loop turn."""
    codec = Codec()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        target = controller.health.cluster.listener.address
        tx.sendto(codec.encode(Heartbeat(10, 1, HeartbeatFlag.UP, 0)), target)
        tx.sendto(codec.encode(LoadReport(host_id=10, seq=1, uptime_ms=1000, tx_bytes=10**6, tx_packets=700,
                                          cpu_percent=42.0, memory_percent=30.0, load_average=0.5, cpus=2,
                                          connections=3)), target)
    deadline = time.monotonic() + 5
    while controller.health.counts()["accepted_report"] < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
        controller._turn(switch, None)
    assert controller.health.counts()["accepted_report"] == 1


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The text of GET /metrics from a primary controller that has served a little while."""
    controller = Controller(config_with_health_and_admission(), program(tmp_path_factory.mktemp("program")))
    switch = InMemorySwitch(controller.info)
    controller.flows.writer = switch
    controller._set_role("primary")
    controller.health.start()
    try:
        heard_from_web1(controller, switch)
        yield scrape(controller, switch)
    finally:
        controller.health.stop()


def scrape(controller: Controller, switch: InMemorySwitch) -> str:
    # Digests as the stream delivers them (arrived a few ms ago), one of them twice.
    arrived = time.monotonic() - 0.004
    flows = [web_flow(i, (10, 11, 12)[i % 3]) for i in range(FLOWS)]
    controller.flows.on_digest_list(digest_list(flows), arrived)
    controller.flows.on_digest_list(digest_list(flows[:1]), arrived)
    controller.flows.settle()
    # Two counter polls 100 ms apart, through the serving loop's own handling.
    start = time.monotonic()
    for step in (0, 1):
        traffic = {b: CounterValue(100 * step, 150_000 * step * (b - 9)) for b in (10, 11, 12, 20, 21)}
        controller._turn(switch, CounterReading(
            at=start + 0.1 * step, backend_traffic=traffic,
            flow_stats={1 + i: CounterValue(step, 1000 * step) for i in range(FLOWS)},
            ports={"in": {1: CounterValue(500 * step, 60_000 * step)},
                   "out": {2: CounterValue(300 * step, 40_000 * step)}},
            drops={int(DropReason.VIP_PORT_UNCONFIGURED): CounterValue(DROPPED_VIP_PORT, 0)}))
    api = AdminApi(controller, "127.0.0.1", 0)   # port 0: a free one
    api.start()
    try:
        with urllib.request.urlopen(f"{api.url}/metrics", timeout=10) as response:
            return response.read().decode()
    finally:
        api.stop()


@pytest.fixture(scope="module")
def exported(scraped: str) -> set[str]:
    """Sample names, as Prometheus stores them (dispatcher_digests_total, ..._bucket)."""
    return {sample.name for family in text_string_to_metric_families(scraped) for sample in family.samples}


def samples(scraped: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {frozenset(s.labels.items()): s.value for f in text_string_to_metric_families(scraped)
            for s in f.samples if s.name == name}


# ---- the dashboard ------------------------------------------------------------------------

def test_dashboard_is_a_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] and dashboard["uid"]
    assert dashboard["schemaVersion"] >= 39             # Grafana 11 and later
    datasource_vars = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in datasource_vars] == [("datasource", "prometheus")]
    panels = list(all_panels(dashboard["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    graphs = [p for p in panels if p["type"] != "row"]
    assert len(graphs) >= 10
    for panel in graphs:
        where = f"panel {panel['id']} {panel['title']!r}"
        assert panel["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
        assert panel["targets"], f"{where} has no query"
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{where} has no unit"
        assert panel.get("description"), f"{where} does not say what it shows"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), where
        for t in panel["targets"]:
            assert t["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, where
            assert t["expr"].strip(), where
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == {"type": "prometheus", "uid": DATASOURCE_UID}, variable["name"]


def test_panels_do_not_overlap() -> None:
    cells: dict[tuple[int, int], int] = {}
    for panel in all_panels(load_dashboard()["panels"]):
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps panel {cells[(x, y)]}"
                cells[(x, y)] = panel["id"]


def test_every_query_parses_and_names_metrics() -> None:
    for where, exprs in dashboard_queries(load_dashboard()).items():
        for expr in exprs:
            names = variable_metric_names(expr) if where.startswith("variable") else metric_names(expr)
            assert names, f"{where}: {expr!r} reads no metric"
            assert all(n.startswith("dispatcher_") for n in names), (where, names)


def test_the_dashboard_covers_what_the_issue_asks_for() -> None:
    """Per-backend load, ring share, flows, new-flow rate, install latency, drops by reason."""
    read = set().union(*(metric_names(e) for where, exprs in dashboard_queries(load_dashboard()).items()
                         if where.startswith("panel") for e in exprs))
    assert {"dispatcher_backend_load_bytes_per_second", "dispatcher_ring_share", "dispatcher_backend_flows",
            "dispatcher_active_flows", "dispatcher_inserted_total", "dispatcher_digests_total",
            "dispatcher_install_latency_seconds_bucket", "dispatcher_drops_total",
            "dispatcher_controller_role", "dispatcher_table_full_total",
            "dispatcher_duplicate_digests_total", "dispatcher_port_packets_total"} <= read


def test_every_metric_the_dashboard_queries_is_exported(exported: set[str]) -> None:
    assert unexported(dashboard_queries(load_dashboard()), exported) == {}


# ---- the checker itself can fail ------------------------------------------------------------

def test_metric_names_are_selectors_not_functions_or_labels() -> None:
    expr = ('sum by (backend) (rate(dispatcher_digest_total{service="web", le="0.1"}[$__rate_interval]))'
            ' / on (service) group_left histogram_quantile(0.99, sum by (le) (rate(x_bucket[5m])))'
            ' and {__name__="dispatcher_ring_share"} offset 1m')
    assert metric_names(expr) == {"dispatcher_digest_total", "x_bucket", "dispatcher_ring_share"}
    with pytest.raises(ValueError, match="does not name one metric"):
        metric_names('{__name__=~"dispatcher_.*"}')
    with pytest.raises(ValueError):
        metric_names("rate(dispatcher_digests_total[$interval])")    # an unknown Grafana variable


def test_a_misspelled_metric_is_caught(exported: set[str]) -> None:
    queries = {"panel 99 'typo'": ["sum(rate(dispatcher_digest_total[$__rate_interval]))",
                                   "dispatcher_ring_share"],
               "variable $x": ['label_values(dispatcher_ring_shares{instance=~"$instance"}, service)']}
    assert unexported(queries, exported) == {"panel 99 'typo'": {"dispatcher_digest_total"},
                                             "variable $x": {"dispatcher_ring_shares"}}


# ---- what the new metrics carry -------------------------------------------------------------

def test_install_latency_histogram_counts_every_install(scraped: str) -> None:
    buckets = samples(scraped, "dispatcher_install_latency_seconds_bucket")
    by_le = sorted((float(dict(labels)["le"]), value) for labels, value in buckets.items())
    counts = [value for _, value in by_le]
    assert counts == sorted(counts), "buckets are cumulative"
    assert by_le[-1] == (float("inf"), FLOWS)
    assert samples(scraped, "dispatcher_install_latency_seconds_count") == {frozenset(): FLOWS}
    # Every digest arrived 4 ms before the test installed it: nothing at or below 1 ms.
    assert dict(by_le)[0.001] == 0
    assert samples(scraped, "dispatcher_install_latency_seconds_sum")[frozenset()] >= FLOWS * 0.004


def test_drops_are_exported_by_reason_zeros_included(scraped: str) -> None:
    drops = {dict(labels)["reason"]: value for labels, value in samples(scraped, "dispatcher_drops_total").items()}
    assert drops["vip_port_unconfigured"] == DROPPED_VIP_PORT
    assert set(drops) == {r.name.lower() for r in DropReason if r is not DropReason.NONE}
    assert sum(drops.values()) == DROPPED_VIP_PORT


def test_the_scrape_reflects_the_controller_state(scraped: str) -> None:
    assert samples(scraped, "dispatcher_active_flows") == {frozenset(): FLOWS}
    assert samples(scraped, "dispatcher_duplicate_digests_total") == {frozenset(): 1}
    shares = samples(scraped, "dispatcher_ring_share")
    web = {dict(labels)["backend"]: share for labels, share in shares.items() if dict(labels)["service"] == "web"}
    # Which backend gets how much is the policy's business; the ring is whole and shared out.
    assert sum(web.values()) == pytest.approx(1.0) and all(0 <= s <= 1 for s in web.values())
    assert set(web) == {"web1", "web2", "web3"}
    assert samples(scraped, "dispatcher_controller_role")[frozenset({("role", "primary")})] == 1


def test_every_exported_metric_is_documented(scraped: str) -> None:
    doc = METRICS_DOC.read_text()
    families = {family.name for family in text_string_to_metric_families(scraped)}
    undocumented = {name for name in families if f"`{name}" not in doc}
    assert not undocumented, f"docs/metrics.md does not describe {sorted(undocumented)}"


# ---- issue 11: health, measured load, admission -----------------------------------------------

def test_the_dashboard_shows_health_and_admission() -> None:
    read = set().union(*(metric_names(e) for where, exprs in dashboard_queries(load_dashboard()).items()
                         if where.startswith("panel") for e in exprs))
    assert {"dispatcher_backend_health", "dispatcher_backend_heartbeat_age_seconds",
            "dispatcher_health_messages_total", "dispatcher_health_messages_dropped_total",
            "dispatcher_backend_load_source", "dispatcher_backend_visibility_ratio",
            "dispatcher_admission_level", "dispatcher_admission_drop_probability", "dispatcher_admission_load",
            "dispatcher_admission_threshold"} <= read


def test_health_and_admission_are_exported(scraped: str) -> None:
    health = samples(scraped, "dispatcher_backend_health")
    web1 = {dict(labels)["state"]: value for labels, value in health.items() if dict(labels)["backend"] == "web1"}
    assert web1 == {"up": 1, "draining": 0, "down": 0, "recovering": 0}
    assert len(health) == 5 * 4, "every backend, every state"
    assert samples(scraped, "dispatcher_health_messages_total") == {
        frozenset({("kind", "heartbeat")}): 1, frozenset({("kind", "report")}): 1}
    dropped = samples(scraped, "dispatcher_health_messages_dropped_total")
    assert {dict(labels)["reason"] for labels in dropped} == {
        "malformed", "unauthenticated", "unknown_host", "replayed", "overflow"}
    assert set(dropped.values()) == {0}
    cpu = samples(scraped, "dispatcher_backend_host_utilisation")
    assert cpu[frozenset({("service", "web"), ("backend", "web1"), ("resource", "cpu")})] == pytest.approx(0.42)
    sources = samples(scraped, "dispatcher_backend_load_source")
    assert sources[frozenset({("service", "web"), ("backend", "web1"), ("source", "fallback")})] == 1, \
        "one report learns nothing yet"
    assert samples(scraped, "dispatcher_admission_level") == {frozenset({("service", "web")}): 0}
    thresholds = {dict(labels)["threshold"]: v
                  for labels, v in samples(scraped, "dispatcher_admission_threshold").items()}
    assert thresholds == pytest.approx({"t1": 0.7, "t2": 0.8, "t3": 0.9, "c": 0.98})
