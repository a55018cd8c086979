"""Temporal coherence of the live dream: optical flow, the motion response and the
per-frame glue (`TemporalDream`) that the dreamer thread and the clip renderer share."""
