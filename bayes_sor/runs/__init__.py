"""A fit and its run folder: orchestration, atomic run-folder writes, reading a run back."""
