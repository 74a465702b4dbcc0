"""Scores on held-out pairs: the evaluators (probe, trained runs) and the metrics that put every
score beside the length rule with paired bootstrap intervals."""
