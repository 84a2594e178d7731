/*
 * Fast reader of NTU RGB+D .skeleton files (Kinect v2 text format), for skeldata.formats.ntu.
 *
 * parse(data: bytes) -> (raw_frames, dropped, body_ids, record_frame, joints, body_index) or None
 *
 *   raw_frames    int, the frame count on line 1
 *   dropped       bytes: int64 indices of the frames without a body
 *   body_ids      list of str: the tracking id of every body record, in file order
 *   record_frame  bytes: int64 index (among frames with a body) of every body record
 *   joints        bytes: float32 (records, 25, 3), camera-space x, y, z
 *   body_index    bytes: int64, for every body record, the rank of its tracking id by first appearance
 *
 * body_motion(joints: float32 buffer) -> float
 *
 *   numpy's float32 np.sum(np.var(joints.reshape(-1, 3), axis=0)), bit for bit, without numpy's
 *   per-call overhead (the extract stage's "motion" of a body): the column sums run row after row in
 *   float32, as numpy reduces over the outer axis; the divisions by the count are done in float64 and
 *   rounded to float32 (numpy divides by an intp scalar); the three variances are added left to right.
 *   Built with -ffp-contract=off so that no compiler fuses a multiply and an add.
 *
 * None means "not a plain, well-formed file": the caller then runs the strict Python parser, which
 * gives the same values or an error naming the line. So this reader only has to be right on
 * well-formed input and to refuse everything else; it never raises on bad data.
 *
 * Numbers: x, y, z are converted exactly as Python's float() converts them (correctly rounded
 * doubles), then rounded to float32, as the reference does. A plain decimal of at most 15 digits is
 * an exact integer divided by an exact power of ten: one IEEE division, correctly rounded. Every
 * other token goes through PyOS_string_to_double, CPython's own correctly rounded conversion.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define NUM_JOINTS 25
#define BODY_TOKENS 10
#define JOINT_TOKENS 12
#define MAX_TOKEN 64

static const double POW10[16] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
                                 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

typedef struct {
    const char *p;
    const char *end;
} Cursor;

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Buffer;

static int buffer_append(Buffer *b, const void *item, Py_ssize_t n) {
    if (b->size + n > b->capacity) {
        Py_ssize_t capacity = b->capacity ? b->capacity : 4096;
        while (capacity < b->size + n) capacity *= 2;
        char *grown = PyMem_RawRealloc(b->data, capacity); /* the raw allocator: callable without the GIL */
        if (!grown) return -1;
        b->data = grown;
        b->capacity = capacity;
    }
    memcpy(b->data + b->size, item, n);
    b->size += n;
    return 0;
}

enum { OTHER = 0, NUMBER, BLANK, CR, LF };
static unsigned char CLASS[256];

static void init_classes(void) {
    for (const char *q = "0123456789.+-eE"; *q; q++) CLASS[(unsigned char)*q] = NUMBER;
    CLASS[' '] = CLASS['\t'] = BLANK;
    CLASS['\r'] = CR;
    CLASS['\n'] = LF;
}

static int is_blank(char c) { return CLASS[(unsigned char)c] == BLANK; }

static int is_number_char(char c) { return CLASS[(unsigned char)c] == NUMBER; }

/* Next token of the current line: [*start, *stop). 0 at the end of the line (cursor left there). */
static int next_token(Cursor *c, const char **start, const char **stop) {
    while (c->p < c->end && is_blank(*c->p)) c->p++;
    if (c->p >= c->end || *c->p == '\r' || *c->p == '\n') return 0;
    *start = c->p;
    while (c->p < c->end && !is_blank(*c->p) && *c->p != '\r' && *c->p != '\n') c->p++;
    *stop = c->p;
    return 1;
}

/* Consume the end of a line: optional blanks, optional CR, then LF or the end of the data. */
static int end_line(Cursor *c) {
    while (c->p < c->end && is_blank(*c->p)) c->p++;
    if (c->p < c->end && *c->p == '\r') c->p++;
    if (c->p >= c->end) return 1;
    if (*c->p != '\n') return 0;
    c->p++;
    return 1;
}

static int numeric_token(const char *start, const char *stop) {
    for (const char *q = start; q < stop; q++)
        if (!is_number_char(*q)) return 0;
    return stop > start;
}

