"""The TNA program (p4src/tna) compiles: with bf-p4c for Tofino 1 and 2 when it is installed,
else with p4test and TNA's include files; with bf-p4c, its P4Info has the names the
controller uses on BMv2."""

import pytest

from controller.p4runtime.p4info import P4InfoIndex
from topo import tna_toolchain as tna
from topo.toolchain import build_program, find_tool

missing = tna.missing_checker()
pytestmark = pytest.mark.skipif(missing is not None, reason=missing or "")


@pytest.mark.parametrize("chip", tna.CHIPS, ids=lambda c: c.target)
def test_tna_program_compiles(chip, tmp_path):
    result = tna.check_tna(chip, tmp_path / chip.target)
    assert result.returncode == 0, f"{' '.join(result.args)}\n{result.stderr[-4000:]}"
    assert "error" not in result.stderr.lower(), result.stderr[-4000:]


@pytest.mark.skipif(tna.find_bf_p4c() is None, reason="bf-p4c not installed: P4Info of the TNA program not made")
@pytest.mark.skipif(find_tool("p4c-bm2-ss") is None, reason="p4c-bm2-ss not found: no BMv2 P4Info to compare")
def test_tna_p4info_has_the_controllers_names(tmp_path):
    out = tmp_path / "tofino"
    result = tna.check_tna(tna.TOFINO1, out)
    assert result.returncode == 0, result.stderr[-4000:]
    tofino = P4InfoIndex.load(out / "p4info.txtpb")
    bmv2 = P4InfoIndex.load(build_program("dispatcher").p4info)
    for table in bmv2.p4info.tables:
        ours = tofino.table(table.preamble.alias)
        assert [f.name for f in ours.match_fields] == [f.name for f in table.match_fields]
    for counter in bmv2.p4info.counters:
        assert tofino.counter(counter.preamble.alias).size == counter.size
    for meter in bmv2.p4info.meters:
        assert tofino.meter(meter.preamble.alias).size == meter.size
    tofino.digest("flow_digest_t")
