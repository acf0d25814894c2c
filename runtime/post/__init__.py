"""From membrane probability to membranes and regions (threshold or seeded
watershed, numpy with a compiled C twin), what label images mean, and the
figures that compare regions with the truth (pixel error, Dice, V_rand, V_info).

May import: ``core``, ``formats``, ``engine``. A new post-processing method is a
function in ``postprocess`` named by the card's ``postprocessing.method``.
"""