/* A line holding one non-negative integer. */
static int count_line(Cursor *c, long *value) {
    const char *start, *stop;
    if (!next_token(c, &start, &stop)) return 0;
    if (stop - start > 9) return 0;
    long v = 0;
    for (const char *q = start; q < stop; q++) {
        if (*q < '0' || *q > '9') return 0;
        v = v * 10 + (*q - '0');
    }
    *value = v;
    const char *s2, *e2;
    if (next_token(c, &s2, &e2)) return 0;
    return end_line(c);
}

/* The correctly rounded double of a numeric token: 1, or 0 if it is not a finite number, or NEEDS_GIL if
 * the token needs CPython's conversion and the GIL is not held (the caller parses again holding it). */
#define NEEDS_GIL (-2)
static int token_to_double(const char *start, const char *stop, double *out, int gil_held) {
    const char *q = start;
    int negative = 0;
    if (*q == '-' || *q == '+') { negative = (*q == '-'); q++; }
    double mantissa = 0.0;
    int digits = 0, fraction = 0, dots = 0, plain = 1;
    for (; q < stop; q++) {
        if (*q >= '0' && *q <= '9') {
            mantissa = mantissa * 10.0 + (*q - '0');
            digits++;
            if (dots) fraction++;
        } else if (*q == '.' && !dots) {
            dots = 1;
        } else {
            plain = 0;
            break;
        }
    }
    if (plain && digits >= 1 && digits <= 15) {
        double value = mantissa / POW10[fraction];
        *out = negative ? -value : value;
        return 1;
    }
    char copy[MAX_TOKEN + 1];
    Py_ssize_t n = stop - start;
    if (n > MAX_TOKEN) return 0;
    if (!gil_held) return NEEDS_GIL;
    memcpy(copy, start, n);
    copy[n] = '\0';
    char *end = NULL;
    double value = PyOS_string_to_double(copy, &end, NULL);
    if (value == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 0; }
    if (end != copy + n || !Py_IS_FINITE(value)) return 0;
    *out = value;
    return 1;
}

#define MAX_DISTINCT_IDS 64 /* more distinct tracking ids in one file: the Python parser's path */

typedef struct {
    Buffer dropped, record_frame, joints, body_index;
    int gil_held;                            /* whether CPython may be called while parsing */
    int distinct;                            /* tracking ids seen so far */
    const char *id_text[MAX_DISTINCT_IDS];   /* each one's text in the data */
    Py_ssize_t id_length[MAX_DISTINCT_IDS];
} Result;

/* The rank of a tracking id by first appearance: 0, or 1 if the file has too many distinct ids (not an
 * error: the caller falls back). No Python object is made here: this runs without the GIL. */
static int record_id(Result *r, const char *start, const char *stop, int64_t *rank) {
    Py_ssize_t n = stop - start;
    int k;
    for (k = 0; k < r->distinct; k++)
        if (r->id_length[k] == n && memcmp(r->id_text[k], start, n) == 0) break;
    if (k == r->distinct) {
        if (k == MAX_DISTINCT_IDS) return 1;
        r->id_text[k] = start;
        r->id_length[k] = n;
        r->distinct++;
    }
    *rank = k;
    return 0;
}

/* The rest of a joint line after x, y, z: exactly JOINT_TOKENS - 3 numeric tokens, then the end of
 * the line. One pass over the characters, counting the starts of tokens. */
static int rest_of_joint_line(Cursor *c) {
    int tokens = 0, in_token = 0;
    const unsigned char *p = (const unsigned char *)c->p, *end = (const unsigned char *)c->end;
    for (; p < end; p++) {
        unsigned char kind = CLASS[*p];
        if (kind == NUMBER) {
            tokens += !in_token;
            in_token = 1;
        } else if (kind == BLANK) {
            in_token = 0;
        } else {
            break;
        }
    }
    if (p < end && *p == '\r') p++;
    if (p < end) {
        if (*p != '\n') return 0;
        p++;
    }
    c->p = (const char *)p;
    return tokens == JOINT_TOKENS - 3;
}

/* The next token of the line as a number: plain decimals of up to 15 digits inline, anything else
 * through token_to_double. 1, or 0 if there is no token or it is not a finite number, or NEEDS_GIL. */
