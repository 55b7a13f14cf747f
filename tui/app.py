"""nnkit-tui entry point (placeholder until the TUI issue lands)."""
import sys


def main(argv=None) -> int:
    print("nnkit-tui: not built yet; run `nnkit gradcheck`", file=sys.stderr)
    return 1
