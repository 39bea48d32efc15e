/*
 * custos device SDK (C99): sign device events as custos statements and
 * publish them to the hospital's MQTT broker, where the custos gateway
 * takes them to the ledger (docs/gateway.md, docs/formats.md).
 *
 *   - statements: COSE_Sign1 over deterministic CBOR, protected header
 *     {1: alg, 3: content type, 4: kid, 15: {1: iss, 2: sub, 6: iat},
 *      -65537: sequence}, ES256 (OpenSSL) or Ed25519 (libsodium); the CBOR
 *     encoder is this SDK's own (custos_cbor_*), no other dependency;
 *   - the sequence number survives restarts: numbers are reserved in a
 *     file that is fsynced before any of them is used, so a crash may skip
 *     numbers (a gap, which the ledger records) but never reuses one;
 *   - events wait in an on-disk queue (fsynced) until the broker has
 *     acknowledged them (MQTT 5 QoS 1 PUBACK), across disconnects and
 *     restarts; the queue is bounded;
 *   - MQTT 5 over TLS with the device's client certificate; a retained
 *     status topic with a will that says offline; acknowledgements from the
 *     gateway arrive on the device's ack topic (response topic +
 *     correlation data = the statement's sequence number, 8 bytes big-endian).
 *
 * Errors are returned as negative CUSTOS_E* codes; custos_strerror() names
 * them. A custos_device is not thread-safe: drive each from one thread
 * (custos_device_loop), or lock around every call. Many devices can share
 * one thread (a simulator calls custos_device_loop(dev, 0) on each).
 */
#ifndef CUSTOS_DEVICE_H
#define CUSTOS_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Errors ---- */
#define CUSTOS_OK 0
#define CUSTOS_EINVAL (-1)   /* bad argument or configuration */
#define CUSTOS_EKEY (-2)     /* key file missing, unreadable or not ES256/Ed25519 */
#define CUSTOS_ETOOBIG (-3)  /* over a named limit (payload, statement, field) */
#define CUSTOS_EIO (-4)      /* file system error (state dir, fsync) */
#define CUSTOS_EFULL (-5)    /* offline queue full: the event was not taken */
#define CUSTOS_ECRYPTO (-6)  /* signing failed */
#define CUSTOS_EMQTT (-7)    /* libmosquitto setup failed */
#define CUSTOS_ENOTCONN (-8) /* not connected (the event is queued anyway) */

const char* custos_strerror(int code);

/* ---- Limits ---- */
#define CUSTOS_PAYLOAD_BYTES_MAX 4096u   /* one event's CBOR payload */
#define CUSTOS_PAYLOAD_FIELDS_MAX 32u    /* top-level fields of one payload */
#define CUSTOS_TEXT_BYTES_MAX 256u       /* iss, sub, content type, text fields */
#define CUSTOS_STATEMENT_BYTES_MAX 8192u /* one signed statement from this SDK */
#define CUSTOS_QUEUE_MESSAGES_DEFAULT 10000u
#define CUSTOS_QUEUE_BYTES_DEFAULT (16u * 1024u * 1024u)
/* With want_acks: a statement the broker took but the gateway has not
 * answered is published again after this long, then after twice as long,
 * up to CUSTOS_ANSWER_RESEND_MS_MAX (and at once after every reconnect). */
#define CUSTOS_ANSWER_RESEND_MS_DEFAULT 60000u
#define CUSTOS_ANSWER_RESEND_MS_MAX (30u * 60u * 1000u)

/* ---- Deterministic CBOR (RFC 8949 section 4.2.1) ---- */
typedef struct custos_cbor {
  uint8_t* buf;
  size_t cap;
  size_t len;
  int err; /* sticky: the first error (CUSTOS_ETOOBIG) */
} custos_cbor;

void custos_cbor_init(custos_cbor* c, uint8_t* buf, size_t cap);
void custos_cbor_uint(custos_cbor* c, uint64_t v);
void custos_cbor_int(custos_cbor* c, int64_t v);
void custos_cbor_bytes(custos_cbor* c, const uint8_t* data, size_t len);
void custos_cbor_text(custos_cbor* c, const char* text);
void custos_cbor_text_n(custos_cbor* c, const char* text, size_t len);
void custos_cbor_array(custos_cbor* c, size_t count); /* then `count` items */
void custos_cbor_map(custos_cbor* c, size_t count);   /* then keys in encoded-byte order */
void custos_cbor_tag(custos_cbor* c, uint64_t tag);
void custos_cbor_bool(custos_cbor* c, int v);
/* The shortest of half, single, double that keeps `v` exactly; NaN and
 * infinities are refused (CUSTOS_EINVAL). */
