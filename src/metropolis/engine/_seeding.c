/* `random.Random(text)` for a str `text`, built in C: the generator each agent-step draws from (engine/seeding.py
 * says why, and checks this against Python's own seeding whenever it loads).
 *
 * CPython seeds a Random from a str in two Python frames (`Random.__init__`, `Random.seed`): it appends the
 * SHA-512 digest to the UTF-8 bytes, reads the whole as one big-endian integer, and folds that integer's 32-bit
 * words into the Mersenne Twister state (init_by_array, Modules/_randommodule.c), which always starts from the
 * same state, init_genrand(19650218). Here the digest, the words and the fold are computed in one C call, that
 * starting state once, and the state is written straight into the new object. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define N 624

typedef struct { /* CPython's RandomObject; its size is checked against _random.Random's when this module loads */
    PyObject_HEAD
    int index;
    uint32_t state[N];
} RandomObject;

static uint32_t first_state[N]; /* init_genrand(19650218) */
static PyTypeObject *base_type;  /* _random.Random */
static PyObject *gauss_next;     /* "gauss_next", which Random.__init__ sets to None */

/* -- SHA-512 (FIPS 180-4) -------------------------------------------------------------------------------------- */

static const uint64_t K[80] = {
    0x428a2f98d728ae22ULL, 0x7137449123ef65cdULL, 0xb5c0fbcfec4d3b2fULL, 0xe9b5dba58189dbbcULL,
    0x3956c25bf348b538ULL, 0x59f111f1b605d019ULL, 0x923f82a4af194f9bULL, 0xab1c5ed5da6d8118ULL,
    0xd807aa98a3030242ULL, 0x12835b0145706fbeULL, 0x243185be4ee4b28cULL, 0x550c7dc3d5ffb4e2ULL,
    0x72be5d74f27b896fULL, 0x80deb1fe3b1696b1ULL, 0x9bdc06a725c71235ULL, 0xc19bf174cf692694ULL,
    0xe49b69c19ef14ad2ULL, 0xefbe4786384f25e3ULL, 0x0fc19dc68b8cd5b5ULL, 0x240ca1cc77ac9c65ULL,
    0x2de92c6f592b0275ULL, 0x4a7484aa6ea6e483ULL, 0x5cb0a9dcbd41fbd4ULL, 0x76f988da831153b5ULL,
    0x983e5152ee66dfabULL, 0xa831c66d2db43210ULL, 0xb00327c898fb213fULL, 0xbf597fc7beef0ee4ULL,
    0xc6e00bf33da88fc2ULL, 0xd5a79147930aa725ULL, 0x06ca6351e003826fULL, 0x142929670a0e6e70ULL,
    0x27b70a8546d22ffcULL, 0x2e1b21385c26c926ULL, 0x4d2c6dfc5ac42aedULL, 0x53380d139d95b3dfULL,
    0x650a73548baf63deULL, 0x766a0abb3c77b2a8ULL, 0x81c2c92e47edaee6ULL, 0x92722c851482353bULL,
    0xa2bfe8a14cf10364ULL, 0xa81a664bbc423001ULL, 0xc24b8b70d0f89791ULL, 0xc76c51a30654be30ULL,
    0xd192e819d6ef5218ULL, 0xd69906245565a910ULL, 0xf40e35855771202aULL, 0x106aa07032bbd1b8ULL,
    0x19a4c116b8d2d0c8ULL, 0x1e376c085141ab53ULL, 0x2748774cdf8eeb99ULL, 0x34b0bcb5e19b48a8ULL,
    0x391c0cb3c5c95a63ULL, 0x4ed8aa4ae3418acbULL, 0x5b9cca4f7763e373ULL, 0x682e6ff3d6b2b8a3ULL,
    0x748f82ee5defb2fcULL, 0x78a5636f43172f60ULL, 0x84c87814a1f0ab72ULL, 0x8cc702081a6439ecULL,
    0x90befffa23631e28ULL, 0xa4506cebde82bde9ULL, 0xbef9a3f7b2c67915ULL, 0xc67178f2e372532bULL,
    0xca273eceea26619cULL, 0xd186b8c721c0c207ULL, 0xeada7dd6cde0eb1eULL, 0xf57d4f7fee6ed178ULL,
    0x06f067aa72176fbaULL, 0x0a637dc5a2c898a6ULL, 0x113f9804bef90daeULL, 0x1b710b35131c471bULL,
    0x28db77f523047d84ULL, 0x32caab7b40c72493ULL, 0x3c9ebe0a15c9bebcULL, 0x431d67c49c100d4cULL,
    0x4cc5d4becb3e42b6ULL, 0x597f299cfc657e2aULL, 0x5fcb6fab3ad6faecULL, 0x6c44198c4a475817ULL,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (64 - (n))))

