"""Everything that segments, on one block-wise core: ``blocks`` cuts a section,
``blockwise`` infers and post-processes a block; ``segmenter`` (the Python API),
``batch`` (``segment``), ``volume`` (Dask), ``watch`` and ``evaluate`` only
schedule blocks and hand the results to writers. No pipeline tiles or
post-processes on its own. ``regionids`` and ``stitch`` make region ids seamless
across blocks (in memory, and on Dask); ``neurons`` makes 3-D objects of a
volume's probabilities, block by block.

May import: ``core``, ``formats``, ``engine``, ``post``.
"""
