"""From membrane probability to membranes and regions (threshold or seeded
watershed, numpy with a compiled C twin), region ids across block seams, 3-D
objects (waterz's fragments and merges), what label images mean, and the figures
that compare them with the truth (pixel error, Dice, V_rand, V_info, VI, ARAND).

May import: ``core``, ``formats``, ``engine``. A new post-processing method is a
function in ``postprocess`` named by the card's ``postprocessing.method``.
"""
