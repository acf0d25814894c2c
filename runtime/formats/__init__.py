"""Files in, arrays out and back: sections (PNG, JPEG, TIFF, MRC) read region by
region, volumes (OME-Zarr, zarr, TIFF stacks, folders), pixel sizes from their
metadata, and the writers of masks, probability maps and OME-Zarr outputs.

May import: ``core``. A new input format is a reader here that returns a
``section.Section``; ``reader.open_section`` picks it by suffix.
"""
