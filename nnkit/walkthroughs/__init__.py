"""The registered walkthroughs, one module per derivation: importing this
package registers each (nnkit's own __init__ imports it last, so
`nnkit.trace.registry()` lists them). A new walkthrough module is listed here."""
from . import bn_relu, conv, dropout, gated, mlp, norms, rnn, weightnorm, whitening  # noqa: F401
