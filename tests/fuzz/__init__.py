"""Hostile-input fuzzing of every public function and layer of nnkit (issue 12).

    pytest -q -p no:cacheprovider tests/fuzz          # CI: a seeded slice
    NNKIT_FUZZ_CASES=100000 python -m tests.fuzz      # the long run + table

See engine.py (cases and outcomes), specs.py (the table), refs.py (NumPy references).
"""
