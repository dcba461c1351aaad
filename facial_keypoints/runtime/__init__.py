"""Inference: from a model file to faces and points on a photo.

``loading`` finds and loads the network for a checkpoint (ONNX Runtime, int8 or float, else
torch); ``face_detectors`` gives candidate boxes (YuNet, MTCNN, Haar); ``keypoint_runner`` cuts
the crops, runs the network once per batch and maps the points back; ``photos`` puts them
together per photo (``PhotoPredictor``, ``Face``, ``PhotoResult``) and ``drawing`` draws a result.
``export`` and ``quantize`` write the ONNX files ``loading`` runs; they need torch, the rest not.
"""
