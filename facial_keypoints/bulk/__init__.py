"""Large photo collections: one JSON line per photo, resumable, on worker processes or on Ray.

``jsonl`` is the results file (one write per line, a lock per run, resuming by absolute path);
``workers`` runs photos on processes of one machine, each with its own model, recycled after a
number of photos; ``ray_predict`` does the same on Ray Data, to JSON lines or Parquet.
"""
