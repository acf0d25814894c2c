/*
 * The watershed's region operations in C: the same results as runtime/regions.py
 * (numpy), bit for bit, at about ten times the speed.
 *
 * Why C: on big sections the numpy watershed cost twice the network's time
 * (issue "big sections"); these loops are sequential scans that numpy can only
 * express as many whole-array passes. The library has no Python or numpy API:
 * runtime/native.py calls it through ctypes, which releases the GIL, so a
 * post-processing thread runs truly beside the interpreter's threads.
 *
 * Exactness: the Gaussian adds its taps in numpy's order in float32 (compile
 * with -ffp-contract=off so no FMA merges a multiply and an add); labels are
 * numbered by the raster order of each component's first pixel, as
 * scipy.ndimage.label and regions.label do; the nearest fill makes the same
 * choices as regions.fill_nearest's breadth-first search (see emseg_flood).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(_WIN32)
#define EXPORT __declspec(dllexport)
#else
#define EXPORT __attribute__((visibility("default")))
#endif

/* numpy's 'symmetric' padding (d c b a | a b c d | d c b a), for any overshoot. */
static int64_t symmetric(int64_t i, int64_t n) {
    int64_t period = 2 * n;
    i %= period;
    if (i < 0) i += period;
    return i < n ? i : period - 1 - i;
}

/* out[x] += k * src[x] over a row: the inner loop of both passes, vectorised. */
static void add_scaled(float *restrict out, const float *restrict src, float k, int64_t n) {
    for (int64_t x = 0; x < n; x++) out[x] += k * src[x];
}

static void set_scaled(float *restrict out, const float *restrict src, float k, int64_t n) {
    for (int64_t x = 0; x < n; x++) out[x] = k * src[x];
}

/* Separable correlation with `kernel` (2 * radius + 1 taps), rows then columns,
 * mirrored edges; `out` may not alias `in`. Each output adds its taps in
 * numpy's order (regions._correlate). Returns 0, or -1 without memory. */
EXPORT int emseg_gaussian(const float *in, float *out, int64_t h, int64_t w, const float *kernel, int64_t radius) {
    int64_t taps = 2 * radius + 1;
    float *row = malloc(sizeof(float) * (size_t)(w + 2 * radius));
    if (!row) return -1;
    for (int64_t y = 0; y < h; y++) {
        float *acc = out + y * w;
        set_scaled(acc, in + symmetric(y - radius, h) * w, kernel[0], w);
        for (int64_t k = 1; k < taps; k++) add_scaled(acc, in + symmetric(y - radius + k, h) * w, kernel[k], w);
    }
    for (int64_t y = 0; y < h; y++) {
        float *line = out + y * w;
        for (int64_t x = 0; x < radius; x++) {
            row[x] = line[symmetric(x - radius, w)];
            row[w + radius + x] = line[symmetric(w + x, w)];
        }
        memcpy(row + radius, line, sizeof(float) * (size_t)w);
        set_scaled(line, row, kernel[0], w);
        for (int64_t k = 1; k < taps; k++) add_scaled(line, row + k, kernel[k], w);
    }
    free(row);
    return 0;
}

static int32_t find_root(int32_t *parent, int32_t i) {
    while (parent[i] != i) {
        parent[i] = parent[parent[i]];
        i = parent[i];
    }
    return i;
}

/* 4-connected components of the nonzero pixels of `mask`, numbered 1..n in the
 * raster order of their first pixel; 0 elsewhere. Returns n. `parent` holds one
 * int32 per provisional label: h * ((w + 1) / 2) + 1 (LABEL_SCRATCH). */
