"""The registered walkthroughs, one module per derivation: importing this
package registers each (nnkit's own __init__ imports it last, so
`nnkit.trace.registry()` lists them). The modules are the ones the families
name (nnkit/families.py): a new walkthrough module is listed there."""
import importlib

from ..families import WALKTHROUGHS

for _name in WALKTHROUGHS:
    importlib.import_module(f"{__name__}.{_name}")
del _name
