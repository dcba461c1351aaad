"""The networks (torch): the registry of architectures, their heads, and the checkpoint format.

``networks`` holds every architecture by name (``create_model``), from the course's stage-1 CNN to
the shipped heatmap network; each returns a ``outputs.KeypointOutput``-shaped result.
``checkpoint`` saves weights with their settings as plain data and loads them with
``weights_only=True``. Nothing on the inference side imports this package unless a checkpoint
runs on the torch backend.
"""
