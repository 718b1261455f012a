"""Simulator additions for issue 11: TCP-like fair sharing, clipped sizes, --damping."""

import numpy as np
import pytest

from controller.policies import make_policy
from controller.policies.damping import NO_DAMPING
from p4dispatch.cli import main
from sim.engine import Simulation, SimulationConfig
from sim.flow_sizes import ClippedSizes, FlowSizeCdf
from sim.workload import PACKET_BYTES, GeneratedWorkload, WorkloadSpec, max_min_rates


def test_max_min_rates_known_answers():
    # One server of 10: ceilings 1, 3, 100, 100 -> 1 and 3 kept, the other two share 6.
    assert max_min_rates(np.array([1.0, 3, 100, 100]), np.zeros(4, np.int64), np.array([10.0])).tolist() == [1, 3, 3, 3]
    # Ceilings under the fair level: nobody is limited.
    assert max_min_rates(np.array([1.0, 2]), np.zeros(2, np.int64), np.array([10.0])).tolist() == [1, 2]
    # Two servers, each shared among its own flows.
    rates = max_min_rates(np.array([50.0, 50, 50, 1]), np.array([0, 0, 1, 1]), np.array([10.0, 5.0]))
    assert rates.tolist() == [5, 5, 4, 1]


def sizes_cdf(tmp_path):
    path = tmp_path / "sizes.cdf"
    path.write_text("0 0\n10000 50\n2000000 100\n")
    return FlowSizeCdf.load(path)


def test_fair_share_never_offers_a_server_more_than_its_capacity(tmp_path):
    """Flows that could each fill a server (ceilings 50-200 Mb/s on 5-20 Mb/s servers) are slowed
    to their share: besides a new flow's first interval (its server is a guess until the switch
    decides), a server never gets more than it serves, and nothing is dropped or lost."""
    capacity = np.array([20e6, 10e6, 5e6]) / 8
    spec = WorkloadSpec(cdf=sizes_cdf(tmp_path), offered_rate=0.5 * capacity.sum(), duration=10.0,
                        flow_rate=(50e6 / 8, 200e6 / 8), seed=4, fair_share=True)
    source = GeneratedWorkload(spec)
    config = SimulationConfig(capacity=capacity, buffer_seconds=0.05, ring_size=1024)
    result = Simulation(config, make_policy("round_robin")).run(source)
    times, offered, dropped = result.loads.table()
    assert dropped.sum() < 1e-3 * offered.sum()
    # Per 100 ms interval, what each server was offered stays within its capacity, but for the
    # new flows' first packets (at most a few packets per new flow).
    per_interval = offered / (capacity * 0.1)
    assert np.percentile(per_interval.max(axis=1), 95) <= 1.2
    # About 4 flows/s of 0.5 MB mean for 10 s, every one run to its end.
    assert result.summary.flows > 25


def test_fair_share_needs_the_engine(tmp_path):
    spec = WorkloadSpec(cdf=sizes_cdf(tmp_path), offered_rate=1e6, duration=1.0, flow_rate=(1e6, 2e6),
                        fair_share=True)
    with pytest.raises(ValueError, match="attach"):
        next(GeneratedWorkload(spec).batches(0.1))


def test_fair_share_conserves_bytes(tmp_path):
    class Placement:
        capacity = np.array([1e6])

        def backend_of(self, slots, key_hash, source_hash, new):
            return np.zeros(slots.size, dtype=np.int64)

    spec = WorkloadSpec(cdf=sizes_cdf(tmp_path), offered_rate=5e5, duration=3.0, flow_rate=(1e6, 1e7),
                        seed=2, fair_share=True)
    source = GeneratedWorkload(spec)
    source.attach(Placement())
    sent = ended = 0.0
    for batch in source.batches(0.1):
        assert np.all((batch.packet_time >= batch.start) & (batch.packet_time < batch.end))
        assert np.all((batch.packet_bytes > 0) & (batch.packet_bytes <= PACKET_BYTES))
        sent += batch.packet_bytes.sum()
        ended += batch.ended.size.sum()
    assert sent == pytest.approx(ended)


def test_clipped_sizes(tmp_path):
    clipped = ClippedSizes(sizes_cdf(tmp_path), 10_000)
    sizes = clipped.sample(np.random.default_rng(1), 100_000)
    assert sizes.max() == 10_000
    assert np.mean(sizes == 10_000) == pytest.approx(0.5, abs=0.01)
    # Half uniform on 0-10 kB (mean 5 kB), half clipped to 10 kB: mean 7.5 kB.
    assert clipped.mean() == pytest.approx(7500, rel=0.01)


def test_cli_fair_share_max_size_and_damping(capsys):
    args = ["simulate", "--workload", "fb_hadoop", "--max-size", "2e6", "--capacity", "0.02,0.01,0.005",
            "--load", "0.5", "--duration", "3", "--flow-rate", "50,200", "--fair-share", "--buffer-ms", "50",
            "--ring-size", "1024", "--quiet", "--policies", "round_robin,fb_est"]
    assert main(args + ["--damping", "20,1,0.5"]) == 0
    printed = capsys.readouterr().out
    assert "fb_hadoop <= 2e+06 B, load 0.5, fair share" in printed
    assert "max/mean p50" in printed and "| fb_est " in printed
    assert main(args + ["--damping", "none"]) == 0
    assert main(args + ["--damping", "20,1"]) == 2
    assert "FLOWS,MAX_SECONDS,FLOOR" in capsys.readouterr().err
    assert main(args + ["--damping", "20,1,3"]) == 2
    assert "damping needs" in capsys.readouterr().err


def test_cli_refuses_fair_share_for_captures(tmp_path, capsys):
    pcap = tmp_path / "x.pcap"
    pcap.write_bytes(b"")
    assert main(["simulate", "--pcap", str(pcap), "--fair-share", "--quiet"]) == 2
    assert "generated flows" in capsys.readouterr().err


def test_damping_off_is_the_level_fill_in_the_simulator(tmp_path):
    """NO_DAMPING and damping differ in a run at a low flow rate (so the comparison can fail)."""
    capacity = np.array([20e6, 10e6, 5e6]) / 8
    spec = WorkloadSpec(cdf=sizes_cdf(tmp_path), offered_rate=0.5 * capacity.sum(), duration=5.0,
                        flow_rate=(50e6 / 8, 200e6 / 8), seed=4, fair_share=True)
    config = SimulationConfig(capacity=capacity, buffer_seconds=0.05, ring_size=1024)
    damped = Simulation(config, make_policy("fb_est")).run(GeneratedWorkload(spec)).summary
    plain = Simulation(config, make_policy("fb_est", NO_DAMPING)).run(GeneratedWorkload(spec)).summary
    assert damped.ring_churn < plain.ring_churn
