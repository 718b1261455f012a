"""Simulator: workload, servers, metrics and the switch model, with hand-computed answers;
captures in and clear errors for bad ones."""


import numpy as np
import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from controller.policies import ClusterView, make_policy
from p4dispatch.cli import main
from sim.builtin_workloads import BUILTIN
from sim.engine import Simulation, SimulationConfig
from sim.flow_sizes import CdfError, FlowSizeCdf
from sim.metrics import SlowdownHistogram, balance, windowed
from sim.pcap_source import CaptureTrace
from sim.policy_set import group_same_ring
from sim.servers import ServerQueues
from sim.switch_model import LegacySwitchModel, NewFlowArrivals
from sim.workload import GeneratedWorkload, WorkloadSpec


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch):
    """`simulate` writes results/simulate/ in the working directory by default: here, a
    temporary one."""
    monkeypatch.chdir(tmp_path)


def cdf_file(tmp_path, text):
    path = tmp_path / "sizes.cdf"
    path.write_text(text)
    return path


def test_cdf_mean_and_sampling(tmp_path):
    # Half the flows 0-1000 B, half 1000-3000 B: mean 0.5 * 500 + 0.5 * 2000 = 1250.
    cdf = FlowSizeCdf.load(cdf_file(tmp_path, "0 0\n1000 50\n3000 100\n"))
    assert cdf.mean() == 1250
    sizes = cdf.sample(np.random.default_rng(0), 200_000)
    assert np.median(sizes) == pytest.approx(1000, rel=0.02)
    assert sizes.mean() == pytest.approx(1250, rel=0.01)


def test_bad_cdf_names_file_and_line(tmp_path):
    with pytest.raises(CdfError, match=r"sizes.cdf line 2: expected '<bytes> <percent>'"):
        FlowSizeCdf.load(cdf_file(tmp_path, "0 0\nten 50\n3000 100\n"))
    with pytest.raises(CdfError, match="line 3: sizes and percentages must not decrease"):
        FlowSizeCdf.load(cdf_file(tmp_path, "0 0\n1000 50\n500 100\n"))
    with pytest.raises(CdfError, match="end at 100 percent"):
        FlowSizeCdf.load(cdf_file(tmp_path, "0 0\n1000 50\n"))


def test_generated_workload_conserves_bytes_and_recycles_slots(tmp_path):
    cdf = FlowSizeCdf.load(cdf_file(tmp_path, "0 0\n10000 50\n100000 100\n"))
    spec = WorkloadSpec(cdf=cdf, offered_rate=50e6, duration=4.0, flow_rate=(1e6, 10e6), seed=3)
    sent = ended = 0.0
    flows, highest_slot, last_batch_end = 0, 0, 0.0
    for batch in GeneratedWorkload(spec).batches(0.1):
        assert np.all((batch.packet_time >= batch.start) & (batch.packet_time < batch.end))
        assert np.all(batch.packet_bytes <= 1500) and np.all(batch.packet_bytes > 0)
        sent += batch.packet_bytes.sum()
        ended += batch.ended.size.sum()
        flows += batch.new.slot.size
        if batch.new.slot.size:
            highest_slot = max(highest_slot, int(batch.new.slot.max()))
        last_batch_end = batch.end
    assert sent == pytest.approx(ended)           # every byte of every flow, once
    assert sent / 4.0 == pytest.approx(50e6, rel=0.1)   # the offered rate
    assert highest_slot < flows / 5                 # slots are reused: memory follows active flows
    assert last_batch_end < 4.0 + 1.0               # and the run drains


def test_token_bucket_server_known_answer():
    # 100 B/s, 1 s bins, buffer 50 B. Bin 0: 150 in, 100 out, 50 queued (delay 0.5 s).
    # Bin 1: nothing in, queue drains. Bin 2: 300 in, 100 out, 200 left: 150 dropped, 50 queued.
    queues = ServerQueues(np.array([100.0]), np.array([50.0]))
    served = queues.serve(np.array([[150.0], [0.0], [300.0]]), 1.0)
    assert served.dropped[:, 0].tolist() == [0, 0, 150]
    assert served.delay[:, 0].tolist() == [0.5, 0, 0.5]


