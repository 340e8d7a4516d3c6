"""Models: per-modality encoders, fusion rules and heads (Flax NNX)."""
