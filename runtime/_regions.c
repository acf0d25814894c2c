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
 * 1. taxicab distance to the nearest labelled pixel, by two scans (exact for
 *    this metric);
 * 2. each unlabelled pixel takes its label from the first neighbour one step
 *    nearer in the order above, left, right, below -- the search's choice, as
 *    it spreads each ring down, then right, left and up;
 * 3. chains of choices only run above*(left*|right*) or (left*|right*)below*:
 *    after a step down every step is down, after a step left it is left or
 *    down, after a step up never down. So a bottom-up scan resolves 'below',
 *    then per row 'left' and 'right', and a last top-down scan 'above', each
 *    reading a neighbour that is already final.
 * Memory traffic, not arithmetic, is the cost: after one pass over the image
 * every scan visits only the runs of pixels still unlabelled (from a third of
 * the image at the first level to an eighth at the last), and the distances
 * and labels of labelled pixels (0 and their label) are kept across levels. */
EXPORT int64_t emseg_flood_scratch(int64_t h, int64_t w) {
    int64_t max_runs = h * ((w + 1) / 2) + 1;
    return h * w * (2 * (int64_t)sizeof(int32_t) + 1) + 2 * max_runs * 2 * (int64_t)sizeof(int32_t) +
           2 * (h + 1) * (int64_t)sizeof(int64_t);
}

typedef struct {
    int64_t *first; /* runs of row y: first[y] .. first[y + 1] - 1 */
    int32_t *span;  /* pairs: start, end (exclusive) */
} Runs;

static void flood_level(int32_t *labels, const float *relief, float level, int64_t h, int64_t w, int32_t *dist,
                        int32_t *out, uint8_t *from, Runs runs) {
    const int32_t far = 1 << 29; /* 'no labelled pixel': stays >= far after +1 and min */
    for (int64_t y = 0; y < h; y++) {
        int32_t *d = dist + y * w;
        const int32_t *up = y ? d - w : NULL;
        for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
            for (int64_t x = runs.span[2 * r]; x < runs.span[2 * r + 1]; x++) {
                int32_t best = up ? up[x] + 1 : far;
                int32_t left = x ? d[x - 1] + 1 : far;
                d[x] = left < best ? left : best;
            }
        }
    }
    for (int64_t y = h - 1; y >= 0; y--) {
        int32_t *d = dist + y * w;
        const int32_t *down = y < h - 1 ? d + w : NULL;
        for (int64_t r = runs.first[y + 1] - 1; r >= runs.first[y]; r--) {
            for (int64_t x = runs.span[2 * r + 1] - 1; x >= runs.span[2 * r]; x--) {
                int32_t best = d[x];
                int32_t below = down ? down[x] + 1 : far;
                int32_t right = x < w - 1 ? d[x + 1] + 1 : far;
                best = below < best ? below : best;
                d[x] = right < best ? right : best;
            }
        }
    }
    for (int64_t y = h - 1; y >= 0; y--) {
        const int32_t *d = dist + y * w;
        const int32_t *o_below = y < h - 1 ? out + (y + 1) * w : NULL;
        int32_t *o = out + y * w;
        uint8_t *f = from + y * w;
        for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
            int64_t start = runs.span[2 * r], end = runs.span[2 * r + 1];
            for (int64_t x = start; x < end; x++) {
                int32_t nearer = d[x] - 1;
                uint8_t choice = FROM_BELOW;
                if (d[x] >= far) choice = FROM_NONE;
                else if (y && d[x - w] == nearer) choice = FROM_ABOVE;
                else if (x && d[x - 1] == nearer) choice = FROM_LEFT;
                else if (x < w - 1 && d[x + 1] == nearer) choice = FROM_RIGHT;
                else o[x] = o_below[x]; /* the last row always has a nearer neighbour above or beside */
                f[x] = choice;
            }
            for (int64_t x = start; x < end; x++)
                if (f[x] == FROM_LEFT) o[x] = o[x - 1];
            for (int64_t x = end - 1; x >= start; x--)
                if (f[x] == FROM_RIGHT) o[x] = o[x + 1];
        }
    }
    for (int64_t y = 0; y < h; y++) {
        int32_t *o = out + y * w, *l = labels + y * w, *d = dist + y * w;
        const uint8_t *f = from + y * w;
        const float *rel = relief ? relief + y * w : NULL;
        for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
            for (int64_t x = runs.span[2 * r]; x < runs.span[2 * r + 1]; x++) {
                if (f[x] == FROM_ABOVE) o[x] = o[x - w];
                if (f[x] != FROM_NONE && (!rel || rel[x] <= level)) {
                    l[x] = o[x];
                    d[x] = 0; /* labelled from now on */
                }
            }
        }
    }
}

/* The runs of unlabelled pixels of each row, found in `within` (all rows when NULL). */
static void find_runs(const int32_t *labels, int64_t h, int64_t w, const Runs *within, Runs runs) {
    int64_t count = 0;
    for (int64_t y = 0; y < h; y++) {
        const int32_t *l = labels + y * w;
        runs.first[y] = count;
        int64_t begin = within ? within->first[y] : 0, stop = within ? within->first[y + 1] : 1;
        for (int64_t r = begin; r < stop; r++) {
            int64_t x = within ? within->span[2 * r] : 0, end = within ? within->span[2 * r + 1] : w;
            while (x < end) {
                while (x < end && l[x]) x++;
                if (x == end) break;
                runs.span[2 * count] = (int32_t)x;
                while (x < end && !l[x]) x++;
                runs.span[2 * count++ + 1] = (int32_t)x;
            }
        }
    }
    runs.first[h] = count;
}

EXPORT void emseg_flood_levels(int32_t *labels, const float *relief, const float *levels, int64_t count, int64_t h,
                               int64_t w, void *scratch) {
    int64_t n = h * w, max_runs = h * ((w + 1) / 2) + 1;
    if (n == 0) return;
    int32_t *dist = scratch, *out = dist + n;
    Runs runs[2];
    runs[0].span = out + n;
    runs[1].span = runs[0].span + 2 * max_runs;
    runs[0].first = (int64_t *)(runs[1].span + 2 * max_runs);
    runs[1].first = runs[0].first + h + 1;
    uint8_t *from = (uint8_t *)(runs[1].first + h + 1);
    memcpy(out, labels, sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) dist[i] = labels[i] ? 0 : 1 << 29;
    find_runs(labels, h, w, NULL, runs[0]);
    for (int64_t k = 0; k < count; k++) {
        int everything = levels[k] == INFINITY;
        flood_level(labels, everything ? NULL : relief, levels[k], h, w, dist, out, from, runs[k % 2]);
        if (k + 1 < count) find_runs(labels, h, w, &runs[k % 2], runs[(k + 1) % 2]);
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
