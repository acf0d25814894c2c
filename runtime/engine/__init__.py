"""The network: which interpreter runs it (``backend``, ``amx``; the GPU: ``gpu``), the models that
ship inside the package (``registry``), and a model tiled over any region of a
slice with the whole slice's normalisation, at the model's pixel size if asked
(``model.Model``): membrane probability, nothing after it.

May import: ``core``, ``formats``.
"""