void custos_cbor_float(custos_cbor* c, double v);

/* ---- Event payloads (a CBOR map with text keys, sorted on finish) ---- */
typedef struct custos_payload {
  uint8_t data[CUSTOS_PAYLOAD_BYTES_MAX];
  size_t used;
  struct {
    size_t key_off, key_len, val_off, val_len;
  } fields[CUSTOS_PAYLOAD_FIELDS_MAX];
  size_t count;
  int err;
} custos_payload;

/* Starts a device-event payload {"event": kind, ...}; kind is one of the
 * event kinds of docs/domain.md ("start", "alarm", "status", ...). */
void custos_payload_event(custos_payload* p, const char* kind);
void custos_payload_init(custos_payload* p); /* an empty map (other content types) */
void custos_payload_text(custos_payload* p, const char* key, const char* value);
void custos_payload_number(custos_payload* p, const char* key, double value);
void custos_payload_int(custos_payload* p, const char* key, int64_t value);
void custos_payload_bool(custos_payload* p, const char* key, int value);
/* {"value": v, "unit": UCUM code}, e.g. dose 5 mg. */
void custos_payload_quantity(custos_payload* p, const char* key, double value, const char* unit);
/* "limit": {"kind": soft|hard, "bound": upper|lower, "value", "unit"}. */
void custos_payload_limit(custos_payload* p, const char* kind, const char* bound, double value,
                          const char* unit);
/* Writes the map into out (deterministic: keys sorted, duplicates refused).
 * Returns the length or a negative error. */
long custos_payload_finish(const custos_payload* p, uint8_t* out, size_t cap);

/* ---- Keys and statements ---- */
typedef struct custos_key custos_key;

/* Loads a PKCS#8 PEM private key (ES256 or Ed25519), as `custos keygen` or
 * `openssl genpkey` write it. */
int custos_key_load(const char* pem_path, custos_key** out);
void custos_key_free(custos_key* key);
/* COSE alg: -7 (ES256) or -19 (Ed25519). */
int custos_key_alg(const custos_key* key);
/* The key id: SHA-256 of the SubjectPublicKeyInfo DER. */
void custos_key_kid(const custos_key* key, uint8_t kid[32]);
/* The public key's SPKI DER (for the maker's device registration); returns
 * its length or a negative error. */
long custos_key_spki(const custos_key* key, uint8_t* out, size_t cap);

typedef struct custos_header {
  const char* content_type; /* e.g. CUSTOS_TYPE_DEVICE_EVENT */
  const char* issuer;       /* CWT iss: the device id */
  const char* subject;      /* CWT sub: what it concerns (infusion, order, the device) */
  uint64_t issued_at_s;     /* CWT iat, seconds since 1970 */
  uint64_t sequence;        /* >= 1, per key */
} custos_header;

#define CUSTOS_TYPE_DEVICE_EVENT "application/vnd.custos.device-event+cbor"
#define CUSTOS_TYPE_FIRMWARE_INSTALL "application/vnd.custos.firmware-install+cbor"

/* Signs payload into a tagged COSE_Sign1 statement (docs/formats.md s. 2).
 * Returns the statement's length or a negative error. Pure: no state. */
long custos_sign_statement(const custos_key* key, const custos_header* h, const uint8_t* payload,
                           size_t payload_len, uint8_t* out, size_t cap);

/* ---- Sequence numbers that survive a crash ---- */
typedef struct custos_sequence {
  char path[512];
  uint64_t next;     /* the next number to use */
  uint64_t reserved; /* numbers up to this one are reserved on disk */
  uint32_t block;    /* how many are reserved per fsync (>= 1) */
} custos_sequence;

/* Opens (or creates) the sequence file; `block` numbers are reserved per
 * write (1 = exact, no gap after a crash; more = fewer fsyncs, and the
 * first block is reserved here, so a restart skips what it did not use). */
int custos_sequence_open(custos_sequence* s, const char* path, uint32_t block);
/* The next number, reserving on disk first when needed. */
int custos_sequence_take(custos_sequence* s, uint64_t* out);

/* ---- A device on the broker ---- */
typedef struct custos_device custos_device;

typedef struct custos_ack {
  uint64_t sequence; /* from the correlation data */
  const char* json;  /* the gateway's answer, NUL-terminated */
  size_t json_len;
  int refused; /* 0: ack topic ({id, index, status}); 1: error topic ({type, detail}) */
} custos_ack;

typedef void (*custos_ack_fn)(custos_device* dev, const custos_ack* ack, void* user);