static int number_token(Cursor *c, double *out, int gil_held) {
    const unsigned char *p = (const unsigned char *)c->p, *end = (const unsigned char *)c->end;
    while (p < end && CLASS[*p] == BLANK) p++;
    const unsigned char *start = p;
    int negative = 0;
    if (p < end && (*p == '-' || *p == '+')) { negative = (*p == '-'); p++; }
    uint64_t mantissa = 0;
    int digits = 0, fraction = 0, dot = 0;
    for (; p < end; p++) {
        unsigned d = (unsigned)*p - '0';
        if (d < 10) {
            mantissa = mantissa * 10 + d;
            digits++;
            fraction += dot;
        } else if (*p == '.' && !dot) {
            dot = 1;
        } else {
            break;
        }
    }
    if (p < end && CLASS[*p] == NUMBER) {  /* an exponent or something odd: the general path */
        while (p < end && CLASS[*p] == NUMBER) p++;
        c->p = (const char *)p;
        return token_to_double((const char *)start, (const char *)p, out, gil_held);
    }
    c->p = (const char *)p;
    if (digits < 1 || digits > 15)
        return p > start ? token_to_double((const char *)start, (const char *)p, out, gil_held) : 0;
    double value = (double)mantissa / POW10[fraction];
    *out = negative ? -value : value;
    return 1;
}

static int body(Cursor *c, Result *r, int64_t frame) {
    const char *start, *stop;
    /* body line: id + 9 numbers */
    if (!next_token(c, &start, &stop)) return 0;
    int64_t rank;
    if (record_id(r, start, stop, &rank) != 0) return 0;
    if (buffer_append(&r->body_index, &rank, sizeof rank) < 0) return -1;
    for (int t = 1; t < BODY_TOKENS; t++)
        if (!next_token(c, &start, &stop) || !numeric_token(start, stop)) return 0;
    if (next_token(c, &start, &stop) || !end_line(c)) return 0;
    long joints;
    if (!count_line(c, &joints) || joints != NUM_JOINTS) return 0;
    if (buffer_append(&r->record_frame, &frame, sizeof frame) < 0) return -1;
    float xyz[NUM_JOINTS][3];
    for (int j = 0; j < NUM_JOINTS; j++) {
        for (int t = 0; t < 3; t++) {
            double value;
            int status = number_token(c, &value, r->gil_held);
            if (status != 1) return status;
            xyz[j][t] = (float)value;
        }
        if (!rest_of_joint_line(c)) return 0;
    }
    return buffer_append(&r->joints, xyz, sizeof xyz) < 0 ? -1 : 1;
}

/* 1: parsed; 0: not well formed; -1: out of memory (no exception set yet); NEEDS_GIL: parse again holding it. */
static int parse_all(Cursor *c, Result *r, long *raw_frames) {
    if (!count_line(c, raw_frames)) return 0;
    int64_t valid = -1;
    for (int64_t frame = 0; frame < *raw_frames; frame++) {
        long bodies;
        if (!count_line(c, &bodies)) return 0;
        if (bodies == 0) {
            if (buffer_append(&r->dropped, &frame, sizeof frame) < 0) return -1;
            continue;
        }
        valid++;
        for (long b = 0; b < bodies; b++) {
            int status = body(c, r, valid);
            if (status != 1) return status;
        }
    }
    /* only blank lines may follow */
    for (; c->p < c->end; c->p++)
        if (!is_blank(*c->p) && *c->p != '\r' && *c->p != '\n') return 0;
    return 1;
}

static PyObject *as_bytes(Buffer *b) {
    return PyBytes_FromStringAndSize(b->size ? b->data : "", b->size);
}

static void release_buffers(Result *r) {
    PyMem_RawFree(r->dropped.data);
    PyMem_RawFree(r->record_frame.data);
    PyMem_RawFree(r->joints.data);
    PyMem_RawFree(r->body_index.data);
    memset(r, 0, sizeof *r);
}

/* The tracking id of every record, as a list of str (one object per distinct id); NULL with no
 * exception set if an id is not ASCII text (the caller falls back to the Python parser). */
