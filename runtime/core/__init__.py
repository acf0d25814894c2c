"""The vocabulary every layer shares: user-facing errors, atomic file output,
the model card (the one contract between train, export and runtime) and pixel
boxes (``geometry``).

May import: nothing of the runtime. Everything else may import it.
"""