def test_balance_metrics_known_answer():
    utilisation = np.array([[1.0, 1.0, 1.0], [2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    ratio, cov = balance(utilisation)       # the idle window is left out
    assert ratio.tolist() == [1.0, 2.0]
    assert cov == pytest.approx([0.0, np.sqrt(2 / 3)])
    assert windowed(np.arange(10.0).reshape(5, 2), 2).tolist() == [[2, 4], [10, 12]]


def test_slowdown_histogram_mean_exact_p99_close():
    hist = SlowdownHistogram()
    hist.add(np.concatenate([np.ones(990), np.full(10, 50.0)]))
    assert hist.mean() == pytest.approx((990 + 500) / 1000)
    assert hist.percentile(99) == pytest.approx(1.0, rel=0.03)
    assert hist.percentile(99.5) == pytest.approx(50.0, rel=0.03)


def test_legacy_switch_cache_collision_and_split_flow():
    switch = LegacySwitchModel(ring_size=4, cache_timeout=1.0)
    switch.write_ring(np.array([1.0, 0.0]), 0.0)        # every slot -> server 0
    # Two flows with the same cache slot (low 16 bits), ring index 1 (high bits), entries at 0.5 s:
    key = np.array([0x0001_0005, 0x0001_0005], dtype=np.uint32)
    new = NewFlowArrivals(slot=np.array([0, 1]), cache_hash=key, ring_hash=key, first=np.array([0.0, 0.01]),
                          digest=np.array([0.4, 0.4]), installed=np.array([0.5, 0.5]),
                          cacheable=np.ones(2, dtype=bool))
    backend = switch.step(new, np.array([0.0, 0.01]), np.array([0, 1]))
    assert backend.tolist() == [0, 0] and switch.counters.collisions == 1
    # Ring rewritten before the second flow's entry exists: its next packet moves (it was not cached).
    switch.write_ring(np.array([0.0, 1.0]), 0.2)
    none = NewFlowArrivals(*(np.zeros(0, t) for t in (np.int64, np.uint32, np.uint32, float, float, float, bool)))
    backend = switch.step(none, np.array([0.25, 0.25, 0.6]), np.array([0, 1, 1]))
    # Flow 0 (cached) stays; flow 1 follows the ring, and its digest (0.4 s, after the move)
    # carries the new backend, so its entry does too.
    assert backend.tolist() == [0, 1, 1]
    assert switch.counters.churn == [4] and switch.counters.split_flows == 1


def simple_run(policy, **config):
    cdf = BUILTIN["fb_hadoop"]
    capacity = np.full(3, 125e6)
    spec = WorkloadSpec(cdf=cdf, offered_rate=0.6 * capacity.sum(), duration=3.0, flow_rate=(1e6, 25e6),
                        prefix_skew=0.0, prefixes=4096)
    return Simulation(SimulationConfig(capacity, **config), policy).run(GeneratedWorkload(spec))


def test_quiesced_server_gets_no_new_flows():
    result = simple_run(make_policy("fb_est"), quiesce=[(1, 0.0)])
    _, offered, _ = result.loads.table()
    assert offered[:, 1].sum() == 0 and offered[:, 0].sum() > 0 and offered[:, 2].sum() > 0


def test_fixed_split_follows_its_shares():
    from controller.policies.fixed_split import FixedSplit
    result = simple_run(FixedSplit([4, 1, 1]))
    _, offered, _ = result.loads.table()
    share = offered.sum(axis=0) / offered.sum()
    assert share[0] > 0.5 and share[1] < 0.3 and share[2] < 0.3


def write_capture(path):
    a = Ether() / IP(src="10.0.0.1", dst="10.0.1.1") / TCP(sport=1000, dport=80) / (b"x" * 100)
    back = Ether() / IP(src="10.0.1.1", dst="10.0.0.1") / TCP(sport=80, dport=1000) / (b"y" * 200)
    other = Ether() / IP(src="10.0.2.1", dst="10.0.1.1") / UDP(sport=5, dport=53)
    packets = [a, back, other, a.copy()]
    for i, p in enumerate(packets):
        p.time = 100.0 + 0.05 * i
    wrpcap(str(path), packets)
    return [len(p) for p in packets]


def test_capture_trace_counts_flows_and_bytes(tmp_path):
    path = tmp_path / "two.pcap"
    lengths = write_capture(path)
    trace = CaptureTrace([path])
    assert trace.packet_count == 4 and trace.total_bytes == sum(lengths)
    assert trace.duration == pytest.approx(0.15)
    flows = sum(b.new.slot.size for b in trace.batches(0.1))
    assert flows == 3
    symmetric = sum(b.new.slot.size for b in CaptureTrace([path], symmetric=True).batches(0.1))
    assert symmetric == 2


def test_cli_runs_a_capture_and_refuses_a_corrupt_one(tmp_path, capsys):
    path = tmp_path / "two.pcap"
    write_capture(path)
    assert main(["simulate", "--pcap", str(path), "--quiet", "--policies", "round_robin,fb_est",
                 "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    assert "| round_robin" in printed and "| fb_est" in printed
    assert (tmp_path / "out" / "load.png").stat().st_size > 1000
    header = (tmp_path / "out" / "load-fb_est.csv").read_text().splitlines()[0]
    assert header.startswith("time_s,load_0,load_1,load_2")
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(path.read_bytes()[:-30])
    assert main(["simulate", "--pcap", str(broken), "--quiet"]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith(f"error: {broken} at byte ")


def test_cli_bad_arguments_are_one_line_errors(capsys):
    assert main(["simulate", "--policies", "nope", "--quiet"]) == 2
    assert "unknown policy 'nope'" in capsys.readouterr().err
    assert main(["simulate", "--workload", "nope", "--quiet"]) == 1
    assert ("error: no flow-size distribution named 'nope'; choose one of websearch, fb_hadoop, ali_storage"
            in capsys.readouterr().err)
    assert main(["simulate", "--capacity", "1,x", "--quiet"]) == 2
    assert "--capacity: expected comma-separated numbers" in capsys.readouterr().err


def test_default_workload_writes_table_and_plot_from_the_repository_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("P4DISPATCH_SHARED_DATA", str(tmp_path / "no-shared-data"))
    out = tmp_path / "sim"
    assert main(["simulate", "--duration", "3", "--quiet", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("websearch, load 0.8: 3 servers")
    assert "| round_robin " in printed and "| fb_least " in printed and "| fb_est " in printed
    assert (out / "load.png").stat().st_size > 1000
    rows = (out / "summary.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["round_robin", "fb_least", "fb_est"]


def summary_rows(printed: str) -> dict[str, list[str]]:
    """policy label -> the figures of its row, from the printed table."""
    rows = {}
    for line in printed.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if line.startswith("| ") and cells[0] != "policy":
            rows[cells[0]] = cells[1:]
    return rows


def test_policies_with_the_same_ring_are_one_row_on_equal_servers(capsys, tmp_path):
    assert main(["simulate", "--duration", "2", "--quiet", "--policies", "all"]) == 0
    # With no --out, the table and the plot go to results/simulate.
    assert {p.name for p in (tmp_path / "results" / "simulate").iterdir()} >= {"load.png", "summary.csv"}
    printed = capsys.readouterr().out
    rows = summary_rows(printed)
    merged = "round_robin = weighted_round_robin = random_hash (same ring)"
    assert merged in rows
    assert not {"round_robin", "weighted_round_robin", "random_hash"} & set(rows)
    assert {"fixed_split", "fb_est", "fb_least", "least_connections", "shell"} <= set(rows)
    assert "round_robin = weighted_round_robin = random_hash: the same ring on these servers" in printed
    # And it is the same thing: each one run alone gives the merged row's figures.
    for name in ("round_robin", "weighted_round_robin", "random_hash"):
        assert main(["simulate", "--duration", "2", "--quiet", "--policies", name]) == 0
        assert summary_rows(capsys.readouterr().out)[name] == rows[merged], name


def test_weighted_round_robin_is_its_own_row_when_capacities_differ(capsys):
    assert main(["simulate", "--duration", "2", "--quiet", "--capacity", "0.5,1,2",
                 "--policies", "round_robin,weighted_round_robin,random_hash,fb_est"]) == 0
    printed = capsys.readouterr().out
    rows = summary_rows(printed)
    assert list(rows) == ["round_robin = random_hash (same ring)", "weighted_round_robin", "fb_est"]
    assert rows["weighted_round_robin"] != rows["round_robin = random_hash (same ring)"]


def test_grouping_compares_rings_not_names():
    policies = [make_policy(n) for n in ("fb_est", "random_hash", "weighted_round_robin", "round_robin",
                                         "fixed_split", "fb_least")]
    equal = group_same_ring(policies, ClusterView.idle([1.0, 1.0, 1.0]), 256)
    assert [g.names for g in equal] == [("fb_est",), ("random_hash", "weighted_round_robin", "round_robin"),
                                        ("fixed_split",), ("fb_least",)]
    assert equal[1].policy.name == "random_hash"
    view = ClusterView.idle([1.0, 2.0, 1.0])
    view.configured_weight = np.array([0.5, 1.0, 0.5])
    unequal = group_same_ring(policies, view, 256)
    assert [g.names for g in unequal] == [("fb_est",), ("random_hash", "round_robin"), ("weighted_round_robin",),
                                          ("fixed_split",), ("fb_least",)]


def test_cli_compares_switch_models_and_churn_caps_in_one_run(tmp_path, capsys):
    cdf = cdf_file(tmp_path, "0 0\n1500 50\n30000 100\n")
    assert main(["simulate", "--workload", str(cdf), "--duration", "1", "--quiet", "--policies", "fb_est",
                 "--switch-model", "legacy,generations", "--churn-cap", "none,0.05", "--cache-sets", "1",
                 "--cache-ways", "1", "--ring-size", "256", "--out", str(tmp_path / "out")]) == 0
    printed = capsys.readouterr().out
    header = next(line for line in printed.splitlines() if line.startswith("| policy"))
    for column in ("split flows", "collisions", "held", "churn/poll mean/p99/max"):
        assert column in header
    rows = [line for line in printed.splitlines() if line.startswith("| fb_est")]
    assert [tuple(c.strip() for c in row.split("|")[2:4]) for row in rows] == [
        ("legacy", "-"), ("legacy", "5%"), ("generations", "-"), ("generations", "5%")]
    split = [int(row.split("|")[header.split("|").index(" split flows ")]) for row in rows]
    assert split[2:] == [0, 0]
    churn_max = [int(row.split("|")[header.split("|").index(" churn/poll mean/p99/max ")].split("/")[-1])
                 for row in rows]
    assert churn_max[1] <= 12 and churn_max[3] <= 12, "5 % of 256 slots"
    assert (tmp_path / "out" / "load-fb_est-generations-cap-5.csv").exists()
    assert main(["simulate", "--switch-model", "p4", "--quiet"]) == 2
    assert "--switch-model: unknown p4" in capsys.readouterr().err
    assert main(["simulate", "--churn-cap", "2", "--quiet"]) == 2
    assert "--churn-cap: a share of the ring in (0, 1]" in capsys.readouterr().err


def test_capture_speedup_divides_time_and_non_ip_frames_are_not_cacheable(tmp_path):
    path = tmp_path / "two.pcap"
    write_capture(path)
    arp = Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff", type=0x0806) / (b"\x00" * 28)
    arp.time = 100.2
    wrpcap(str(path), [arp], append=True)
    trace = CaptureTrace([path], speedup=10)
    assert trace.duration == pytest.approx(0.02)
    batches = list(trace.batches(0.1))
    assert batches[0].packet_time.max() == pytest.approx(0.02)
    assert batches[0].new.cacheable.tolist() == [True, True, True, False]
    with pytest.raises(ValueError, match="speed-up"):
        CaptureTrace([path], speedup=0)
    # Three copies: three times the flows (distinct keys), the second starting a third of the way in.
    copies = CaptureTrace([path], copies=3)
    assert copies.packet_count == 3 * trace.packet_count
    new = [b.new for b in copies.batches(0.01)]
    assert sum(n.slot.size for n in new) == 3 * 4
    hashes = np.concatenate([n.key_hash for n in new])
    assert np.unique(hashes).size == 12
    firsts = np.sort(np.concatenate([n.first for n in new]))
    assert firsts[:3] == pytest.approx([0.0, 0.05, 0.2 / 3]), "copy 0 at 0 and 0.05 s, copy 1 from 0.2 / 3 s"
