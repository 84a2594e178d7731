/*
 * A fast encoder of HDF5's "shuffle + LZF" chunk format, for skeldata.streamwriter.
 *
 * shuffle_lzf(data: bytes-like, itemsize: int) -> (bytes, compressed: bool)
 *
 *   Byte-shuffles `data` as HDF5's shuffle filter does (byte k of every item, for k = 0 .. itemsize-1,
 *   one plane after another) and compresses the result as an LZF stream, which h5py's LZF filter (and
 *   any liblzf decoder) decodes back to the shuffled bytes. When the stream would not be smaller than
 *   the data, the shuffled bytes themselves and False: HDF5 then stores the chunk shuffled but
 *   uncompressed (the LZF filter is optional).
 *
 * Only the encoder is ours; the format is LZF's (liblzf 3.x, as h5py bundles it):
 *
 *   000LLLLL <L+1 literal bytes>            a literal run of 1-32 bytes
 *   LLLooooo oooooooo                       a back reference of L+2 = 3-8 bytes
 *   111ooooo LLLLLLLL oooooooo              a back reference of L+9 = 9-264 bytes
 *
 * where o is the distance minus one (0-8191) and a reference may overlap the bytes it produces.
 *
 * Why not liblzf's encoder: on shuffled float32 joint coordinates half of the bytes (the low mantissa
 * planes) are close to random, and liblzf searches its hash table at every one of them. This encoder
 * searches at every byte until it misses a while, then skips ahead further and further (as LZ4's
 * acceleration does) until the next match, which makes the random planes cheap. Runs of repeated
 * bytes (the zero rows of an absent second body) are still found at their start. The stream is a
 * little larger where matches hide in noise (measured in docs/performance.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define HASH_LOG 14
#define HASH_SIZE (1u << HASH_LOG)
#define MAX_DISTANCE 8192 /* distances 1-8192 */
#define MAX_MATCH 264
#define MIN_MATCH 3
#define MAX_LITERALS 32
#ifndef SKIP_SHIFT
#define SKIP_SHIFT 5 /* after 2^SKIP_SHIFT misses in a row the step grows by one byte */
#endif

static inline uint32_t read3(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16);
}

static inline uint32_t hash3(uint32_t v) { return (v * 2654435761u) >> (32 - HASH_LOG); }

/* Literal runs for in[0, n): 0 if they do not fit before out_end. */
static int put_literals(const uint8_t *in, size_t n, uint8_t **op, const uint8_t *out_end) {
    while (n) {
        size_t run = n < MAX_LITERALS ? n : MAX_LITERALS;
        if ((size_t)(out_end - *op) < run + 1) return 0;
        *(*op)++ = (uint8_t)(run - 1);
        memcpy(*op, in, run);
        *op += run;
        in += run;
        n -= run;
    }
    return 1;
}

/* The LZF stream of in[0, n) in out[0, capacity): its length, or 0 if it does not fit. */
static size_t lzf_encode(const uint8_t *in, size_t n, uint8_t *out, size_t capacity, uint32_t *table) {
    const uint8_t *out_end = out + capacity;
    uint8_t *op = out;
    size_t ip = 0, literal_start = 0;
    unsigned misses = 0;
    memset(table, 0, HASH_SIZE * sizeof *table); /* positions + 1; 0 is empty */
    while (ip + MIN_MATCH <= n) {
        uint32_t key = read3(in + ip);
        uint32_t *slot = table + hash3(key);
        size_t candidate = *slot;
        *slot = (uint32_t)(ip + 1);
        if (candidate && ip - (candidate - 1) <= MAX_DISTANCE && read3(in + candidate - 1) == key) {
            size_t from = candidate - 1, limit = n - ip < MAX_MATCH ? n - ip : MAX_MATCH, length = MIN_MATCH;
            while (length < limit && in[from + length] == in[ip + length]) length++;
            if (!put_literals(in + literal_start, ip - literal_start, &op, out_end)) return 0;
            size_t distance = ip - from - 1, code = length - 2;
            if ((size_t)(out_end - op) < 3) return 0;
            if (code < 7) {
                *op++ = (uint8_t)((code << 5) | (distance >> 8));
            } else {
                *op++ = (uint8_t)((7u << 5) | (distance >> 8));
                *op++ = (uint8_t)(code - 7);
            }
            *op++ = (uint8_t)(distance & 0xff);
            ip += length;
            if (ip + 2 <= n) /* remember where the match's last byte starts three bytes */
                table[hash3(read3(in + ip - 1))] = (uint32_t)ip;
            literal_start = ip;
            misses = 0;
            continue;
        }
        misses++;
        ip += 1 + (misses >> SKIP_SHIFT);
    }
    if (!put_literals(in + literal_start, n - literal_start, &op, out_end)) return 0;
    return (size_t)(op - out);
}

/* HDF5's shuffle: byte k of item i goes to k * items + i; a tail shorter than an item stays in place. */
static void shuffle(const uint8_t *in, size_t n, size_t itemsize, uint8_t *out) {
    size_t items = n / itemsize;
    if (itemsize == 4) {
        uint8_t *p0 = out, *p1 = out + items, *p2 = out + 2 * items, *p3 = out + 3 * items;
        for (size_t i = 0; i < items; i++) {
            p0[i] = in[4 * i];
            p1[i] = in[4 * i + 1];
            p2[i] = in[4 * i + 2];
            p3[i] = in[4 * i + 3];
        }
    } else {
        for (size_t k = 0; k < itemsize; k++)
            for (size_t i = 0; i < items; i++) out[k * items + i] = in[i * itemsize + k];
    }
    memcpy(out + items * itemsize, in + items * itemsize, n - items * itemsize);
}

static PyObject *shuffle_lzf(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t itemsize;
    if (!PyArg_ParseTuple(args, "y*n", &view, &itemsize)) return NULL;
    if (itemsize < 1) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "itemsize must be at least 1");
        return NULL;
    }
    size_t n = (size_t)view.len;
    uint8_t *shuffled = PyMem_RawMalloc(n ? n : 1), *out = PyMem_RawMalloc(n ? n : 1);
    uint32_t *table = PyMem_RawMalloc(HASH_SIZE * sizeof *table);
    PyObject *result = NULL;
    if (!shuffled || !out || !table) {
        PyErr_NoMemory();
        goto done;
    }
    size_t length;
    Py_BEGIN_ALLOW_THREADS
    shuffle((const uint8_t *)view.buf, n, (size_t)itemsize, shuffled);
    length = n > 1 ? lzf_encode(shuffled, n, out, n - 1, table) : 0; /* must be smaller than the data */
    Py_END_ALLOW_THREADS
    if (length)
        result = Py_BuildValue("(y#O)", (const char *)out, (Py_ssize_t)length, Py_True);
    else
        result = Py_BuildValue("(y#O)", (const char *)shuffled, (Py_ssize_t)n, Py_False);
done:
    PyMem_RawFree(shuffled);
    PyMem_RawFree(out);
    PyMem_RawFree(table);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"shuffle_lzf", shuffle_lzf, METH_VARARGS,
     "shuffle_lzf(data, itemsize) -> (bytes, compressed): HDF5 shuffle, then an LZF stream if it is smaller"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lzf_c", "Fast shuffle + LZF chunk encoder.", -1, methods};

PyMODINIT_FUNC PyInit__lzf_c(void) { return PyModule_Create(&module); }
