"""Generate the documentation's figures (docs/figures/*.png) from the lessons'
own data: every curve comes from the functions `nnkit lessons` runs (or from
nnkit's training loop), never from a second computation written here.

    python docs/scripts/make_figures.py                # every figure
    python docs/scripts/make_figures.py p9 axes        # some of them
    python docs/scripts/make_figures.py --record-torch # PyTorch's digits curve

Figures (matplotlib, Agg backend, seeded, no date or version in the PNG's
metadata: regenerating on the same libraries gives the same bytes):
  p9        ‖∂h_T/∂h_0‖ against T at three spectral norms, with the bound δ^T
            (lesson p9-2-vanishing-bound)
  eigengap  relative error of ∂L/∂Σ against the eigengap, textbook route
            vs nnkit's ZCA backward (lesson p2-whitening-eigengap)
  axes      which axes batch, layer, instance and group norm average over
            (lesson p8-norm-axes)
  digits    training curves of nnkit and PyTorch on the 8x8 digits, same
            initial weights, same batches, Adam in float64

PyTorch is optional. `--record-torch` (run where torch and scikit-learn are
importable) trains the PyTorch twin and writes its curves to
docs/data/digits-torch.json; the digits figure then draws those recorded
numbers beside nnkit's fresh ones, and says they were recorded (with which
torch). Without torch and without a recording it draws nnkit alone and says
so in its title. Recording keeps the figure reproducible on a machine or CI
without PyTorch, and the figure's caption names where each curve came from.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DOCS = os.path.dirname(HERE)
FIGURES = os.path.join(DOCS, "figures")
TORCH_RECORD = os.path.join(DOCS, "data", "digits-torch.json")

# the digits run: nnkit train's model and Adam learning rate, a fixed batch order;
# "auto": scikit-learn's digits when installed, else nnkit's seeded synthetic set
DIGITS = dict(dataset="auto", seed=0, hidden=64, epochs=15, batch_size=64, lr=1e-2)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save(fig, path: str) -> str:
    # no Software/date metadata: the same inputs give the same bytes
    fig.savefig(path, dpi=110, metadata={"Software": None})
    _pyplot().close(fig)
    return path


def lesson(name: str, seed: int = 0):
    from nnkit.lessons import registry
    result = registry()[name].run(seed)
    if not result.passed:
        raise RuntimeError(f"lesson {name} failed on seed {seed}: the figure would "
                           f"show a broken identity")
    return result


# ---------------------------------------------------------------------- P9
def figure_p9(out: str) -> str:
    """‖∂h_T/∂h_0‖ against T, one curve per spectral norm, each with δ^T."""
    res = lesson("p9-2-vanishing-bound")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    deltas = {r["W"]: r["δ = γ√λ1(WᵀW)"] for r in res.rows}
    colours = {"below": "tab:blue", "at": "tab:green", "above": "tab:red"}
    for case, delta in deltas.items():
        norms = np.array(res.curves[f"‖∂h_T/∂h_0‖ ({case})"])
        bound = np.array(res.curves[f"δ^T ({case})"])
        T = np.arange(1, norms.size + 1)
        ax.semilogy(T, norms, "o-", ms=3, color=colours[case],
                    label=f"‖∂h_T/∂h_0‖, δ = {delta:g}")
        ax.semilogy(T, bound, "--", color=colours[case], label=f"bound δ^T, δ = {delta:g}")
    ax.set_xlabel("T (steps back through time)")
    ax.set_ylabel("spectral norm")
    ax.set_title("P9: the vanishing-gradient bound ‖∂h_T/∂h_0‖ ≤ δ^T (tanh RNN, "
                 "kernels' BPTT)", fontsize=10)
    ax.set_ylim(1e-5, 1e8)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return save(fig, out)


# --------------------------------------------------------------- eigengap
def figure_eigengap(out: str) -> str:
    """Relative error of ∂L/∂Σ against the gap λ2 − λ1, both routes."""
    res = lesson("p2-whitening-eigengap")
    gap = np.array([r["gap λ2 − λ1"] for r in res.rows])
    nk_err = np.array([r["rel err, nnkit"] for r in res.rows])
    tb_err = np.array([r["rel err, with 1/(λ_i − λ_j)"] for r in res.rows])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.4))
    ax.loglog(gap, tb_err, "s--", color="tab:red",
              label="textbook: eigenvectors and 1/(λ_j − λ_i)")
    ax.loglog(gap, nk_err, "o-", color="tab:blue",
              label="nnkit: closed-form divided difference of λ^(−½)")
    eps = np.finfo(np.float64).eps
    ax.loglog(gap, eps / gap, ":", color="grey", label="ε_mach / gap")
    ax.invert_xaxis()
    ax.set_xlabel("eigengap λ2 − λ1 (smaller to the right)")
    ax.set_ylabel("relative error of ∂L/∂Σ")
    ax.set_ylim(1e-11, 10)
    ax.set_title("P2 whitening: ZCA backward near repeated eigenvalues", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save(fig, out)


# -------------------------------------------------------------------- axes
def _groups(averages: str, N: int, C: int, F: int) -> np.ndarray:
    """Group index of each element (n, c, f): elements with one index share
    one mean. `averages` is the lesson's "averages over" text: batch,
    channels, features, or "its G channels" (group norm)."""
    n, c, f = np.meshgrid(np.arange(N), np.arange(C), np.arange(F), indexing="ij")
    key_n = np.zeros_like(n) if "batch" in averages else n
    m = re.search(r"its (\d+) channels", averages)
    if m:
        key_c = c // int(m.group(1))
    else:
        key_c = np.zeros_like(c) if "channels" in averages else c
    return key_n * C + key_c           # features are always averaged over


def figure_axes(out: str) -> str:
    """Four panels: X (batch × channels × features) with the elements that
    share one mean in one colour, the first group outlined."""
    res = lesson("p8-norm-axes")
    m = re.search(r"shape \(batch (\d+), channels (\d+), features (\d+)\)", " ".join(res.notes))
    N, C, F = (int(x) for x in m.groups())
    plt = _pyplot()
    from matplotlib.patches import Rectangle
    fig, axes = plt.subplots(2, (len(res.rows) + 1) // 2, figsize=(8.5, 5.4))
    tab20 = plt.get_cmap("tab20")
    # 20 distinct colours: tab20's ten strong hues, then its ten light ones
    cmap = lambda k: tab20((2 * k) % 20 + (k // 10) % 2)
    for ax, row in zip(axes.ravel(), res.rows):
        g = _groups(row["averages over"], N, C, F)
        ids = {k: i for i, k in enumerate(dict.fromkeys(g.ravel().tolist()))}
        if len(ids) != int(np.prod([int(s) for s in re.findall(r"\d+", row["mean shape"])])):
            raise RuntimeError(f"{row['norm']}: {len(ids)} groups, mean shape "
                               f"{row['mean shape']}")
        for n in range(N):
            for c in range(C):
                for f in range(F):
                    k = ids[g[n, c, f]]
                    x, y = c * (F + 0.5) + f, N - 1 - n
                    ax.add_patch(Rectangle((x, y), 0.95, 0.9, color=cmap(k),
                                           alpha=0.9 if k == 0 else 0.35))
        first = np.argwhere(np.vectorize(ids.get)(g) == 0)
        for n, c, f in first:
            x, y = c * (F + 0.5) + f, N - 1 - n
            ax.add_patch(Rectangle((x, y), 0.95, 0.9, fill=False, edgecolor="black", lw=1.2))
        ax.set_xlim(-0.3, C * (F + 0.5))
        ax.set_ylim(-0.3, N + 0.1)
        ax.set_xticks([c * (F + 0.5) + F / 2 for c in range(C)])
        ax.set_xticklabels([f"c{c}" for c in range(C)], fontsize=8)
        ax.set_yticks([N - 1 - n + 0.45 for n in range(N)])
        ax.set_yticklabels([f"n{n}" for n in range(N)], fontsize=8)
        ax.grid(False)
        ax.set_aspect("equal")
        ax.set_title(f"{row['norm']}\nmean over {row['averages over']}\n"
                     f"{len(ids)} means, shape {row['mean shape']}", fontsize=9)
    fig.suptitle(f"X: batch {N} (rows) × channels {C} × features {F} (the cells of a "
                 "channel)\none colour = one mean and variance; the first group outlined",
                 fontsize=10)
    fig.tight_layout()
    return save(fig, out)


# ------------------------------------------------------------------ digits
def train_nnkit(cfg: dict = DIGITS) -> dict:
    """nnkit's digits run: nnkit train's model, Adam, batches in a fixed order."""
    from nnkit import optim, train
    from nnkit.layers import SoftmaxCrossEntropy
    data = train.example_data(cfg["dataset"], cfg["seed"])
    model = train.example_model(data.X_train.shape[1], data.classes, cfg["hidden"],
                                cfg["seed"])
    init = [dict(W=model[i].params["W"].copy(), b=model[i].params["b"].copy())
            for i in (0, 2)]
    hist = train.fit(model, SoftmaxCrossEntropy(), optim.Adam(model, lr=cfg["lr"]),
                     data.X_train, data.y_train, cfg["epochs"], cfg["batch_size"],
                     X_val=data.X_test, y_val=data.y_test, shuffle=False, progress=False)
    return dict(data=data, init=init, train_loss=hist.train_loss, val_acc=hist.val_acc)


def train_torch(run: dict, cfg: dict = DIGITS) -> dict:
    """PyTorch's twin of train_nnkit: the same initial weights, batches, loss
    (mean cross-entropy) and Adam, float64; per epoch the mean batch loss
    (weighted by batch size, as fit) and the held-out accuracy."""
    import torch
    torch.manual_seed(cfg["seed"])
    d, init = run["data"], run["init"]
    lin = [torch.nn.Linear(p["W"].shape[1], p["W"].shape[0]).double() for p in init]
    with torch.no_grad():
        for layer, p in zip(lin, init):
            layer.weight.copy_(torch.from_numpy(p["W"]))
            layer.bias.copy_(torch.from_numpy(p["b"]))
    model = torch.nn.Sequential(lin[0], torch.nn.ReLU(), lin[1])
    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    lossf = torch.nn.CrossEntropyLoss()
    X, y = torch.from_numpy(d.X_train), torch.from_numpy(d.y_train)
    Xv, yv = torch.from_numpy(d.X_test), torch.from_numpy(d.y_test)
    n, bs = X.shape[0], cfg["batch_size"]
    train_loss, val_acc = [], []
    for _ in range(cfg["epochs"]):
        total = 0.0
        for s in range(0, n, bs):
            opt.zero_grad()
            loss = lossf(model(X[s:s + bs]), y[s:s + bs])
            loss.backward()
            opt.step()
            total += loss.item() * min(bs, n - s)
        train_loss.append(total / n)
        with torch.no_grad():
            val_acc.append(float((model(Xv).argmax(1) == yv).double().mean()))
    return dict(torch=torch.__version__, config=cfg, data=d.name, train_loss=train_loss,
                val_acc=val_acc)


def record_torch(path: str = TORCH_RECORD) -> str:
    run = train_nnkit()
    rec = train_torch(run)
    rec["nnkit_train_loss"] = run["train_loss"]     # what nnkit gave beside it
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    return path


def _torch_curves(run: dict, record: str) -> tuple[dict | None, str]:
    """PyTorch's curves and where they came from: trained now when torch is
    importable, else the recording (when made with this configuration and
    data set), else None."""
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        return train_torch(run), "PyTorch"
    if os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            rec = json.load(f)
        if rec.get("config") == DIGITS and rec.get("data") == run["data"].name:
            return rec, f"PyTorch {rec['torch']} (recorded: {os.path.basename(record)})"
    return None, ""


def figure_digits(out: str, record: str = TORCH_RECORD) -> str:
    run = train_nnkit()
    th, th_label = _torch_curves(run, record)
    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.8))
    ep = np.arange(1, DIGITS["epochs"] + 1)
    a1.semilogy(ep, run["train_loss"], "o-", ms=3, label="nnkit")
    a2.plot(ep, 100 * np.array(run["val_acc"]), "o-", ms=3, label="nnkit")
    if th is not None:
        a1.semilogy(ep, th["train_loss"], "x--", label=th_label)
        a2.plot(ep, 100 * np.array(th["val_acc"]), "x--", label=th_label)
    a1.set_xlabel("epoch")
    a1.set_ylabel("training loss (mean cross-entropy)")
    a2.set_xlabel("epoch")
    a2.set_ylabel("held-out accuracy, %")
    a1.legend(fontsize=8)
    a2.legend(fontsize=8)
    name = run["data"].name
    title = (f"{name}: MLP 64-{DIGITS['hidden']}-10, Adam lr {DIGITS['lr']:g}, batch "
             f"{DIGITS['batch_size']}, same initial weights and batches")
    if th is None:
        title += "\nPyTorch not installed and no recording of it: nnkit alone"
    else:
        gap = np.max(np.abs(np.subtract(th["train_loss"], run["train_loss"]))
                     / np.abs(run["train_loss"]))
        title += f"\nlargest relative gap between the two loss curves: {gap:.1e}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save(fig, out)


FIGURES_BY_NAME = {"p9": ("p9-vanishing-bound.png", figure_p9),
                   "eigengap": ("p2-whitening-eigengap.png", figure_eigengap),
                   "axes": ("p8-norm-axes.png", figure_axes),
                   "digits": ("digits-training.png", figure_digits)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("figures", nargs="*", metavar="FIGURE", help=f"some of {', '.join(FIGURES_BY_NAME)} "
                                          "(default: all)")
    p.add_argument("--out", default=FIGURES, help="the folder (default docs/figures)")
    p.add_argument("--record-torch", action="store_true",
                   help=f"train PyTorch's digits twin and write {TORCH_RECORD}")
    args = p.parse_args(argv)
    unknown = [f for f in args.figures if f not in FIGURES_BY_NAME]
    if unknown:
        p.error(f"FIGURE: expected some of {list(FIGURES_BY_NAME)}, got {unknown}")
    if args.record_torch:
        print(f"wrote {record_torch()}", file=sys.stderr)
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name in args.figures or FIGURES_BY_NAME:
        file, draw = FIGURES_BY_NAME[name]
        print(f"wrote {draw(os.path.join(args.out, file))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
