"""Data input: CSV answers, summary statistics, missing-data patterns, ordinal categories."""