EXPORT int64_t emseg_label(const uint8_t *mask, int32_t *labels, int64_t h, int64_t w, int32_t *parent) {
    int32_t next = 1;
    parent[0] = 0;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *m = mask + y * w;
        int32_t *l = labels + y * w;
        const int32_t *up = y ? l - w : NULL;
        for (int64_t x = 0; x < w; x++) {
            if (!m[x]) {
                l[x] = 0;
                continue;
            }
            int32_t left = x ? l[x - 1] : 0, above = up ? up[x] : 0;
            if (left) {
                l[x] = left;
                if (above && above != left) {
                    int32_t a = find_root(parent, above), b = find_root(parent, left);
                    if (a < b) parent[b] = a;
                    else if (b < a) parent[a] = b;
                }
            } else if (above) {
                l[x] = above;
            } else {
                parent[next] = next;
                l[x] = next++;
            }
        }
    }
    /* Roots are the smallest provisional label of their component, and provisional
     * labels grow in raster order, so numbering roots in order numbers components
     * by their first pixel. */
    for (int32_t i = 1; i < next; i++) parent[i] = find_root(parent, i);
    int32_t count = 0;
    for (int32_t i = 1; i < next; i++) parent[i] = parent[i] == i ? ++count : parent[parent[i]];
    for (int64_t i = 0; i < h * w; i++) labels[i] = parent[labels[i]];
    return count;
}

enum { FROM_NONE, FROM_ABOVE, FROM_LEFT, FROM_RIGHT, FROM_BELOW };

/* Flooding, level by level: for each level in turn, the unlabelled (0) pixels whose
 * relief is <= level take the label of their nearest labelled pixel, in place. A
 * level of +infinity takes every unlabelled pixel (the nearest fill), whatever
 * `relief` (which may then be NULL). `scratch` holds emseg_flood_scratch(h, w) bytes.
 *
 * Each level gives the result of regions.fill_nearest's breadth-first search,
 * in raster scans rather than a queue (whose scattered accesses cost more than
 * the work):
 * 1. taxicab distance to the nearest labelled pixel, by a top-down and a
 *    bottom-up scan (exact for this metric);
 * 2. each unlabelled pixel takes its label from the first neighbour one step
 *    nearer in the order above, left, right, below -- the search's choice, as
 *    it spreads each ring down, then right, left and up;
 * 3. chains of choices only run above*(left*|right*) or (left*|right*)below*:
 *    after a step down every step is down, after a step left it is left or
 *    down, after a step up never down. So a bottom-up scan resolves 'below',
 *    then per row 'left' and 'right', and a last top-down scan 'above', each
 *    reading a neighbour that is already final.
 * On a whole 3000-px block, whose arrays are far bigger than the caches, memory
 * traffic was the cost; each level is therefore two sweeps over the image, each
 * doing every step that the rows at hand allow (on a 1000-px piece, which fits
 * in cache, the scans' chains of dependent minima and selects are the cost,
 * about 5 cycles per pixel per pass; 16-bit distances made no difference): bottom-up, the backward
 * distances of a row and the choices of the row below it (which need the
 * finished distances above); top-down, the 'above' choices and the labels of
 * this level, the unlabelled runs left for the next level and its forward
 * distances. Every sweep visits only the runs of pixels still unlabelled (from a
 * third of the image at the first level to an eighth at the last). */
EXPORT int64_t emseg_flood_scratch(int64_t h, int64_t w) {
    /* One spare pair: the run finders write one entry past the last run. */
    int64_t max_runs = h * ((w + 1) / 2) + 1;
    return h * w * (2 * (int64_t)sizeof(int32_t) + 1) + 2 * max_runs * 2 * (int64_t)sizeof(int32_t) +
           2 * (h + 1) * (int64_t)sizeof(int64_t);
}

static const int32_t FAR = 1 << 29; /* 'no labelled pixel': stays >= FAR after +1 and min */

typedef struct {
    int64_t *first; /* runs of row y: first[y] .. first[y + 1] - 1 */
    int32_t *span;  /* pairs: start, end (exclusive) */
} Runs;

typedef struct {
    int32_t *labels, *dist, *out;
    uint8_t *from;
    const float *relief; /* NULL: every pixel floods */
    float level;
    int64_t h, w;
} Flood;

/* Forward distances of row y's runs: from above and from the left. */
static void forward_row(const Flood *f, Runs runs, int64_t y) {
    int32_t *d = f->dist + y * f->w;
    const int32_t *up = y ? d - f->w : NULL;
    for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
        for (int64_t x = runs.span[2 * r]; x < runs.span[2 * r + 1]; x++) {
            int32_t best = up ? up[x] + 1 : FAR;
            int32_t left = x ? d[x - 1] + 1 : FAR;
            d[x] = left < best ? left : best;
        }
    }
}

