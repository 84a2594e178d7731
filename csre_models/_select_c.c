/*
 * Row-wise selections of the CSRE loss, for csre_models.row_selection (which documents them and falls
 * back to torch's kernels where this module is not built).
 *
 * top_k(values, rows, columns, k, out_values, out_indices) -> bool
 *
 *   values: float32 (rows, columns), C order; out_values float32 and out_indices int64 (rows, k).
 *   For every row, the k entries that come first in the order "larger value first, equal values by
 *   lower column", written in increasing column order. Returns False if a row holds a NaN (the outputs
 *   are then unspecified: torch decides where NaN goes).
 *
 *   torch.topk on the CPU copies every (value, index) pair of a row and heap-sorts the top k; for the
 *   hard negatives (k = 512 of 40,091) that is 10 ns an entry. Here a strided sample of the row gives a
 *   threshold that about 2k entries reach, one pass collects those entries (with their columns, in
 *   order), and a quickselect on the candidates finds the k-th value. A threshold that too few entries
 *   reach is lowered and the pass repeated; its last resort takes every entry.
 *
 * first_distinct(values, rows, draws, count, out, complete) -> None
 *
 *   values: int64 (rows, draws), C order; out int64 (rows, count); complete uint8 (rows,).
 *   For every row, the first `count` distinct values in draw (column) order, and whether the row had
 *   that many. An incomplete row is padded with its first value.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

#define SAMPLE_SIZE 1024

static void swap_floats(float *a, float *b) {
    float t = *a;
    *a = *b;
    *b = t;
}

/* The value of rank q (0 = the largest) of a[0..n), n >= 1, no NaN. Reorders a. */
static float kth_largest(float *a, Py_ssize_t n, Py_ssize_t q) {
    Py_ssize_t lo = 0, hi = n - 1;
    while (hi > lo) {
        Py_ssize_t mid = lo + (hi - lo) / 2; /* median of three, moved to mid */
        if (a[lo] < a[mid]) swap_floats(&a[lo], &a[mid]);
        if (a[mid] < a[hi]) swap_floats(&a[mid], &a[hi]);
        if (a[lo] < a[mid]) swap_floats(&a[lo], &a[mid]);
        float pivot = a[mid];
        Py_ssize_t i = lo, j = hi;
        while (i <= j) { /* Hoare partition, descending: entries equal to the pivot split evenly */
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) swap_floats(&a[i++], &a[j--]);
        }
        if (q <= j) hi = j;
        else if (q >= i) lo = i;
        else return a[q]; /* between the two halves: equal to the pivot */
    }
    return a[q];
}

/*
 * Top k of one row (1 <= k <= n). scratch: n floats; candidate_values: n floats; candidate_columns: n
 * int64. Returns 0 if the row holds a NaN.
 */
static int top_k_row(const float *row, Py_ssize_t n, Py_ssize_t k, float *out_values, int64_t *out_columns,
                     float *scratch, float *candidate_values, int64_t *candidate_columns) {
    Py_ssize_t sample = n < SAMPLE_SIZE ? n : SAMPLE_SIZE;
    for (Py_ssize_t s = 0; s < sample; s++) scratch[s] = row[(Py_ssize_t)(((int64_t)s * n) / sample)];
    /* Rank of the threshold in the sample: twice the expected share of the top k, plus a margin. */
    Py_ssize_t rank = (Py_ssize_t)((2 * (int64_t)k * sample) / n) + 16;
    Py_ssize_t count;
    int nan = 0;
    for (Py_ssize_t s = 0; s < sample; s++) nan |= scratch[s] != scratch[s];
    if (nan) return 0; /* kth_largest needs an order */
    for (;;) {
        int last_resort = rank >= sample;
        float threshold = last_resort ? -INFINITY : kth_largest(scratch, sample, rank - 1);
        count = 0;
        for (Py_ssize_t j = 0; j < n; j++) { /* branch-free: every entry is stored, the count passes the kept ones */
            float v = row[j];
            nan |= v != v;
            candidate_values[count] = v;
            candidate_columns[count] = j;
            count += v >= threshold;
        }
        if (nan) return 0;
        if (count >= k) break;
        rank *= 4; /* at least k entries exist, so the last resort always ends the loop */
    }
    memcpy(scratch, candidate_values, (size_t)count * sizeof *scratch);
    float kth = kth_largest(scratch, count, k - 1);
    Py_ssize_t above = 0;
    for (Py_ssize_t c = 0; c < count; c++) above += candidate_values[c] > kth;
    Py_ssize_t equal_wanted = k - above, written = 0;
    for (Py_ssize_t c = 0; c < count && written < k; c++) {
        float v = candidate_values[c];
        if (v > kth || (v == kth && equal_wanted-- > 0)) {
            out_values[written] = v;
            out_columns[written++] = candidate_columns[c];
        }
    }
    return 1;
}

static int check_length(Py_buffer *view, Py_ssize_t items, Py_ssize_t itemsize, const char *name) {
    if (view->len != items * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s holds %zd bytes, expected %zd", name, view->len, items * itemsize);
        return 0;
    }
    return 1;
}

