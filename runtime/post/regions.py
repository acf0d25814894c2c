"""Region operations on 2-D images in numpy alone: labelling, nearest fill, smoothing.

The watershed post-processing and the ISBI figures need three classic image
operations -- 4-connected labelling, "give every pixel the label of its
nearest labelled pixel" and a Gaussian blur. scipy.ndimage has all three, but
importing it costs about 0.2 s and 26 MB, more than the rest of a one-slice
``emseg-lite segment`` besides the network pass; here they cost a few
milliseconds per 512 x 512 slice.

Labelling unions runs: a row's consecutive foreground pixels form one run,
runs that touch vertically are joined by vectorised union-find (hook each root
to the smaller one, then compress paths until every run points at its root).
The root of a component is its first run in raster order, so components are
numbered exactly as ``scipy.ndimage.label`` numbers them.

Nearest fill is a breadth-first search from every labelled pixel at once, one
ring of 4-neighbours per step: a pixel reached in step d is at taxicab distance
d from the nearest labelled pixel, as with a taxicab distance transform.
"""
from __future__ import annotations

import numpy as np

_SPREAD = ("down", "right", "left", "up")
"""Order in which labels spread each step: a pixel reached from several sides at
once takes the label of its neighbour above, else left, right, below. In a
membrane band of odd width the middle pixel then joins the region above/left
of it, and ``postprocess.label_borders``, which marks the upper/left pixel of
each label change, puts the border on that middle pixel."""


def label(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """(int32 labels 1..n of the 4-connected components of ``mask``, 0 elsewhere; n)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2:
        raise ValueError(f"label needs a 2-D mask, got shape {mask.shape}")
    height, width = mask.shape
    # A background column after each row keeps runs from wrapping to the next row.
    padded = np.zeros((height, width + 1), dtype=bool)
    padded[:, :width] = mask
    flat = padded.ravel()
    starts = flat.copy()
    starts[1:] &= ~flat[:-1]
    runs = np.cumsum(starts, dtype=np.int32)
    runs *= flat
    count = int(runs.max(initial=0))
    runs = runs.reshape(height, width + 1)[:, :width]
    if count == 0:
        return np.zeros(mask.shape, dtype=np.int32), 0

    above, below = runs[:-1], runs[1:]
    touching = (above > 0) & (below > 0)
    # One entry per touching pair of runs: where the pair differs from the pixel to its left.
    touching[:, 1:] &= (above[:, 1:] != above[:, :-1]) | (below[:, 1:] != below[:, :-1])
    roots = union(count, above[touching], below[touching])
    is_root = roots == np.arange(count + 1)
    numbers = np.cumsum(is_root, dtype=np.int32) - 1  # run 0 (background) is its own root: 0
    labels = numbers[roots][runs]
    return labels, int(numbers[-1])


def union(count: int, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Root (smallest member) of every element 0..count, given pairs of elements to join
    (vectorised union-find: runs here, ids at block seams in ``seams``)."""
    parent = np.arange(count + 1, dtype=np.int32)
    while True:
        a, b = parent[first], parent[second]
        apart = a != b
        if not apart.any():
            return parent
        first, second, a, b = first[apart], second[apart], a[apart], b[apart]
        np.minimum.at(parent, np.maximum(a, b), np.minimum(a, b))
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent


def fill_nearest(labels: np.ndarray) -> np.ndarray:
    """A new label image: ``labels`` with every 0 pixel given the label of its nearest labelled pixel.

    Distance is taxicab (4-connected steps). Among equally near labelled pixels
    the choice follows a fixed order of directions, so the result is
    deterministic. Without any labelled pixel the copy stays all 0.
    """
    height, width = labels.shape
    stride = width + 2
    grid = np.full((height + 2, stride), -1, dtype=np.int32)  # -1 frames the image: never filled
    grid[1:-1, 1:-1] = labels
    flat = grid.ravel()
    offsets = {"up": -stride, "left": -1, "right": 1, "down": stride}
    empty = grid == 0
    next_to_empty = np.zeros_like(empty)
    next_to_empty[1:-1, 1:-1] = empty[:-2, 1:-1] | empty[2:, 1:-1] | empty[1:-1, :-2] | empty[1:-1, 2:]
    frontier = np.flatnonzero((grid > 0) & next_to_empty)
    while frontier.size:
        reached = []
        for direction in _SPREAD:
            targets = frontier + offsets[direction]
            free = flat[targets] == 0
            targets = targets[free]
            flat[targets] = flat[frontier[free]]
            reached.append(targets)
        frontier = np.concatenate(reached)
    return grid[1:-1, 1:-1]


def flood(labels: np.ndarray, relief: np.ndarray | None = None, level: float = np.inf) -> None:
    """In place: unlabelled (0) pixels whose ``relief`` is <= ``level`` take the label of
    their nearest labelled pixel (as ``fill_nearest``); without ``relief``, all of them."""
    nearest = fill_nearest(labels)
    grow = labels == 0
    if relief is not None:
        grow &= relief <= level
    labels[grow] = nearest[grow]


def flood_levels(labels: np.ndarray, relief: np.ndarray | None, levels) -> None:
    """``flood`` at each level in turn (an infinite level: every unlabelled pixel)."""
    for level in levels:
        flood(labels, relief, level)


def label_borders(labels: np.ndarray) -> np.ndarray:
    """Mark a pixel when its right or lower neighbour has another label.

    One pixel per differing 4-neighbour pair, so what is left unmarked never
    touches another label 4-connectedly: every region is closed.
    """
    border = np.zeros(labels.shape, dtype=bool)
    border[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    border[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return border


def gaussian_kernel(sigma: float) -> np.ndarray:
    """float32 taps of a normalised Gaussian truncated at 4 sigma (``scipy.ndimage``'s default)."""
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (offsets / sigma) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """float32 Gaussian blur, kernel truncated at 4 sigma, mirrored edges (``scipy.ndimage`` defaults)."""
    kernel = gaussian_kernel(sigma)
    blurred = np.empty(np.shape(image), dtype=np.float32)
    _correlate(np.asarray(image, dtype=np.float32), kernel, 0, out=blurred)
    _correlate(blurred, kernel, 1, out=blurred)
    return blurred


def _correlate(image: np.ndarray, kernel: np.ndarray, axis: int, out: np.ndarray) -> None:
    """1-D correlation along ``axis`` with mirrored edges into ``out`` (which may be ``image``).

    Works from a padded copy, so two image-sized temporaries are all it needs:
    the CLI's peak memory is counted in these.
    """
    radius = kernel.size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = np.pad(image, pad, mode="symmetric")
    length = image.shape[axis]

    def window(k: int) -> np.ndarray:
        return padded[k:k + length] if axis == 0 else padded[:, k:k + length]

    np.multiply(kernel[0], window(0), out=out)
    term = np.empty_like(out)
    for k in range(1, kernel.size):
        out += np.multiply(kernel[k], window(k), out=term)
