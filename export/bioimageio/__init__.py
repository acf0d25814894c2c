"""A bioimage.io model package (spec 0.5) of the full model: ONNX and TensorFlow SavedModel
weights, test tensors on a real section, cover, README and rdf generated from the model card.

``python -m emseg_lite.export.bioimageio SOURCE --out DIR`` (``make bioimageio`` for the
shipped model; ``make export`` packages what it exports). Tested with ``bioimageio test``
in an environment of its own (``make check-bioimageio``).
"""
