/* Deterministic CBOR encoding (RFC 8949 section 4.2.1): shortest heads,
 * definite lengths, shortest exact floats. The caller writes map keys in
 * encoded-byte order (custos_payload_finish sorts them). */
#include <math.h>
#include <string.h>

#include "custos_device.h"

static void put(custos_cbor* c, const uint8_t* data, size_t len) {
  if (c->err || len == 0) return;
  if (len > c->cap - c->len) {
    c->err = CUSTOS_ETOOBIG;
    return;
  }
  memcpy(c->buf + c->len, data, len);
  c->len += len;
}

static void head(custos_cbor* c, uint8_t major, uint64_t v) {
  uint8_t h[9];
  size_t n = 1;
  int i;
  if (v < 24) {
    h[0] = (uint8_t)((major << 5) | v);
  } else if (v <= 0xff) {
    h[0] = (uint8_t)((major << 5) | 24);
    n = 2;
  } else if (v <= 0xffff) {
    h[0] = (uint8_t)((major << 5) | 25);
    n = 3;
  } else if (v <= 0xffffffffu) {
    h[0] = (uint8_t)((major << 5) | 26);
    n = 5;
  } else {
    h[0] = (uint8_t)((major << 5) | 27);
    n = 9;
  }
  for (i = 1; i < (int)n; ++i) h[i] = (uint8_t)(v >> (8 * (n - 1 - (size_t)i)));
  put(c, h, n);
}

void custos_cbor_init(custos_cbor* c, uint8_t* buf, size_t cap) {
  c->buf = buf;
  c->cap = cap;
  c->len = 0;
  c->err = 0;
}

void custos_cbor_uint(custos_cbor* c, uint64_t v) {
  head(c, 0, v);
}

void custos_cbor_int(custos_cbor* c, int64_t v) {
  if (v >= 0) {
    head(c, 0, (uint64_t)v);
  } else {
    head(c, 1, (uint64_t)(-(v + 1)));
  }
}

void custos_cbor_bytes(custos_cbor* c, const uint8_t* data, size_t len) {
  head(c, 2, len);
  put(c, data, len);
}

void custos_cbor_text_n(custos_cbor* c, const char* text, size_t len) {
  head(c, 3, len);
  put(c, (const uint8_t*)text, len);
}

void custos_cbor_text(custos_cbor* c, const char* text) {
  custos_cbor_text_n(c, text, strlen(text));
}

void custos_cbor_array(custos_cbor* c, size_t count) {
  head(c, 4, count);
}

void custos_cbor_map(custos_cbor* c, size_t count) {
  head(c, 5, count);
}

void custos_cbor_tag(custos_cbor* c, uint64_t tag) {
  head(c, 6, tag);
}

void custos_cbor_bool(custos_cbor* c, int v) {
  uint8_t b = v ? 0xf5 : 0xf4;
  put(c, &b, 1);
}

/* Half-precision bits of `f` when it converts exactly, else -1. */
static long half_bits(float f) {
  uint32_t bits;
  uint32_t sign, exp, mant;
  memcpy(&bits, &f, sizeof bits);
  sign = (bits >> 16) & 0x8000u;
  exp = (bits >> 23) & 0xffu;
  mant = bits & 0x7fffffu;
  if (exp == 0 && mant == 0) return (long)sign; /* +-0 */
  if (exp == 0) return -1;                      /* single subnormals are far below half's range */
  {
    int e = (int)exp - 127;
    if (e >= -14 && e <= 15) { /* a normal half */
      if (mant & 0x1fffu) return -1;
      return (long)(sign | ((uint32_t)(e + 15) << 10) | (mant >> 13));
    }
    if (e >= -24 && e < -14) {          /* a subnormal half: value = m * 2^-24 */
      uint32_t full = mant | 0x800000u; /* 24 significant bits */
      int shift = -e - 14 + 13;         /* bits dropped to reach m */
      if (full & ((1u << shift) - 1u)) return -1;
      return (long)(sign | (full >> shift));
    }
  }
  return -1;
}

void custos_cbor_float(custos_cbor* c, double v) {
  uint8_t out[9];
  float f = (float)v;
  if (isnan(v) || isinf(v)) {
    if (!c->err) c->err = CUSTOS_EINVAL;
    return;
  }
  if ((double)f == v) {
    long h = half_bits(f);
    if (h >= 0) {
      out[0] = 0xf9;
      out[1] = (uint8_t)(h >> 8);
      out[2] = (uint8_t)h;
      put(c, out, 3);
    } else {
      uint32_t bits;
      int i;
      memcpy(&bits, &f, sizeof bits);
      out[0] = 0xfa;
      for (i = 0; i < 4; ++i) out[1 + i] = (uint8_t)(bits >> (24 - 8 * i));
      put(c, out, 5);
    }
  } else {
    uint64_t bits;
    int i;
    memcpy(&bits, &v, sizeof bits);
    out[0] = 0xfb;
    for (i = 0; i < 8; ++i) out[1 + i] = (uint8_t)(bits >> (56 - 8 * i));
    put(c, out, 9);
  }
}