static PyObject *record_ids(const Result *r) {
    PyObject *distinct[MAX_DISTINCT_IDS] = {NULL};
    Py_ssize_t records = r->body_index.size / (Py_ssize_t)sizeof(int64_t);
    const int64_t *ranks = (const int64_t *)r->body_index.data;
    PyObject *ids = NULL;
    for (int k = 0; k < r->distinct; k++) {
        distinct[k] = PyUnicode_DecodeASCII(r->id_text[k], r->id_length[k], NULL);
        if (!distinct[k]) { PyErr_Clear(); goto done; }
    }
    ids = PyList_New(records);
    if (!ids) goto done;
    for (Py_ssize_t i = 0; i < records; i++) {
        Py_INCREF(distinct[ranks[i]]);
        PyList_SET_ITEM(ids, i, distinct[ranks[i]]);
    }
done:
    for (int k = 0; k < r->distinct; k++) Py_XDECREF(distinct[k]);
    return ids;
}

static PyObject *parse(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Result r;
    memset(&r, 0, sizeof r);
    PyObject *out = NULL;
    long raw_frames = 0;
    int status;
    /* The data is only read and everything written is C memory: other threads run meanwhile (a build
     * parses files in threads). A token that needs CPython's float conversion (exponents, long tokens)
     * stops this pass; the file is then parsed again holding the GIL. */
    Py_BEGIN_ALLOW_THREADS
    Cursor c = {(const char *)view.buf, (const char *)view.buf + view.len};
    status = parse_all(&c, &r, &raw_frames);
    Py_END_ALLOW_THREADS
    if (status == NEEDS_GIL) {
        release_buffers(&r);
        r.gil_held = 1;
        Cursor again = {(const char *)view.buf, (const char *)view.buf + view.len};
        status = parse_all(&again, &r, &raw_frames);
    }
    if (status < 0) {
        PyErr_NoMemory();
        goto done;
    }
    PyObject *ids = status == 1 ? record_ids(&r) : NULL;
    if (!ids) {
        if (!PyErr_Occurred()) {  /* not well formed, or not plain text: the Python parser's job */
            out = Py_None;
            Py_INCREF(out);
        }
        goto done;
    }
    PyObject *dropped = as_bytes(&r.dropped), *frames = as_bytes(&r.record_frame), *joints = as_bytes(&r.joints);
    PyObject *ranks = as_bytes(&r.body_index);
    if (dropped && frames && joints && ranks)
        out = Py_BuildValue("(lOOOOO)", raw_frames, dropped, ids, frames, joints, ranks);
    Py_DECREF(ids);
    Py_XDECREF(dropped);
    Py_XDECREF(frames);
    Py_XDECREF(joints);
    Py_XDECREF(ranks);
done:
    release_buffers(&r);
    PyBuffer_Release(&view);
    return out;
}

static PyObject *body_motion(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t rows = view.len / (Py_ssize_t)(3 * sizeof(float));
    if (rows < 1 || view.len != rows * (Py_ssize_t)(3 * sizeof(float))) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "body_motion needs a non-empty float32 buffer of (n, 3) values");
        return NULL;
    }
    const float *x = (const float *)view.buf;
    float sum[3] = {x[0], x[1], x[2]}, mean[3], squares[3], var[3];
    double count = (double)rows; /* numpy divides by an intp count: in float64, then rounds to float32 */
    for (Py_ssize_t i = 1; i < rows; i++)
        for (int j = 0; j < 3; j++) sum[j] = sum[j] + x[3 * i + j];
    for (int j = 0; j < 3; j++) {
        mean[j] = (float)((double)sum[j] / count);
        float d = x[j] - mean[j];
        squares[j] = d * d;
    }
    for (Py_ssize_t i = 1; i < rows; i++)
        for (int j = 0; j < 3; j++) {
            float d = x[3 * i + j] - mean[j];
            float square = d * d;
            squares[j] = squares[j] + square;
        }
    for (int j = 0; j < 3; j++) var[j] = (float)((double)squares[j] / count);
    float total = (var[0] + var[1]) + var[2];
    PyBuffer_Release(&view);
    return PyFloat_FromDouble((double)total);
}

static PyMethodDef methods[] = {
    {"parse", parse, METH_O, "parse(data) -> (raw_frames, dropped, body_ids, record_frame, joints, body_index) or None"},
    {"body_motion", body_motion, METH_O, "body_motion(float32 (n, 3) buffer) -> np.sum(np.var(x, axis=0)), bit for bit"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ntu_c", "Fast .skeleton reader.", -1, methods};

PyMODINIT_FUNC PyInit__ntu_c(void) {
    init_classes();
    return PyModule_Create(&module);
}
