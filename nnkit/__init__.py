"""nnkit: fast, exact, explorable neural-network kernels.

Functional pairs return ``(out, cache)`` from forward and a named tuple of
every gradient from backward; layer objects wrap them with parameters,
gradients and running statistics; ``nnkit.trace`` steps through a derivation
node by node; ``nnkit.gradcheck`` checks any forward/backward pair.
"""
import os as _os

# The kernels' OpenMP team (libgomp) spins ~300k iterations after each
# parallel loop by default. Next to BLAS calls (affine layers) the spinning
# team and OpenBLAS's own spinning pool fight for the 2 cores: a Linear ->
# BatchNorm -> Linear training step at B = 256 measured 32 ms instead of 13.
# A short spin keeps the team's wake-up fast for back-to-back kernels and
# lets BLAS have the cores. Read once when libgomp loads (importing the
# kernels, just below); a value set by the user wins.
_os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from .batchnorm import (BatchNormCache, BatchNormGrads, BNReLUGrads,
                        batchnorm_backward, batchnorm_eval_forward,
                        batchnorm_forward, bn_relu_backward, bn_relu_forward,
                        update_running_stats)
from .dense import (AffineCache, AffineGrads, ReLUCache, affine_backward,
                    affine_forward, relu_backward, relu_forward)
from ._validate import get_nan_policy, set_nan_policy
from .gradcheck import (GradcheckReport, TensorCheck, gradcheck, jacobian_check,
                        numeric_gradient)
from .layers import (BatchNorm, Layer, Linear, ReLU, Sequential,
                     SoftmaxCrossEntropy)
from .softmax import softmax_cross_entropy, softmax_cross_entropy_backward
from . import trace

__version__ = "0.1.0"

# whitening batch norm (P2.4)
from .whitening import (WhiteningBatchNorm, WhiteningCache, WhiteningGrads,
                        WhiteningReLUGrads, whitening_backward,
                        whitening_eval_forward, whitening_forward,
                        whitening_relu_backward, whitening_relu_forward)

# recurrent networks and backpropagation through time (P9)
from .rnn import (BiRNN, BiRNNCache, BiRNNGrads, RNN, RNNCache, RNNGrads,
                  birnn_backward, birnn_forward, rnn_backward, rnn_forward)
