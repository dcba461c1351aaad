"""``facial-keypoints serve``: the landmarker as a web service and a web page (``pip install '.[serve]'``).

    facial-keypoints serve                          # http://127.0.0.1:8000: the page, /v1/detect, /v1/track ...
    facial-keypoints serve --ray --replicas 2       # the same app as a Ray Serve deployment

``app.create_app(settings)`` builds the FastAPI app; ``workers.InferencePool`` runs the models in
worker processes (or threads), each with its own ``FaceLandmarker``, behind a bounded queue;
``limits`` refuses bodies and images that are too large or not images; ``auth`` checks the API key;
``metrics`` counts for Prometheus; ``static/`` is the page. Importing this package imports none of
FastAPI, uvicorn or Ray: ``command.serve`` does, when the command runs.
"""