/* Backward distances of row y's runs: from below and from the right. */
static void backward_row(const Flood *f, Runs runs, int64_t y) {
    int64_t w = f->w;
    int32_t *d = f->dist + y * w;
    const int32_t *down = y < f->h - 1 ? d + w : NULL;
    for (int64_t r = runs.first[y + 1] - 1; r >= runs.first[y]; r--) {
        for (int64_t x = runs.span[2 * r + 1] - 1; x >= runs.span[2 * r]; x--) {
            int32_t best = d[x];
            int32_t below = down ? down[x] + 1 : FAR;
            int32_t right = x < w - 1 ? d[x + 1] + 1 : FAR;
            best = below < best ? below : best;
            d[x] = right < best ? right : best;
        }
    }
}

/* Which neighbour an unlabelled pixel takes its label from, by the bits
 * (no labelled pixel at all) << 3 | above << 2 | left << 1 | right, where a bit
 * says that neighbour is one step nearer: the first in the order above, left,
 * right, below. */
static const uint8_t CHOICE[16] = {
    FROM_BELOW, FROM_RIGHT, FROM_LEFT, FROM_LEFT, FROM_ABOVE, FROM_ABOVE, FROM_ABOVE, FROM_ABOVE,
    FROM_NONE,  FROM_NONE,  FROM_NONE, FROM_NONE, FROM_NONE,  FROM_NONE,  FROM_NONE,  FROM_NONE};

/* Select a where mask is all ones, b where it is 0: arithmetic, so that the
 * compiler keeps it free of branches. */
static inline int32_t pick(int32_t mask, int32_t a, int32_t b) { return (a & mask) | (b & ~mask); }

/* Row y's choices, needing final distances in rows y - 1 .. y + 1 and the final
 * labels of row y + 1: 'below' and 'left' in one pass along the row ('left' reads
 * a pixel to its left that is already final: labelled, 'below' or 'left'), then
 * 'right' back along it. Free of branches: runs are short and the choices
 * mixed, so branches would mostly be mispredicted. Neighbours beyond the row's
 * ends are read at the pixel itself (never one step nearer) instead. */
static void choose_row(const Flood *f, Runs runs, int64_t y) {
    int64_t w = f->w;
    const int32_t *d = f->dist + y * w;
    const int32_t *d_up = y ? d - w : d;
    int32_t *o = f->out + y * w;
    const int32_t *o_below = y < f->h - 1 ? o + w : o; /* the last row never takes from below */
    uint8_t *from = f->from + y * w;
    for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
        int64_t start = runs.span[2 * r], end = runs.span[2 * r + 1];
        for (int64_t x = start; x < end; x++) {
            int64_t left = x - (x > 0), right = x + (x < w - 1);
            int32_t nearer = d[x] - 1;
            unsigned bits = (unsigned)(d[x] >= FAR) << 3 | (unsigned)(d_up[x] == nearer) << 2 |
                            (unsigned)(d[left] == nearer) << 1 | (unsigned)(d[right] == nearer);
            uint8_t choice = CHOICE[bits];
            from[x] = choice;
            int32_t value = pick(-(int32_t)(choice == FROM_BELOW), o_below[x], o[x]);
            o[x] = pick(-(int32_t)(choice == FROM_LEFT), o[left], value);
        }
        for (int64_t x = end - 1; x >= start; x--) {
            int64_t right = x + (x < w - 1);
            o[x] = pick(-(int32_t)(from[x] == FROM_RIGHT), o[right], o[x]);
        }
    }
}

/* Row y's 'above' choices (row y - 1 is final) and this level's labels (every
 * pixel with a choice when `everything`, else those with relief <= level); and
 * the runs left unlabelled, found from the transitions between labelled and not
 * (start, end, start, ... -- exactly the span pairs), appended to `next` from
 * index `count`. Returns the count of runs so far. */
