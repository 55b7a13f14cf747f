"""The code blocks of the README and the docs pages, as a reader pasting them
would run them.

A ```python block runs on its own, in a fresh namespace; one whose first line
is `# continues the previous block` runs in the namespace of the block before
it. ```py blocks are sketches (the "Adding a family" template) and are not
run; ```text and ```sh blocks are shown output and commands (the command
lines run in tests/cli/test_readme_commands.py).
"""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONTINUES = "# continues the previous block"
# a block that imports one of these runs only where it is installed (an extra)
OPTIONAL = {"sklearn": "sklearn", "torch": "torch", "matplotlib": "matplotlib"}


def pages() -> list[Path]:
    """The docs pages this project writes (docs/performance.md is generated)."""
    return sorted(p for p in DOCS.rglob("*.md")
                  if p.relative_to(DOCS).parts[0] not in {"scripts", "notebooks", "figures"}
                  and p.name != "performance.md")


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"), re.S | re.M)


def missing_extra(block: str) -> str | None:
    for name, module in OPTIONAL.items():
        if re.search(rf"^\s*(from|import) {name}\b", block, re.M) and \
                importlib.util.find_spec(module) is None:
            return name
    return None


def run_blocks(path: Path) -> list[dict]:
    """Run every ```python block of `path`; one namespace per block ({} for a
    block skipped because its optional extra is not installed)."""
    namespaces: list[dict] = []
    ns: dict = {}
    for i, block in enumerate(python_blocks(path)):
        if not block.startswith(CONTINUES):
            ns = {"__name__": f"{path.stem}_block{i + 1}"}
        if missing_extra(block):
            namespaces.append({})
            continue
        exec(compile(block, f"{path}:block{i + 1}", "exec"), ns)
        namespaces.append(ns)
    return namespaces
