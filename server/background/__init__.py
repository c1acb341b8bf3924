"""Background work on sampled Predict rows: shadow explanations and noise and shift probes.

A low-priority consumer of the data plane (BACKGROUND priority in the batchers, their own rate
budget); what each reports goes to a typed observer (the metrics module implements them)."""
