"""Sequential as torch.nn.Sequential: parameters(), named_parameters() (name, array)
pairs, named_buffers(), train()/eval() on every layer, len, indexing, print."""
import numpy as np

import nnkit as nk


def test_parameters_and_named_parameters():
    lin = nk.Linear(3, 4, seed=0)
    m = nk.Sequential(lin, nk.BatchNorm(4), nk.LeakyReLU(0.2), nk.Linear(4, 2))
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.W", "0.b", "1.gamma", "1.beta", "3.W", "3.b"]
    assert all(p is m.params[n] for n, p in m.named_parameters())
    assert [id(p) for p in m.parameters()] == [id(m.params[n]) for n in names]
    assert [n for n, _, _ in m.named_parameters_and_grads()] == names
    assert [n for n, _ in m.named_buffers()] == ["1.running_mean", "1.running_var"]


def test_shared_layer_listed_once():
    lin = nk.Linear(3, 3, seed=0)
    m = nk.Sequential(lin, nk.Tanh(), lin)
    assert [n for n, _ in m.named_parameters()] == ["0.W", "0.b"]
    assert len(m.parameters()) == 2


def test_train_eval_len_index_print():
    m = nk.Sequential(nk.Linear(3, 4), nk.Sigmoid(), nk.Linear(4, 2))
    assert m.eval() is m and not any(layer.training for layer in m)
    m.train()
    assert all(layer.training for layer in m)
    assert len(m) == 3 and isinstance(m[1], nk.Sigmoid) and len(m[1:]) == 2
    text = repr(m)
    assert text.startswith("Sequential(\n  (0): Linear(in_features=3, out_features=4")
    assert "(1): Sigmoid()" in text
    X = np.random.default_rng(0).standard_normal((5, 3))
    assert m(X).shape == (5, 2)
