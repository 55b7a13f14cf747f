"""Issue 24: README's `nnkit bench bn` exited 2 (the family is bn_affine).
Families answer to short names: a unique prefix, or an alias."""
import json

import pytest

from nnkit import bench, cli


@pytest.mark.parametrize("name,family", [
    ("bn", "bn_affine"), ("bn_affine", "bn_affine"), ("bn-affine", "bn_affine"),
    ("BN", "bn_affine"), ("batchnorm", "bn_affine"), ("affine", "bn_affine"),
    ("relu", "bn_affine"), ("white", "whitening"), ("zca", "whitening"),
    ("layernorm", "norms"), ("norm", "norms"), ("adam", "optim"), ("opt", "optim"),
    ("conv2d", "conv"), ("pool", "conv"), ("rnn", "rnn"),
])
def test_short_names(name, family):
    assert bench.resolve_family(name) == family


@pytest.mark.parametrize("name", ["", "x", "bnx", "whitening2"])
def test_unknown_names_list_the_families(name):
    with pytest.raises(ValueError, match=r"^expected one of \['bn_affine', 'whitening'"):
        bench.resolve_family(name)


def test_every_alias_names_a_family_and_shadows_no_prefix():
    for alias, family in bench.ALIASES.items():
        assert family in bench.FAMILIES, alias
        assert alias not in bench.FAMILIES
        # an alias never takes a prefix that would mean another family
        assert all(not f.startswith(alias) or f == family for f in bench.FAMILIES), alias


@pytest.mark.parametrize("table,family", [
    ("bn_relu", "bn_affine"), ("relu", "bn_affine"), ("affine", "bn_affine"),
    ("whitening", "whitening"), ("rnn", "rnn"), ("conv2d", "conv"), ("maxpool2d", "conv"),
    ("layernorm", "norms"), ("adam", "optim")])
def test_a_table_name_names_its_family(table, family):
    """What --json (tests/bench/test_bench.py's TABLES) calls a benchmark table also
    runs its family on the command line."""
    assert bench.resolve_family(table) == family


def test_cli_bench_short_name_runs_once(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert cli.main(["bench", "bn", "bn_affine", "relu", "--quick", "--no-torch",
                     "--json", str(out)]) == 0
    capsys.readouterr()
    data = json.loads(out.read_text())
    assert list(data["families"]) == ["bn_affine"]      # three names, one family, one run
    assert [t["name"] for t in data["families"]["bn_affine"]] == ["bn_relu", "relu", "affine"]


def test_library_run_takes_short_names():
    assert list(bench.run("opt", quick=True, torch=False)["families"]) == ["optim"]
