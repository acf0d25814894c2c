/*
 * The watershed's region operations in C: the same results as runtime/post/regions.py
 * (numpy), bit for bit, at about ten times the speed.
 *
 * Why C: on big sections the numpy watershed cost twice the network's time
 * (docs/big-sections.md); these loops are sequential scans that numpy can only
 * express as many whole-array passes. The library has no Python or numpy API:
 * runtime/post/native.py calls it through ctypes, which releases the GIL, so a
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

/* Loops that vectorise run in an AVX2 copy where the CPU has it (chosen once, at
 * load time, by the dynamic linker): the Gaussian took 1.5 instead of 2.4 ms per
 * megapixel (AMD EPYC Zen 4, 2026-11-27), with the same results, since each
 * output still adds its taps one by one in the same order. The flood gained
 * nothing: its cost is in chains along a row. GCC on x86-64 Linux only, where
 * function clones are known to build; elsewhere the one portable copy. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
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
 * mirrored edges; `out` (h x w, contiguous) may not alias `in`, whose rows start
 * `stride` floats apart, so that a piece of a bigger window is read in place.
 * Each output adds its taps in numpy's order (regions._correlate). Returns 0, or
 * -1 without memory. */
VECTOR_CLONES EXPORT int emseg_gaussian(const float *in, int64_t stride, float *out, int64_t h, int64_t w,
                                        const float *kernel, int64_t radius) {
    int64_t taps = 2 * radius + 1;
    float *row = malloc(sizeof(float) * (size_t)(w + 2 * radius));
    if (!row) return -1;
    for (int64_t y = 0; y < h; y++) {
        float *acc = out + y * w;
        set_scaled(acc, in + symmetric(y - radius, h) * stride, kernel[0], w);
        for (int64_t k = 1; k < taps; k++) add_scaled(acc, in + symmetric(y - radius + k, h) * stride, kernel[k], w);
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

/* Bytes of working memory emseg_label needs: one int32 per provisional label (at
 * most one per run of the image) and the runs of two rows. */
EXPORT int64_t emseg_label_scratch(int64_t h, int64_t w) {
    return (h * ((w + 1) / 2) + 1 + 2 * 3 * ((w + 1) / 2)) * (int64_t)sizeof(int32_t);
}

/* 4-connected components of the nonzero pixels of `mask`, numbered 1..n in the
 * raster order of their first pixel; 0 elsewhere. Returns n. `scratch` holds
 * emseg_label_scratch(h, w) bytes.
 *
 * Run by run rather than pixel by pixel: seeds are large blobs, so a row has a
 * few runs, each joined to the runs above that it overlaps, and filled in one
 * vectorised store (1.5 instead of 2.0 ms per megapixel of seeds, AMD EPYC Zen 4,
 * 2026-11-27). A run with no run above gets a new provisional label; the first
 * run of a component is such a run, and labels grow in raster order, so the
 * smallest label of a component is its first run's. */
EXPORT int64_t emseg_label(const uint8_t *mask, int32_t *labels, int64_t h, int64_t w, void *scratch) {
    int32_t *parent = scratch;
    int32_t *prev = parent + h * ((w + 1) / 2) + 1, *cur = prev + 3 * ((w + 1) / 2); /* start, end, label */
    int64_t previous = 0;
    int32_t next = 1;
    parent[0] = 0;
    for (int64_t y = 0; y < h; y++) {
        const uint8_t *m = mask + y * w;
        int32_t *l = labels + y * w;
        int64_t current = 0, p = 0, x = 0;
        while (x < w) {
            while (x < w && !m[x]) l[x++] = 0;
            if (x == w) break;
            int64_t start = x;
            while (x < w && m[x]) x++;
            /* Runs above that share a column with [start, x); the last of them may
             * reach the next run too, so the search resumes at it. */
            while (p < previous && prev[3 * p + 1] <= start) p++;
            int32_t label = 0;
            int64_t q = p;
            for (; q < previous && prev[3 * q] < x; q++) {
                int32_t root = find_root(parent, prev[3 * q + 2]);
                if (!label) label = root;
                else if (root < label) parent[label] = root, label = root;
                else if (label < root) parent[root] = label;
            }
            if (q > p) p = q - 1;
            if (!label) parent[next] = next, label = next++;
            for (int64_t i = start; i < x; i++) l[i] = label;
            cur[3 * current] = (int32_t)start, cur[3 * current + 1] = (int32_t)x, cur[3 * current + 2] = label;
            current++;
        }
        int32_t *swap = prev;
        prev = cur, cur = swap, previous = current;
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

enum { FROM_ABOVE, FROM_LEFT, FROM_RIGHT, FROM_BELOW };

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
 *    down, after a step up never down. So a bottom-up scan can resolve 'below'
 *    and, right to left, 'right'; a top-down scan, left to right, 'above' and
 *    'left', each reading a neighbour that is already final.
 * Each level is therefore two sweeps over the image, each doing every step that
 * the rows at hand allow, in one pass along a row where it can: bottom-up, the
 * backward distances of a row, then the choices of the row below it (which need
 * the finished distances above) with its 'below' and 'right' labels; top-down,
 * the 'above' and 'left' labels and this level's labels, the unlabelled runs
 * left for the next level and its forward distances. Every sweep visits only the
 * runs of pixels still unlabelled (from a third of the image at the first level
 * to an eighth at the last). On a piece of about 1000 px, whose arrays stay in
 * cache, the cost is in chains of dependent minima and selects along a row and
 * in the ends of short runs, so values carried along a row stay in registers,
 * choices are table lookups and selects rather than branches, the passes per
 * row are as few as the dependencies allow (five became three), and the labels
 * are worked on in place, with no copy: 16.0 -> 11.7 ms per megapixel on a
 * 1152-px piece of a vnc-stack2 mosaic (AMD EPYC Zen 4, 2026-11-27, alternating
 * runs); 16-bit distances made no difference. */
EXPORT int64_t emseg_flood_scratch(int64_t h, int64_t w) {
    /* One spare pair: the run finders write one entry past the last run. */
    int64_t max_runs = h * ((w + 1) / 2) + 1;
    return h * w * ((int64_t)sizeof(int32_t) + 1) + 2 * max_runs * 2 * (int64_t)sizeof(int32_t) +
           2 * (h + 1) * (int64_t)sizeof(int64_t);
}

static const int32_t FAR = 1 << 29; /* 'no labelled pixel yet' in a scan: any real distance is smaller */

typedef struct {
    int64_t *first; /* runs of row y: first[y] .. first[y + 1] - 1 */
    int32_t *span;  /* pairs: start, end (exclusive) */
} Runs;

/* Within a level `labels` holds, for each unlabelled pixel, the label it would take
 * (written before it is read); a pixel is labelled when its distance is 0. Only
 * the last level puts the pixels it does not take back to 0 (mask_row). */
typedef struct {
    int32_t *labels, *dist;
    uint8_t *from;
    const float *relief; /* NULL: every pixel floods */
    float level;
    int64_t h, w;
} Flood;

/* Backward distances of row y's runs: from below and from the right. */
static void backward_row(const Flood *f, Runs runs, int64_t y) {
    int64_t w = f->w;
    int32_t *d = f->dist + y * w;
    const int32_t *down = y < f->h - 1 ? d + w : NULL;
    for (int64_t r = runs.first[y + 1] - 1; r >= runs.first[y]; r--) {
        int64_t end = runs.span[2 * r + 1];
        int32_t right = end < w ? 1 : FAR; /* the labelled pixel after the run is at distance 0 */
        for (int64_t x = end - 1; x >= runs.span[2 * r]; x--) {
            int32_t best = d[x];
            int32_t below = down ? down[x] + 1 : FAR;
            best = below < best ? below : best;
            best = right < best ? right : best;
            d[x] = best;
            right = best + 1;
        }
    }
}

/* Which neighbour an unlabelled pixel takes its label from, by the bits
 * above << 2 | left << 1 | right, where a bit says that neighbour is one step
 * nearer: the first in the order above, left, right, below. (There is always
 * one: the flood starts only with a labelled pixel, so every distance is finite.) */
static const uint8_t CHOICE[8] = {FROM_BELOW, FROM_RIGHT, FROM_LEFT,  FROM_LEFT,
                                  FROM_ABOVE, FROM_ABOVE, FROM_ABOVE, FROM_ABOVE};

/* Select a where mask is all ones, b where it is 0: arithmetic, so that the
 * compiler keeps it free of branches. */
static inline int32_t pick(int32_t mask, int32_t a, int32_t b) { return (a & mask) | (b & ~mask); }

/* Row y's choices, needing final distances in rows y - 1 .. y + 1 and the final
 * labels of row y + 1, in one pass from right to left: 'below' reads the row
 * below, 'right' the pixel to its right, already final ('right', 'below' or
 * labelled); 'above' and 'left' wait for settle_row. Free of branches: runs are
 * short and the choices mixed, so branches would mostly be mispredicted.
 * Neighbours beyond the row's ends are read at the pixel itself (never one step
 * nearer) instead. */
static void choose_row(const Flood *f, Runs runs, int64_t y) {
    int64_t w = f->w;
    const int32_t *d = f->dist + y * w;
    const int32_t *d_up = y ? d - w : d;
    int32_t *o = f->labels + y * w;
    const int32_t *o_below = y < f->h - 1 ? o + w : o; /* the last row never takes from below */
    uint8_t *from = f->from + y * w;
    for (int64_t r = runs.first[y + 1] - 1; r >= runs.first[y]; r--) {
        int64_t start = runs.span[2 * r], end = runs.span[2 * r + 1];
        int32_t right_value = o[end - (end == w)]; /* labelled, or never taken at the row's end */
        for (int64_t x = end - 1; x >= start; x--) {
            int64_t left = x - (x > 0), right = x + (x < w - 1);
            int32_t nearer = d[x] - 1;
            unsigned bits = (unsigned)(d_up[x] == nearer) << 2 |
                            (unsigned)(d[left] == nearer) << 1 | (unsigned)(d[right] == nearer);
            uint8_t choice = CHOICE[bits];
            from[x] = choice;
            int32_t value = pick(-(int32_t)(choice == FROM_BELOW), o_below[x], o[x]);
            right_value = pick(-(int32_t)(choice == FROM_RIGHT), right_value, value);
            o[x] = right_value;
        }
    }
}

/* Row y, left to right, once row y - 1 (above) is final: the 'above' and 'left'
 * choices, so every pixel of the row holds its label. Unless this is the `last`
 * level (whose pixels above the level mask_row puts back to 0), this level's take
 * (every pixel when `everything`, else those with relief <= level), the runs
 * left unlabelled -- found from the transitions between labelled and not (start,
 * end, start, ... -- exactly the span pairs), appended to `next` from index
 * `count` -- and the next level's forward distances of those runs (from above
 * and from the left). Returns the count of runs so far. */
static inline int64_t settle_row(const Flood *f, Runs runs, int64_t y, Runs next, int64_t count,
                                 const int everything, const int last) {
    int64_t w = f->w;
    int32_t *o = f->labels + y * w, *d = f->dist + y * w;
    const int32_t *o_up = y ? o - w : o; /* row 0 never takes from above */
    const int32_t *d_up = y ? d - w : NULL;
    const uint8_t *from = f->from + y * w;
    const float *rel = everything ? NULL : f->relief + y * w;
    int32_t *edge = next.span + 2 * count;
    int64_t edges = 0;
    next.first[y] = count;
    for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
        int64_t start = runs.span[2 * r], end = runs.span[2 * r + 1];
        int32_t open = 0;
        int32_t value = o[start - (start > 0)]; /* labelled, or never taken at the row's start */
        int32_t left_dist = start ? 0 : FAR - 1;
        for (int64_t x = start; x < end; x++) {
            uint8_t choice = from[x];
            value = pick(-(int32_t)(choice == FROM_LEFT), value, o[x]);
            value = pick(-(int32_t)(choice == FROM_ABOVE), o_up[x], value);
            o[x] = value;
            if (last) continue;
            int32_t take = everything || rel[x] <= f->level;
            int32_t above = d_up ? d_up[x] + 1 : FAR;
            int32_t dist = left_dist + 1 < above ? left_dist + 1 : above;
            left_dist = dist & (take - 1);
            d[x] = left_dist;
            edge[edges] = (int32_t)x;
            edges += take == open; /* a run starts (open 0 -> 1) or ends */
            open = !take;
        }
        if (last) continue;
        edge[edges] = (int32_t)end;
        edges += open;
    }
    count += edges / 2;
    next.first[y + 1] = count;
    return count;
}

/* The last level's end for row y, once row y + 1 has read it: the pixels above the
 * level back to 0. */
static void mask_row(const Flood *f, Runs runs, int64_t y) {
    int32_t *o = f->labels + y * f->w;
    const float *rel = f->relief + y * f->w;
    for (int64_t r = runs.first[y]; r < runs.first[y + 1]; r++) {
        for (int64_t x = runs.span[2 * r]; x < runs.span[2 * r + 1]; x++) o[x] &= -(int32_t)(rel[x] <= f->level);
    }
}

/* The flood's start for row y, in one pass: the runs of its unlabelled pixels,
 * from the transitions as in settle_row, appended to `runs` from index `count`,
 * and the forward distances of the first level. Returns the count of runs so far. */
static int64_t start_row(const Flood *f, Runs runs, int64_t y, int64_t count) {
    int64_t w = f->w;
    const int32_t *l = f->labels + y * w;
    int32_t *d = f->dist + y * w;
    const int32_t *d_up = y ? d - w : NULL;
    int32_t *edge = runs.span + 2 * count;
    int64_t edges = 0;
    int32_t open = 0, left = FAR - 1;
    runs.first[y] = count;
    for (int64_t x = 0; x < w; x++) {
        int32_t label = l[x], unlabelled = !label;
        int32_t above = d_up ? d_up[x] + 1 : FAR;
        int32_t dist = left + 1 < above ? left + 1 : above;
        left = dist & -unlabelled;
        d[x] = left;
        edge[edges] = (int32_t)x;
        edges += unlabelled != open;
        open = unlabelled;
    }
    edge[edges] = (int32_t)w;
    edges += open;
    count += edges / 2;
    runs.first[y + 1] = count;
    return count;
}

EXPORT void emseg_flood_levels(int32_t *labels, const float *relief, const float *levels, int64_t count, int64_t h,
                               int64_t w, void *scratch) {
    int64_t n = h * w, max_runs = h * ((w + 1) / 2) + 1;
    if (n == 0 || count == 0) return;
    Flood f = {labels, scratch, NULL, relief, 0.0f, h, w};
    Runs runs[2];
    runs[0].span = f.dist + n;
    runs[1].span = runs[0].span + 2 * max_runs;
    runs[0].first = (int64_t *)(runs[1].span + 2 * max_runs);
    runs[1].first = runs[0].first + h + 1;
    f.from = (uint8_t *)(runs[1].first + h + 1);
    int64_t found = 0, first = 0;
    while (first < n && !labels[first]) first++;
    if (first == n) return; /* no labelled pixel: nothing floods */
    for (int64_t y = 0; y < h; y++) found = start_row(&f, runs[0], y, found);
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
            if (f.relief) found = last ? settle_row(&f, now, y, next, found, 0, 1) : settle_row(&f, now, y, next, found, 0, 0);
            else found = last ? settle_row(&f, now, y, next, found, 1, 1) : settle_row(&f, now, y, next, found, 1, 0);
            if (last && f.relief && y) mask_row(&f, now, y - 1);
        }
        if (last && f.relief) mask_row(&f, now, h - 1);
    }
}

/* Mark a pixel when its right or lower neighbour has another label: the last
 * column and row apart, so that the inner loop has no bounds to test and
 * vectorises. */
VECTOR_CLONES EXPORT void emseg_label_borders(const int32_t *labels, uint8_t *border, int64_t h, int64_t w) {
    for (int64_t y = 0; y < h; y++) {
        const int32_t *l = labels + y * w;
        uint8_t *b = border + y * w;
        if (y + 1 < h) {
            const int32_t *below = l + w;
            for (int64_t x = 0; x + 1 < w; x++) b[x] = (l[x] != l[x + 1]) | (l[x] != below[x]);
            if (w) b[w - 1] = l[w - 1] != below[w - 1];
        } else {
            for (int64_t x = 0; x + 1 < w; x++) b[x] = l[x] != l[x + 1];
            if (w) b[w - 1] = 0;
        }
    }
}

/* An importable (empty) module, so that setuptools can build and name this file
 * like any extension on every platform; runtime/post/native.py loads it with ctypes. */
static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_regions", "C kernels loaded through ctypes.", -1, NULL};

PyMODINIT_FUNC PyInit__regions(void) { return PyModule_Create(&module); }
