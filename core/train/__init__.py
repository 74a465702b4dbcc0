"""Training on a selection: one config dataclass per trainer (every option declared once), the
train/held-out split, the TRL wiring (DPO, KTO, DPO + SamS), the SamS scheduler, the submit path,
and what a finished run's files say in sentences (run_notes: warnings grouped, truncation)."""
