"""The napari plugin (npe2, ``napari.yaml``): open emseg-lite outputs, segment a layer,
proofread the membranes and fine-tune on the corrections, without leaving the viewer.

Behind the ``napari`` extra; nothing else imports it, so the slim runtime never
loads Qt. ``reader`` turns outputs into layers, ``jobs`` and ``corrections`` do the
work without any Qt (segmenting through the pipelines' block-wise core, the same
as ``emseg-lite segment``; fine-tuning through ``make finetune``'s own modules in a
subprocess), ``widget`` is the dock widget that drives them from worker threads.

May import: every layer below ``cli``; napari, Qt and magicgui only here.
"""