static inline int64_t settle_row(const Flood *f, Runs runs, int64_t y, Runs next, int64_t count,
                                 const int everything) {
    int64_t w = f->w;
    int32_t *o = f->out + y * w, *l = f->labels + y * w, *d = f->dist + y * w;
    const int32_t *o_up = y ? o - w : o; /* row 0 never takes from above */
    const uint8_t *from = f->from + y * w;
    const float *rel = everything ? NULL : f->relief + y * w;
    int32_t *edge = next.span + 2 * count;
    int64_t edges = 0;
    next.first[y] = count;
    for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
        int64_t start = runs.span[2 * r], end = runs.span[2 * r + 1];
        int32_t open = 0;
        for (int64_t x = start; x < end; x++) {
            uint8_t choice = from[x];
            int32_t value = pick(-(int32_t)(choice == FROM_ABOVE), o_up[x], o[x]);
            o[x] = value;
            int32_t take = (choice != FROM_NONE) & (everything || rel[x] <= f->level);
            l[x] = value & -take;
            d[x] &= take - 1;
            edge[edges] = (int32_t)x;
            edges += take == open; /* a run starts (open 0 -> 1) or ends */
            open = !take;
        }
        edge[edges] = (int32_t)end;
        edges += open;
    }
    count += edges / 2;
    next.first[y + 1] = count;
    return count;
}

/* The runs of unlabelled pixels of row y, from the transitions as in
 * settle_row, appended to `runs` from index `count`; returns the count so far. */
static int64_t runs_row(const Flood *f, Runs runs, int64_t y, int64_t count) {
    const int32_t *l = f->labels + y * f->w;
    int32_t *edge = runs.span + 2 * count;
    int64_t edges = 0;
    int32_t open = 0;
    runs.first[y] = count;
    for (int64_t x = 0; x < f->w; x++) {
        int32_t unlabelled = !l[x];
        edge[edges] = (int32_t)x;
        edges += unlabelled != open;
        open = unlabelled;
    }
    edge[edges] = (int32_t)f->w;
    edges += open;
    count += edges / 2;
    runs.first[y + 1] = count;
    return count;
}

EXPORT void emseg_flood_levels(int32_t *labels, const float *relief, const float *levels, int64_t count, int64_t h,
                               int64_t w, void *scratch) {
    int64_t n = h * w, max_runs = h * ((w + 1) / 2) + 1;
    if (n == 0 || count == 0) return;
    Flood f = {labels, scratch, (int32_t *)scratch + n, NULL, relief, 0.0f, h, w};
    Runs runs[2];
    runs[0].span = f.out + n;
    runs[1].span = runs[0].span + 2 * max_runs;
    runs[0].first = (int64_t *)(runs[1].span + 2 * max_runs);
    runs[1].first = runs[0].first + h + 1;
    f.from = (uint8_t *)(runs[1].first + h + 1);
    int64_t found = 0;
    for (int64_t y = 0; y < h; y++) {
        memcpy(f.out + y * w, labels + y * w, sizeof(int32_t) * (size_t)w);
        memset(f.dist + y * w, 0, sizeof(int32_t) * (size_t)w); /* labelled: 0; the rest are set next */
        found = runs_row(&f, runs[0], y, found);
        forward_row(&f, runs[0], y);
    }
    for (int64_t k = 0; k < count; k++) {
        Runs now = runs[k % 2], next = runs[(k + 1) % 2];
        int last = k + 1 == count;
        f.level = levels[k];
        f.relief = levels[k] == INFINITY ? NULL : relief;
        for (int64_t y = h - 1; y >= 0; y--) {
            backward_row(&f, now, y);
            if (y + 1 < h) choose_row(&f, now, y + 1);
        }
        choose_row(&f, now, 0);
        found = 0;
        for (int64_t y = 0; y < h; y++) {
            found = f.relief ? settle_row(&f, now, y, next, found, 0) : settle_row(&f, now, y, next, found, 1);
            if (!last) forward_row(&f, next, y);
        }
    }
}

/* Mark a pixel when its right or lower neighbour has another label. */
EXPORT void emseg_label_borders(const int32_t *labels, uint8_t *border, int64_t h, int64_t w) {
    for (int64_t y = 0; y < h; y++) {
        const int32_t *l = labels + y * w;
        uint8_t *b = border + y * w;
        for (int64_t x = 0; x < w; x++) {
            b[x] = (x + 1 < w && l[x] != l[x + 1]) || (y + 1 < h && l[x] != l[x + w]);
        }
    }
}

/* An importable (empty) module, so that setuptools can build and name this file
 * like any extension on every platform; runtime/native.py loads it with ctypes. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_regions", "C kernels loaded through ctypes.", -1, NULL};

PyMODINIT_FUNC PyInit__regions(void) { return PyModule_Create(&module); }
