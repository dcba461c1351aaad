"""Training the product's models: ``facial-keypoints train`` (``command``).

``loop.fit`` runs the epochs over a ``TrainingLoss`` of named terms (``loss``); around it are the
datasets with crop packs and extra lists (``data``), online augmentation (``augment``), schedules,
a weight average, torchrun (``distributed``) and the run folder with its lock, checkpoints and
``--resume`` (``run_folder``).  The course's stage scripts teach the same steps written out; this
package is what the shipped model's recipes run.  Importing it loads nothing until a module is used.
"""
