"""nnkit: fast, exact, explorable neural-network kernels.

Functional pairs return ``(out, cache)`` from forward and, from backward, a
named tuple of every gradient (the array itself where there is only one);
layer objects wrap them with parameters, gradients and running statistics;
``nnkit.trace`` steps through a derivation node by node; ``nnkit.gradcheck``
checks any forward/backward pair.

One module per family holds its functional pairs, caches and named
gradients; ``nnkit.families`` names every family once (kernels, module,
walkthroughs, benchmarks, problems), and CONTRIBUTING.md states the contract
they share. Every layer class is in ``nnkit.layers``; every argument check
in ``nnkit._validate``.
"""
# sets GOMP_SPINCOUNT before the kernels load libgomp: see nnkit._threads
from . import _threads  # noqa: F401  (first: the kernels' OpenMP reads it)
# glibc keeps freed blocks under 32 MB for the next call: see nnkit._malloc
from . import _malloc  # noqa: F401

from ._random import seed
from ._validate import get_nan_policy, set_nan_policy
from .gradcheck import (GradcheckReport, TensorCheck, gradcheck, jacobian_check,
                        numeric_gradient)
from . import trace
from .derivation_check import check_derivation

# P1, P4: affine, ReLU, softmax cross-entropy
from .dense import (AffineCache, AffineGrads, ReLUCache, affine_backward,
                    affine_forward, relu_backward, relu_forward)
from .softmax import softmax_cross_entropy, softmax_cross_entropy_backward

# P2: batch norm, alone or fused with ReLU
from .batchnorm import (BatchNormCache, BatchNormGrads, BNReLUGrads,
                        batchnorm_backward, batchnorm_eval_forward,
                        batchnorm_forward, bn_relu_backward, bn_relu_forward,
                        update_running_stats)

# P2.4: whitening batch norm
from .whitening import (WhiteningCache, WhiteningGrads, WhiteningReLUGrads,
                        whitening_backward, whitening_eval_forward, whitening_forward,
                        whitening_relu_backward, whitening_relu_forward)

# P9: recurrent networks and backpropagation through time
from .rnn import (BiRNNCache, BiRNNGrads, RNNCache, RNNGrads, birnn_backward,
                  birnn_forward, rnn_backward, rnn_forward)
from .gated import (GRUCache, GRUGrads, LSTMCache, LSTMGrads, gru_backward, gru_forward,
                    lstm_backward, lstm_forward)

# layers: one module, one base class
from .layers import (BatchNorm, BiRNN, Layer, Linear, ReLU, RNN, Sequential,
                     SoftmaxCrossEntropy, WhiteningBatchNorm)

# P6, P8: dropout; layer, instance, group and channel batch norm; weight norm
from .dropout import DropoutCache, dropout_backward, dropout_forward
from .norms import (ChannelBatchNormCache, ChannelBatchNormGrads, GroupNormCache,
                    GroupNormGrads, RowNormCache, RowNormGrads, batchnorm_channels_backward,
                    batchnorm_channels_eval_forward, batchnorm_channels_forward,
                    groupnorm_backward, groupnorm_forward, instancenorm_backward,
                    instancenorm_forward, layernorm_backward, layernorm_forward)
from .weightnorm import (WeightNormCache, WeightNormGrads, weightnorm_backward,
                         weightnorm_forward)
from .layers import Dropout, GroupNorm, InstanceNorm, LayerNorm

# P5, P7: optimizers and schedules, initializers, the training loop
# (nk.optim.Adam, nk.init.he_normal, nk.train.fit)
from . import init, optim, train

# one source: the installed distribution's metadata (pyproject.toml's version);
# a source tree on sys.path without an install reports "0+unknown"
from importlib import metadata as _metadata
try:
    __version__ = _metadata.version("nnkit")
except _metadata.PackageNotFoundError:
    __version__ = "0+unknown"
del _metadata

# P3, P10: convolution shapes, counting, the bottleneck solver; conv and pooling
from . import conv
from .conv import (Conv2dCache, Conv2dGrads, Pool2dCache, avgpool2d_backward,
                   avgpool2d_forward, conv2d_backward, conv2d_forward, conv2d_output_shape,
                   lppool2d_backward, lppool2d_forward, maxpool2d_backward,
                   maxpool2d_forward, pool2d_output_shape, solve_bottleneck)
from .layers import AvgPool2d, Conv2d, Flatten, MaxPool2d

# P9: sequence models from layers (the last time step of (T, B, C))
from .layers import LastStep

# training like a PyTorch script: activations and losses (NumPy), checkpoints
from .activations import (BCEWithLogitsCache, GELUCache, LeakyReLUCache, MSECache,
                          SigmoidCache, TanhCache, bcewithlogits_loss,
                          bcewithlogits_loss_backward, gelu_backward, gelu_forward,
                          leaky_relu_backward, leaky_relu_forward, mse_loss,
                          mse_loss_backward, sigmoid_backward, sigmoid_forward,
                          tanh_backward, tanh_forward)
from .layers import BCEWithLogitsLoss, GELU, LeakyReLU, MSELoss, Sigmoid, Tanh
from .optim import clip_grad_norm_
from .checkpoint import load, save

# P9: gated recurrences as layers (PyTorch's names and state dicts)
from .layers import GRU, LSTM

# the walkthroughs register themselves with nnkit.trace (plug-ins above the core)
from . import walkthroughs  # noqa: E402,F401
