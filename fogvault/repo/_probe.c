/* The blob index's slot table, compiled: the same probe and insert as ``_python_probe`` and
 * ``_python_insert`` in fogvault/repo/index.py (which stay as the fallback where this module
 * could not be built), over the same table. docs/design.md, section 4, describes the table.
 *
 * In pure Python a lookup costs about 0.6 us of interpreter work on top of its two random
 * memory reads, an insert more; here they are the reads. The GIL is held throughout and no
 * Python code runs, so a call sees a table whole and readers never see an insert half done
 * (fogvault/repo/index.py explains why readers need no lock).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define KEY_SIZE 32
#define MAX_STRIDE 4096 /* records are 45 bytes, pack ids 32: bounds number * stride */
#define BROKEN UINT64_MAX

/* A table or call that breaks the layout: refused rather than read or written outside it. */
static void
inconsistent(void)
{
    PyErr_SetString(PyExc_SystemError, "blob index table is inconsistent");
}

/* A table, (mask, slots, ids, tags) as fogvault/repo/index.py builds it, with its buffers
 * held: slots are 32-bit (tag | number + 1, 0 = empty); number n's id starts at byte
 * n * stride - back of ids. */
typedef struct {
    uint64_t mask, tags;
    Py_ssize_t stride, back;
    Py_buffer slots, ids;
} Table;

static int
table_open(Table *t, PyObject *table, PyObject *stride, PyObject *back, int writable)
{
    if (!PyTuple_Check(table) || PyTuple_GET_SIZE(table) != 4) {
        PyErr_SetString(PyExc_TypeError, "table must be (mask, slots, ids, tags)");
        return -1;
    }
    if ((t->mask = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(table, 0))) == (uint64_t)-1
            || (t->tags = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(table, 3))) == (uint64_t)-1
            || (t->stride = PyLong_AsSsize_t(stride)) == -1
            || (t->back = PyLong_AsSsize_t(back)) == -1) {
        if (!PyErr_Occurred()) {
            inconsistent();
        }
        return -1;
    }
    int flags = writable ? PyBUF_WRITABLE : PyBUF_SIMPLE;
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(table, 1), &t->slots, flags) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(PyTuple_GET_ITEM(table, 2), &t->ids, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&t->slots);
        return -1;
    }
    if ((uint64_t)t->slots.len / 4 < t->mask + 1 || t->tags > UINT32_MAX
            || t->stride < KEY_SIZE || t->stride > MAX_STRIDE || t->back < KEY_SIZE
            || t->back > t->stride) {
        PyBuffer_Release(&t->ids);
        PyBuffer_Release(&t->slots);
        inconsistent();
        return -1;
    }
    return 0;
}

static void
table_close(Table *t)
{
    PyBuffer_Release(&t->ids);
    PyBuffer_Release(&t->slots);
}

/* The number (+ 1) of the 32-byte ``key`` with hash ``hash``, or 0 with *free set to the empty
 * slot where it would go; BROKEN (with an exception set) if a slot names no id. */
static uint64_t
find(Table *t, const char *key, Py_hash_t hash, uint64_t *free)
{
    const uint32_t *slots = t->slots.buf;
    const char *ids = t->ids.buf;
    uint64_t i = (uint64_t)hash & t->mask, tag = (uint64_t)hash & t->tags, slot;
    while ((slot = slots[i]) != 0) {
        if ((slot & t->tags) == tag) {
            uint64_t number = slot ^ tag;
            Py_ssize_t at = (Py_ssize_t)number * t->stride - t->back;
            if (at < 0 || at + KEY_SIZE > t->ids.len) {
                inconsistent();
                return BROKEN;
            }
            if (memcmp(ids + at, key, KEY_SIZE) == 0) {
                return number;
            }
        }
        i = (i + 1) & t->mask;
    }
    *free = i;
    return 0;
}

/* probe(table, key, stride, back) -> number + 1 of ``key`` (bytes), or 0. */
static PyObject *
probe(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "probe(table, key, stride, back)");
        return NULL;
    }
    PyObject *key = args[1];
    if (!PyBytes_CheckExact(key)) { /* a subclass's __hash__ would run Python code here */
        PyErr_SetString(PyExc_TypeError, "a blob id is bytes");
        return NULL;
    }
    Table t;
    if (table_open(&t, args[0], args[2], args[3], 0) < 0) {
        return NULL;
    }
    uint64_t number = 0, free;
    if (PyBytes_GET_SIZE(key) == KEY_SIZE) { /* no id of another length is ever stored */
        Py_hash_t hash = PyObject_Hash(key); /* as Python's hash(): what inserts used */
        number = hash == -1 && PyErr_Occurred() ? BROKEN : find(&t, PyBytes_AS_STRING(key),
                                                                hash, &free);
    }
    table_close(&t);
    return number == BROKEN ? NULL : PyLong_FromUnsignedLongLong(number);
}

/* insert(table, keys, first, stride, back) -> how many keys got a slot.
 * ``keys`` is laid out as the table's ids (key j at j * stride + stride - back) and already
 * written to them: key j gets number ``first + j`` unless an earlier number holds its id. */
static PyObject *
insert(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "insert(table, keys, first, stride, back)");
        return NULL;
    }
    uint64_t first = PyLong_AsUnsignedLongLong(args[2]);
    if (first == (uint64_t)-1 && PyErr_Occurred()) {
        return NULL;
    }
    Table t;
    if (table_open(&t, args[0], args[3], args[4], 1) < 0) {
        return NULL;
    }
    Py_buffer keys;
    if (PyObject_GetBuffer(args[1], &keys, PyBUF_SIMPLE) < 0) {
        table_close(&t);
        return NULL;
    }
    Py_ssize_t count = keys.len / t.stride, added = 0, j;
    /* whole keys only; numbers from 1 (0 is an empty slot) up to below the tag bits */
    if (keys.len % t.stride || first == 0 || first >= ((uint64_t)1 << 32)
            || first + count > ((uint64_t)1 << 32) - t.tags) {
        PyBuffer_Release(&keys);
        table_close(&t);
        inconsistent();
        return NULL;
    }
    uint32_t *slots = t.slots.buf;
    const char *key = (const char *)keys.buf + (t.stride - t.back);
    for (j = 0; j < count; j++, key += t.stride) {
        PyObject *id = PyBytes_FromStringAndSize(key, KEY_SIZE); /* to hash it as Python does */
        Py_hash_t hash = id == NULL ? -1 : PyObject_Hash(id);
        Py_XDECREF(id);
        uint64_t free, number = hash == -1 ? BROKEN : find(&t, key, hash, &free);
        if (number == BROKEN) {
            break;
        }
        if (number == 0) {
            slots[free] = (uint32_t)(((uint64_t)hash & t.tags) | (first + j));
            added++;
        }
    }
    PyBuffer_Release(&keys);
    table_close(&t);
    return j < count ? NULL : PyLong_FromSsize_t(added);
}

static PyMethodDef methods[] = {
    {"probe", (PyCFunction)(void (*)(void))probe, METH_FASTCALL,
     "probe(table, key, stride, back) -> number + 1 of key in the table, or 0"},
    {"insert", (PyCFunction)(void (*)(void))insert, METH_FASTCALL,
     "insert(table, keys, first, stride, back) -> how many keys got a slot"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_probe",
    .m_doc = "The blob index's compiled slot table.",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__probe(void)
{
    return PyModule_Create(&module);
}
