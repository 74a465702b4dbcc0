"""Training on a selection: one config dataclass per trainer (every option declared once), the
train/held-out split, the TRL wiring (DPO, KTO, DPO + SamS), the SamS scheduler and the submit path."""
