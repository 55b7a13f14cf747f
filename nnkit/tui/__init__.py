"""nnkit-tui: the Textual walkthrough app (installed as nnkit.tui)."""