static void
sha512_block(uint64_t h[8], const unsigned char *block)
{
    uint64_t w[80];
    for (int t = 0; t < 16; t++) {
        uint64_t v = 0;
        for (int b = 0; b < 8; b++) {
            v = (v << 8) | block[8 * t + b];
        }
        w[t] = v;
    }
    for (int t = 16; t < 80; t++) {
        uint64_t s0 = ROTR(w[t - 15], 1) ^ ROTR(w[t - 15], 8) ^ (w[t - 15] >> 7);
        uint64_t s1 = ROTR(w[t - 2], 19) ^ ROTR(w[t - 2], 61) ^ (w[t - 2] >> 6);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint64_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], k = h[7];
    for (int t = 0; t < 80; t++) {
        uint64_t t1 = k + (ROTR(e, 14) ^ ROTR(e, 18) ^ ROTR(e, 41)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint64_t t2 = (ROTR(a, 28) ^ ROTR(a, 34) ^ ROTR(a, 39)) + ((a & b) ^ (a & c) ^ (b & c));
        k = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e, h[5] += f, h[6] += g, h[7] += k;
}

static void
sha512(const unsigned char *data, size_t size, unsigned char digest[64])
{
    uint64_t h[8] = {0x6a09e667f3bcc908ULL, 0xbb67ae8584caa73bULL, 0x3c6ef372fe94f82bULL, 0xa54ff53a5f1d36f1ULL, 0x510e527fade682d1ULL, 0x9b05688c2b3e6c1fULL, 0x1f83d9abfb41bd6bULL, 0x5be0cd19137e2179ULL};
    size_t whole = size - size % 128;
    for (size_t at = 0; at < whole; at += 128) {
        sha512_block(h, data + at);
    }
    unsigned char tail[256] = {0}; /* the last bytes, the 1 bit, zeros and the length in bits: one or two blocks */
    size_t rest = size - whole;
    memcpy(tail, data + whole, rest);
    tail[rest] = 0x80;
    size_t blocks = rest < 112 ? 1 : 2;
    uint64_t bits = (uint64_t)size * 8; /* the high 64 bits of the 128-bit length stay zero */
    for (int b = 0; b < 8; b++) {
        tail[128 * blocks - 1 - b] = (unsigned char)(bits >> (8 * b));
    }
    for (size_t at = 0; at < blocks; at++) {
        sha512_block(h, tail + 128 * at);
    }
    for (int i = 0; i < 8; i++) {
        for (int b = 0; b < 8; b++) {
            digest[8 * i + b] = (unsigned char)(h[i] >> (56 - 8 * b));
        }
    }
}

/* -- the Mersenne Twister's seeding ---------------------------------------------------------------------------- */

static void
init_first_state(void)
{
    first_state[0] = 19650218U;
    for (uint32_t i = 1; i < N; i++) {
        first_state[i] = 1812433253U * (first_state[i - 1] ^ (first_state[i - 1] >> 30)) + i;
    }
}

/* init_by_array, with the previous word kept in a register: each loop is one long chain of dependent words. */
static void
fold_key(uint32_t *mt, const uint32_t *key, size_t length)
{
    memcpy(mt, first_state, sizeof first_state);
    uint32_t prev = mt[0];
    size_t i = 1, j = 0;
    for (size_t k = N > length ? N : length; k; k--) {
        prev = (mt[i] ^ ((prev ^ (prev >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        mt[i] = prev;
        if (++i >= N) {
            mt[0] = prev;
            i = 1;
        }
        if (++j >= length) {
            j = 0;
        }
    }
    for (size_t k = N - 1; k; k--) {
        prev = (mt[i] ^ ((prev ^ (prev >> 30)) * 1566083941U)) - (uint32_t)i;
        mt[i] = prev;
        if (++i >= N) {
            mt[0] = prev;
            i = 1;
        }
    }
    mt[0] = 0x80000000U; /* MSB is 1, assuring a non-zero initial array */
}

/* The integer's 32-bit words, least significant first, from its big-endian bytes; its leading zero bytes carry
 * no bits (CPython sizes the key by the integer's bit length). Returns the number of words, at least one. */
static size_t
key_words(const unsigned char *bytes, size_t size, uint32_t *key)
{
    while (size > 0 && bytes[0] == 0) {
        bytes++;
        size--;
    }
    size_t length = size == 0 ? 1 : (size + 3) / 4;
    memset(key, 0, length * sizeof(uint32_t));
    for (size_t b = 0; b < size; b++) {
        size_t from_end = size - 1 - b;
        key[from_end / 4] |= (uint32_t)bytes[b] << (8 * (from_end % 4));
    }
    return length;
}

static PyObject *
seeded(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2 || !PyType_Check(args[0]) || !PyUnicode_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "seeded(cls, text) takes a Random subclass and a str");
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)args[0];
    if (!PyType_IsSubtype(type, base_type)) {
        PyErr_SetString(PyExc_TypeError, "seeded(cls, text): cls must subclass random.Random");
        return NULL;
    }
    Py_ssize_t size;
    const char *text = PyUnicode_AsUTF8AndSize(args[1], &size); /* str.encode(): a lone surrogate raises */
    if (text == NULL) {
        return NULL;
    }
    size_t total = (size_t)size + 64;
    unsigned char small_bytes[256];
    uint32_t small_key[64];
    unsigned char *bytes = total <= sizeof small_bytes ? small_bytes : PyMem_Malloc(total);
    uint32_t *key = total <= 4 * 64 ? small_key : PyMem_Malloc((total + 3) / 4 * sizeof(uint32_t));
    PyObject *obj = NULL;
    if (bytes == NULL || key == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(bytes, text, (size_t)size);
    sha512((const unsigned char *)text, (size_t)size, bytes + size);
    size_t length = key_words(bytes, total, key);
    obj = type->tp_alloc(type, 0);
    if (obj == NULL) {
        goto done;
    }
    fold_key(((RandomObject *)obj)->state, key, length);
    ((RandomObject *)obj)->index = N; /* the first draw twists the whole state, as after Random.seed */
    if (PyObject_SetAttr(obj, gauss_next, Py_None) < 0) {
        Py_CLEAR(obj);
    }
done:
    if (bytes != small_bytes) {
        PyMem_Free(bytes);
    }
    if (key != small_key) {
        PyMem_Free(key);
    }
    return obj;
}

static PyMethodDef methods[] = {
    {"seeded", (PyCFunction)(void (*)(void))seeded, METH_FASTCALL, "seeded(cls, text): cls(text), as random.Random seeds it"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_seeding", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC
PyInit__seeding(void)
{
    PyObject *random = PyImport_ImportModule("_random");
    if (random == NULL) {
        return NULL;
    }
    base_type = (PyTypeObject *)PyObject_GetAttrString(random, "Random");
    Py_DECREF(random);
    if (base_type == NULL) {
        return NULL;
    }
    if (!PyType_Check(base_type) || base_type->tp_basicsize != (Py_ssize_t)sizeof(RandomObject)) {
        PyErr_SetString(PyExc_ImportError, "_random.Random is not the Mersenne Twister layout this module writes");
        return NULL;
    }
    gauss_next = PyUnicode_InternFromString("gauss_next");
    if (gauss_next == NULL) {
        return NULL;
    }
    init_first_state();
    return PyModule_Create(&module);
}