typedef struct custos_device_config {
  const char* device_id; /* TLS CN, topic segment, CWT iss */
  const char* site;      /* topic: iomt/v1/{site}/{unit}/{device_class}/{device_id}/... */
  const char* unit;
  const char* device_class;    /* e.g. "infusion-pump" */
  const char* key_path;        /* the device's signing key (PKCS#8 PEM) */
  const char* state_dir;       /* sequence file and offline queue (created) */
  uint32_t sequence_block;     /* 0 = 1 */
  uint32_t queue_messages_max; /* 0 = CUSTOS_QUEUE_MESSAGES_DEFAULT */
  uint32_t queue_bytes_max;    /* 0 = CUSTOS_QUEUE_BYTES_DEFAULT */
  /* Simulators only: keep the queue in memory (lost if the process dies;
   * no fsync per event). With a large sequence_block there is then no
   * fsync per event at all. A real device leaves this 0. */
  int memory_queue;
  /* Simulators only: seconds added to the device's clock (a device whose
   * clock drifts; the ledger flags clock-skew). A real device leaves it 0. */
  long clock_offset_s;
  /* Broker (MQTT 5 over TLS, client certificate required). */
  const char* host;
  int port;
  const char* ca_path;
  const char* cert_path;
  const char* cert_key_path;
  int keepalive_s; /* 0 = 30 */
  /* Set a response topic so the gateway answers. A statement then stays
   * queued until its answer (ack or refusal) arrives, not only until the
   * broker's PUBACK: an answer lost while the link was down (a clean MQTT
   * session keeps nothing for an absent device) is asked for again by
   * publishing the statement again, which the gateway answers
   * "already-registered". */
  int want_acks;
  uint32_t answer_resend_ms; /* 0 = CUSTOS_ANSWER_RESEND_MS_DEFAULT; see above */
  int want_receipts;         /* ask for the receipt in acks (user property receipt=1) */
  custos_ack_fn on_ack;      /* acks and refusals, from custos_device_loop */
  void* user;
} custos_device_config;

/* Opens the state directory (sequence, queue) and the key; no network yet.
 * Needs mosquitto_lib_init() once per process before the first call. */
int custos_device_open(const custos_device_config* cfg, custos_device** out);
/* Runs the MQTT connection for up to timeout_ms: connects (and reconnects
 * with backoff), sends queued statements, delivers acks. */
int custos_device_loop(custos_device* dev, int timeout_ms);
/* Signs an event (content type device-event, subject = `subject` or the
 * device id), queues it on disk, and publishes it on the event topic (or
 * the alarm topic for "alarm"/"alarm-cleared" events, the status topic
 * for "status" events, which is retained). Returns the sequence number used
 * (> 0) or a negative error. A not-connected device still queues. */
int64_t custos_device_event(custos_device* dev, const custos_payload* payload, const char* subject);
/* The same for any content type, on the given topic kind ("event",
 * "alarm", "status"). */
int64_t custos_device_publish(custos_device* dev, const char* content_type, const char* kind,
                              const uint8_t* payload, size_t payload_len, const char* subject);
int custos_device_connected(const custos_device* dev);
/* For a program that drives many devices from one thread (a simulator):
 * the socket to wait on, -1 while not connected, and whether the device has
 * bytes waiting to be written. Such a program poll()s every device's socket
 * (POLLOUT too when custos_device_want_write) and calls
 * custos_device_loop(dev, 0) on the ready ones, and on all of them every
 * 100 ms or so (keepalive, reconnects, resends), instead of calling
 * custos_device_loop(dev, 0) on all of them in a busy loop. */
int custos_device_socket(const custos_device* dev);
int custos_device_want_write(const custos_device* dev);
/* Simulators only: the device loses (offline = 1) or gets back (0) its
 * network. Going offline drops the connection without a DISCONNECT (the
 * broker then publishes the will, as for a cut cable) and nothing more is
 * sent: events are queued as when the broker is unreachable, and
 * custos_device_loop does not reconnect. Back online, the next
 * custos_device_loop reconnects at once and publishes everything queued,
 * oldest first (what was in flight or unanswered when the link dropped is sent again and
 * answered "already-registered" if it had reached the ledger). */
int custos_device_set_offline(custos_device* dev, int offline);
/* Statements still queued: not yet answered by the gateway (want_acks),
 * or not yet acknowledged by the broker (without want_acks). */
size_t custos_device_pending(const custos_device* dev);
/* Disconnects cleanly (the broker then publishes no will) and frees. */
void custos_device_close(custos_device* dev);

#ifdef __cplusplus
}
#endif

#endif /* CUSTOS_DEVICE_H */