static PyObject *top_k(PyObject *self, PyObject *args) {
    Py_buffer values, out_values, out_indices;
    Py_ssize_t rows, columns, k;
    if (!PyArg_ParseTuple(args, "y*nnnw*w*", &values, &rows, &columns, &k, &out_values, &out_indices))
        return NULL;
    PyObject *result = NULL;
    float *scratch = NULL, *candidate_values = NULL;
    int64_t *candidate_columns = NULL;
    if (rows < 0 || k < 1 || k > columns) {
        PyErr_Format(PyExc_ValueError, "need rows >= 0 and 1 <= k <= columns, got rows=%zd, k=%zd, columns=%zd",
                     rows, k, columns);
        goto done;
    }
    if (!check_length(&values, rows * columns, 4, "values") || !check_length(&out_values, rows * k, 4, "out_values")
        || !check_length(&out_indices, rows * k, 8, "out_indices"))
        goto done;
    scratch = PyMem_RawMalloc((size_t)columns * sizeof *scratch);
    candidate_values = PyMem_RawMalloc((size_t)columns * sizeof *candidate_values);
    candidate_columns = PyMem_RawMalloc((size_t)columns * sizeof *candidate_columns);
    if (!scratch || !candidate_values || !candidate_columns) {
        PyErr_NoMemory();
        goto done;
    }
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows && ok; r++)
        ok = top_k_row((const float *)values.buf + r * columns, columns, k, (float *)out_values.buf + r * k,
                       (int64_t *)out_indices.buf + r * k, scratch, candidate_values, candidate_columns);
    Py_END_ALLOW_THREADS
    result = PyBool_FromLong(ok);
done:
    PyMem_RawFree(scratch);
    PyMem_RawFree(candidate_values);
    PyMem_RawFree(candidate_columns);
    PyBuffer_Release(&values);
    PyBuffer_Release(&out_values);
    PyBuffer_Release(&out_indices);
    return result;
}

/* First `count` distinct values of row[0..draws) into out; returns how many were found (<= count). */
static Py_ssize_t first_distinct_row(const int64_t *row, Py_ssize_t draws, Py_ssize_t count, int64_t *out,
                                     int64_t *table_keys, uint8_t *table_used, size_t table_mask) {
    memset(table_used, 0, table_mask + 1);
    Py_ssize_t found = 0;
    for (Py_ssize_t j = 0; j < draws && found < count; j++) {
        uint64_t key = (uint64_t)row[j];
        size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 32) & table_mask;
        while (table_used[slot] && table_keys[slot] != row[j]) slot = (slot + 1) & table_mask;
        if (table_used[slot]) continue; /* drawn before */
        table_used[slot] = 1;
        table_keys[slot] = row[j];
        out[found++] = row[j];
    }
    return found;
}

static PyObject *first_distinct(PyObject *self, PyObject *args) {
    Py_buffer values, out, complete;
    Py_ssize_t rows, draws, count;
    if (!PyArg_ParseTuple(args, "y*nnnw*w*", &values, &rows, &draws, &count, &out, &complete)) return NULL;
    PyObject *result = NULL;
    int64_t *table_keys = NULL;
    uint8_t *table_used = NULL;
    size_t table_size = 16;
    if (rows < 0 || draws < 1 || count < 1) {
        PyErr_Format(PyExc_ValueError, "need rows >= 0, draws >= 1 and count >= 1, got %zd, %zd, %zd", rows, draws,
                     count);
        goto done;
    }
    if (!check_length(&values, rows * draws, 8, "values") || !check_length(&out, rows * count, 8, "out")
        || !check_length(&complete, rows, 1, "complete"))
        goto done;
    while (table_size < 2 * (size_t)(draws < count ? draws : count)) table_size *= 2; /* at most half full */
    table_keys = PyMem_RawMalloc(table_size * sizeof *table_keys);
    table_used = PyMem_RawMalloc(table_size);
    if (!table_keys || !table_used) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t r = 0; r < rows; r++) {
        const int64_t *row = (const int64_t *)values.buf + r * draws;
        int64_t *row_out = (int64_t *)out.buf + r * count;
        Py_ssize_t found = first_distinct_row(row, draws, count, row_out, table_keys, table_used, table_size - 1);
        ((uint8_t *)complete.buf)[r] = found == count;
        for (Py_ssize_t j = found; j < count; j++) row_out[j] = row[0];
    }
    Py_END_ALLOW_THREADS
    Py_INCREF(Py_None);
    result = Py_None;
done:
    PyMem_RawFree(table_keys);
    PyMem_RawFree(table_used);
    PyBuffer_Release(&values);
    PyBuffer_Release(&out);
    PyBuffer_Release(&complete);
    return result;
}

static PyMethodDef methods[] = {
    {"top_k", top_k, METH_VARARGS,
     "top_k(values, rows, columns, k, out_values, out_indices) -> bool: the k largest entries of every row "
     "(ties to lower columns), in column order; False if a row holds NaN"},
    {"first_distinct", first_distinct, METH_VARARGS,
     "first_distinct(values, rows, draws, count, out, complete) -> None: the first count distinct values of "
     "every row, in draw order"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_select_c", "Row-wise selections of the CSRE loss.", -1,
                                    methods};

PyMODINIT_FUNC PyInit__select_c(void) { return PyModule_Create(&module); }
