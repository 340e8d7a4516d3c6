"""mmjax: multimodal learning with missing or corrupted modalities, in JAX.

The public surface is small on purpose:

- ``mmjax.data``: datasets in the batch contract (``inputs`` per modality, ``present: bool[B, M]``,
  ``label``), missing-modality and corruption protocols;
- ``mmjax.methods``: every method and baseline as a ``Method`` bundle of pure functions;
- ``mmjax.metrics``: classification, multi-label and sentiment metrics;
- ``mmjax.config``: the typed experiment configuration;
- ``mmjax.train`` / ``mmjax.evaluate``: the training runtime and the evaluation protocols.
"""

__version__ = "0.1.0"
