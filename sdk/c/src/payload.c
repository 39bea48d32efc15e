/* Event payloads: fields are encoded as they are added, then written as one
 * map with the keys in encoded-byte order (deterministic CBOR). */
#include <string.h>

#include "custos_device.h"

void custos_payload_init(custos_payload* p) {
  p->used = 0;
  p->count = 0;
  p->err = 0;
}

void custos_payload_event(custos_payload* p, const char* kind) {
  custos_payload_init(p);
  custos_payload_text(p, "event", kind);
}

/* Encodes the key into the buffer and opens a value writer after it. */
static int begin_field(custos_payload* p, const char* key, custos_cbor* value) {
  custos_cbor k;
  if (p->err) return 0;
  if (p->count >= CUSTOS_PAYLOAD_FIELDS_MAX || strlen(key) > CUSTOS_TEXT_BYTES_MAX) {
    p->err = CUSTOS_ETOOBIG;
    return 0;
  }
  custos_cbor_init(&k, p->data + p->used, sizeof p->data - p->used);
  custos_cbor_text(&k, key);
  if (k.err) {
    p->err = k.err;
    return 0;
  }
  p->fields[p->count].key_off = p->used;
  p->fields[p->count].key_len = k.len;
  p->used += k.len;
  custos_cbor_init(value, p->data + p->used, sizeof p->data - p->used);
  return 1;
}

static void end_field(custos_payload* p, const custos_cbor* value) {
  if (value->err) {
    p->err = value->err;
    return;
  }
  p->fields[p->count].val_off = p->used;
  p->fields[p->count].val_len = value->len;
  p->used += value->len;
  p->count++;
}

void custos_payload_text(custos_payload* p, const char* key, const char* value) {
  custos_cbor v;
  if (!begin_field(p, key, &v)) return;
  if (strlen(value) > CUSTOS_TEXT_BYTES_MAX) v.err = CUSTOS_ETOOBIG;
  custos_cbor_text(&v, value);
  end_field(p, &v);
}

void custos_payload_number(custos_payload* p, const char* key, double value) {
  custos_cbor v;
  if (!begin_field(p, key, &v)) return;
  custos_cbor_float(&v, value);
  end_field(p, &v);
}

void custos_payload_int(custos_payload* p, const char* key, int64_t value) {
  custos_cbor v;
  if (!begin_field(p, key, &v)) return;
  custos_cbor_int(&v, value);
  end_field(p, &v);
}

void custos_payload_bool(custos_payload* p, const char* key, int value) {
  custos_cbor v;
  if (!begin_field(p, key, &v)) return;
  custos_cbor_bool(&v, value);
  end_field(p, &v);
}

void custos_payload_quantity(custos_payload* p, const char* key, double value, const char* unit) {
  custos_cbor v;
  if (!begin_field(p, key, &v)) return;
  /* "unit" (64 75 6e 69 74) sorts before "value" (65 76 61 6c 75 65). */
  custos_cbor_map(&v, 2);
  custos_cbor_text(&v, "unit");
  custos_cbor_text(&v, unit);
  custos_cbor_text(&v, "value");
  custos_cbor_float(&v, value);
  end_field(p, &v);
}

void custos_payload_limit(custos_payload* p, const char* kind, const char* bound, double value,
                          const char* unit) {
  custos_cbor v;
  if (!begin_field(p, "limit", &v)) return;
  /* Encoded-key order: "kind", "unit", "bound", "value" (4-byte keys first). */
  custos_cbor_map(&v, 4);
  custos_cbor_text(&v, "kind");
  custos_cbor_text(&v, kind);
  custos_cbor_text(&v, "unit");
  custos_cbor_text(&v, unit);
  custos_cbor_text(&v, "bound");
  custos_cbor_text(&v, bound);
  custos_cbor_text(&v, "value");
  custos_cbor_float(&v, value);
  end_field(p, &v);
}

/* Compares two fields' encoded keys: bytewise, a prefix first. */
static int compare_keys(const custos_payload* p, size_t a, size_t b) {
  const uint8_t* ka = p->data + p->fields[a].key_off;
  const uint8_t* kb = p->data + p->fields[b].key_off;
  size_t la = p->fields[a].key_len, lb = p->fields[b].key_len;
  int r = memcmp(ka, kb, la < lb ? la : lb);
  if (r != 0) return r;
  return la < lb ? -1 : (la > lb ? 1 : 0);
}

long custos_payload_finish(const custos_payload* p, uint8_t* out, size_t cap) {
  size_t order[CUSTOS_PAYLOAD_FIELDS_MAX];
  size_t i;
  custos_cbor c;
  if (p->err) return p->err;
  /* Insertion sort: at most CUSTOS_PAYLOAD_FIELDS_MAX fields, no globals. */
  for (i = 0; i < p->count; ++i) {
    size_t j = i;
    order[i] = i;
    while (j > 0 && compare_keys(p, order[j - 1], order[j]) > 0) {
      size_t t = order[j - 1];
      order[j - 1] = order[j];
      order[j] = t;
      --j;
    }
  }
  for (i = 1; i < p->count; ++i) {
    if (compare_keys(p, order[i - 1], order[i]) == 0) return CUSTOS_EINVAL; /* duplicate key */
  }
  custos_cbor_init(&c, out, cap);
  custos_cbor_map(&c, p->count);
  for (i = 0; i < p->count; ++i) {
    const size_t f = order[i];
    if (c.err) break;
    if (p->fields[f].key_len + p->fields[f].val_len > c.cap - c.len) {
      c.err = CUSTOS_ETOOBIG;
      break;
    }
    memcpy(c.buf + c.len, p->data + p->fields[f].key_off, p->fields[f].key_len);
    c.len += p->fields[f].key_len;
    memcpy(c.buf + c.len, p->data + p->fields[f].val_off, p->fields[f].val_len);
    c.len += p->fields[f].val_len;
  }
  if (c.err) return c.err;
  return (long)c.len;
}
