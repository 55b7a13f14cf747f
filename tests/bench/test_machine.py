"""What `nnkit bench --json` records of the machine and the source: CPU model
and flags read from a cpuinfo text written here, the commit against git's own
answer, and the keys in the JSON a generated performance page reads."""
import json
import os
import shutil
import subprocess
import sys

import pytest

import nnkit
from nnkit import _kernels, cli
from nnkit.bench import _machine

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu sse sse2 sse4_2 avx fma avx2 avx512f avx512bw avx512vl hypervisor

processor\t: 1
model name\t: Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz
flags\t\t: fpu sse sse2
"""


def test_cpu_model_and_flags_from_cpuinfo():
    assert _machine.cpu_model(CPUINFO) == "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz"
    # the first CPU's flags, only the ones that pick code paths, in a fixed order
    assert _machine.cpu_flags(CPUINFO) == ["sse4_2", "avx", "fma", "avx2", "avx512f",
                                           "avx512bw", "avx512vl"]
    assert _machine.cpu_flags("processor : 0\nmodel name : x\n") is None
    assert _machine.cpu_model("") is None


def test_source_commit_is_gits_head():
    root = os.path.dirname(os.path.dirname(os.path.abspath(nnkit.__file__)))
    if shutil.which("git") is None or not os.path.exists(os.path.join(root, ".git")):
        pytest.skip("nnkit is not imported from a git checkout")
    head = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert _machine.source_commit() == head and len(head) == 40


def test_bench_json_records_machine_date_and_commit(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "norms", "--quick", "--no-torch", "--json", str(out)]) == 0
    capsys.readouterr()
    m = json.loads(out.read_text())["machine"]
    for key in ("cpu_model", "cpu_flags", "commit", "date_utc", "load_average", "cores"):
        assert key in m
    assert m["date_utc"].endswith("Z") and m["date_utc"][:4].isdigit()
    assert m["cpu_flags"] is None or set(m["cpu_flags"]) <= set(_machine.RELEVANT_FLAGS)
    assert m["load_average"] is None or len(m["load_average"]) == 3
    # the kernels' level: the one NNKIT_ISA asks for in a child process
    # (every level the CPU runs gives the same numbers only to rounding)
    level = _kernels.supported_levels()[0]
    child = subprocess.run(
        [sys.executable, "-m", "nnkit.cli", "bench", "norms", "--quick", "--no-torch",
         "--json", str(out)], env={**os.environ, "NNKIT_ISA": level},
        capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    assert json.loads(out.read_text())["machine"]["isa_level"] == level
