"""Issue 24: `nnkit train` called the held-out 20 % "test accuracy", but the
same rows are scored after every epoch (the val columns) and watched while
choosing --epochs and --lr: a validation set. The output names it so."""
import json

from nnkit import cli


def test_text_names_the_validation_set(capsys):
    assert cli.main(["train", "--dataset", "synthetic", "--epochs", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "test" not in out.lower(), out
    assert "dataset synthetic: 1438 train / 359 validation," in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("validation accuracy ") and "after 3 epochs" in last
    acc = float(last.split("validation accuracy ")[1].split("%")[0])
    # the final line is the last epoch's val column: the same rows, the same number
    table_last = [ln for ln in out.splitlines() if ln.strip().startswith("3 ")][0]
    assert table_last.split()[-1] == f"{acc:.2f}%"
    assert 70 < acc < 100


def test_json_keys_name_the_validation_set(capsys):
    assert cli.main(["train", "--dataset", "synthetic", "--epochs", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert not [k for k in data if "test" in k]
    assert data["train"] == 1438 and data["validation"] == 359
    assert data["val_acc"] == data["history"]["val_acc"][-1]
    # the same rows: equal up to the order of a float sum (fit may batch them)
    assert abs(data["val_loss"] - data["history"]["val_loss"][-1]) <= 1e-12 * data["val_loss"]


def test_help_says_validation(capsys):
    try:
        cli.main(["train", "--help"])
    except SystemExit:
        pass
    out = " ".join(capsys.readouterr().out.split())
    assert "validation accuracy" in out and "test accuracy" not in out
