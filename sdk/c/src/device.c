/* A device on the broker: signs, queues on disk, publishes (MQTT 5 QoS 1
 * over TLS), republishes what is still queued after every reconnect and
 * restart, and hands the gateway's answers to the app. With acks wanted a
 * statement leaves the queue on its answer, not on the broker's PUBACK:
 * the session is clean, so an answer sent while the link was down is gone,
 * and publishing again is how the device asks for it. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "custos_device.h"
#include "files.h"

#define TOPIC_BYTES_MAX 512u
#define PATH_BYTES_MAX 512u
#define RECONNECT_MS_MIN 200
#define RECONNECT_MS_MAX 10000
#define OFFLINE_WILL "{\"state\":\"offline\"}"
#define ACK_JSON_BYTES_MAX 65536u

enum kind { KIND_EVENT = 0, KIND_ALARM = 1, KIND_STATUS = 2 };
static const char* const kKindNames[] = {"event", "alarm", "status"};

typedef struct entry {
  uint64_t sequence;
  enum kind kind;
  uint8_t* bytes;
  size_t len;
  int mid;                  /* in flight with this MQTT message id; -1 = to (re)publish */
  int awaiting_answer;      /* the broker took it; the gateway has not answered */
  long long resend_at_ms;   /* monotonic: publish again if still unanswered */
  long long resend_wait_ms; /* doubles per resend */
} entry;

struct custos_device {
  char device_id[65];
  char base[TOPIC_BYTES_MAX]; /* iomt/v1/site/unit/class/id */
  char queue_dir[PATH_BYTES_MAX];
  char host[256], ca[PATH_BYTES_MAX], cert[PATH_BYTES_MAX], cert_key[PATH_BYTES_MAX];
  int port, keepalive_s, want_acks, want_receipts;
  long long answer_resend_ms;
  long long next_resend_ms; /* monotonic: no entry is due before (0 = look) */
  uint32_t queue_messages_max, queue_bytes_max;
  int memory_queue;
  long clock_offset_s;
  custos_ack_fn on_ack;
  void* user;
  custos_key* key;
  custos_sequence seq;
  entry* entries;
  size_t count, cap, bytes;
  struct mosquitto* mosq;
  int connected;
  int offline; /* custos_device_set_offline: no network until cleared */
  long long next_attempt_ms;
  int backoff_ms;
};

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int copy_str(char* dst, size_t cap, const char* src) {
  if (!src || strlen(src) >= cap) return CUSTOS_EINVAL;
  strcpy(dst, src);
  return CUSTOS_OK;
}

/* A topic segment as the gateway accepts it: 1-64 of [A-Za-z0-9._:-]. */
static int segment_ok(const char* s) {
  size_t n = s ? strlen(s) : 0, i;
  if (n == 0 || n > 64) return 0;
  for (i = 0; i < n; ++i) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
          c == '_' || c == ':' || c == '-')) {
      return 0;
    }
  }
  return 1;
}

static void entry_path(const custos_device* d, uint64_t sequence, char* out, size_t cap) {
  snprintf(out, cap, "%s/%020llu.cose", d->queue_dir, (unsigned long long)sequence);
}

static int push_entry(custos_device* d, uint64_t sequence, enum kind kind, const uint8_t* bytes,
                      size_t len) {
  entry* e;
  if (d->count == d->cap) {
    size_t cap = d->cap ? d->cap * 2 : 64;
    entry* n = realloc(d->entries, cap * sizeof *n);
    if (!n) return CUSTOS_EIO;
    d->entries = n;
    d->cap = cap;
  }
  e = &d->entries[d->count];
  e->bytes = malloc(len);
  if (!e->bytes) return CUSTOS_EIO;
  memcpy(e->bytes, bytes, len);
  e->len = len;
  e->sequence = sequence;
  e->kind = kind;
  e->mid = -1;
  e->awaiting_answer = 0;
  e->resend_at_ms = 0;
  e->resend_wait_ms = d->answer_resend_ms;
  d->count++;
  d->bytes += len;
  return CUSTOS_OK;
}

static void drop_entry(custos_device* d, size_t i) {
  char path[PATH_BYTES_MAX + 32];
  entry_path(d, d->entries[i].sequence, path, sizeof path);
  /* No fsync: a file that comes back after a crash is published again and
   * answered "already-registered". */
  if (!d->memory_queue) unlink(path);
  d->bytes -= d->entries[i].len;
  free(d->entries[i].bytes);
  memmove(&d->entries[i], &d->entries[i + 1], (d->count - i - 1) * sizeof *d->entries);
  d->count--;
}

static int compare_names(const void* a, const void* b) {
  return strcmp(*(char* const*)a, *(char* const*)b);
}

/* Loads queued statements left by an earlier run, oldest first. */
static int load_queue(custos_device* d) {
  DIR* dir = opendir(d->queue_dir);
  struct dirent* de;
  char** names = NULL;
  uint8_t* buf = NULL;
  size_t n = 0, cap = 0, i;
  int rc = CUSTOS_OK;
  if (!dir) return CUSTOS_EIO;
  while ((de = readdir(dir)) != NULL) {
    size_t len = strlen(de->d_name);
    if (len != 25 || strcmp(de->d_name + 20, ".cose") != 0) continue;
    if (n == cap) {
      char** g;
      cap = cap ? cap * 2 : 64;
      g = realloc(names, cap * sizeof *g);
      if (!g) {
        rc = CUSTOS_EIO;
        break;
      }
      names = g;
    }
    names[n] = malloc(len + 1);
    if (!names[n]) {
      rc = CUSTOS_EIO;
      break;
    }
    memcpy(names[n++], de->d_name, len + 1);
  }
  closedir(dir);
  if (n) qsort(names, n, sizeof *names, compare_names);
  buf = malloc(1 + CUSTOS_STATEMENT_BYTES_MAX);
  if (!buf) rc = CUSTOS_EIO;
  for (i = 0; i < n; ++i) {
    char path[PATH_BYTES_MAX + 32];
    long len;
    snprintf(path, sizeof path, "%s/%s", d->queue_dir, names[i]);
    len = rc == CUSTOS_OK ? custos_file_read(path, buf, 1 + CUSTOS_STATEMENT_BYTES_MAX) : -1;
    if (rc == CUSTOS_OK && len > 1 && buf[0] <= KIND_STATUS) {
      rc = push_entry(d, strtoull(names[i], NULL, 10), (enum kind)buf[0], buf + 1, (size_t)len - 1);
    }
    free(names[i]);
  }
  free(buf);
  free(names);
  return rc;
}

static void publish_entry(custos_device* d, entry* e) {
  char topic[TOPIC_BYTES_MAX + 16], ack[TOPIC_BYTES_MAX + 16], sent[32];
  uint8_t corr[8];
  mosquitto_property* props = NULL;
  int mid = 0, i, rc;
  snprintf(topic, sizeof topic, "%s/%s", d->base, kKindNames[e->kind]);
  for (i = 0; i < 8; ++i) corr[i] = (uint8_t)(e->sequence >> (56 - 8 * i));
  if (d->want_acks) {
    snprintf(ack, sizeof ack, "%s/ack", d->base);
    mosquitto_property_add_string(&props, MQTT_PROP_RESPONSE_TOPIC, ack);
  }
  mosquitto_property_add_binary(&props, MQTT_PROP_CORRELATION_DATA, corr, sizeof corr);
  snprintf(sent, sizeof sent, "%lld", now_ms());
  mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "sent_ms", sent);
  if (d->want_receipts) {
    mosquitto_property_add_string_pair(&props, MQTT_PROP_USER_PROPERTY, "receipt", "1");
  }
  rc = mosquitto_publish_v5(d->mosq, &mid, topic, (int)e->len, e->bytes, 1, e->kind == KIND_STATUS,
                            props);
  mosquitto_property_free_all(&props);
  e->mid = rc == MOSQ_ERR_SUCCESS ? mid : -1;
  e->awaiting_answer = 0;
}

/* With acks wanted: statements the broker took long ago and nobody
 * answered are published again (the gateway may have been down, or its
 * answer dropped); each waits twice as long as the last time. */
static void resend_unanswered(custos_device* d) {
  long long now = mono_ms(), next = LLONG_MAX;
  size_t i;
  /* The loop runs often and the queue may hold thousands: look only when
   * one is due. */
  if (now < d->next_resend_ms) return;
  for (i = 0; i < d->count; ++i) {
    entry* e = &d->entries[i];
    if (!e->awaiting_answer) continue;
    if (now < e->resend_at_ms) {
      if (e->resend_at_ms < next) next = e->resend_at_ms;
      continue;
    }
    e->resend_wait_ms = e->resend_wait_ms * 2 > CUSTOS_ANSWER_RESEND_MS_MAX
                            ? CUSTOS_ANSWER_RESEND_MS_MAX
                            : e->resend_wait_ms * 2;
    publish_entry(d, e);
  }
  d->next_resend_ms = next;
}

static size_t find_entry(const custos_device* d, uint64_t sequence) {
  size_t i;
  for (i = 0; i < d->count; ++i) {
    if (d->entries[i].sequence == sequence) return i;
  }
  return d->count;
}

static void on_connect(struct mosquitto* m, void* obj, int rc, int flags,
                       const mosquitto_property* props) {
  custos_device* d = obj;
  char topic[TOPIC_BYTES_MAX + 16];
  size_t i;
  (void)flags;
  (void)props;
  if (rc != 0) return;
  d->connected = 1;
  d->backoff_ms = RECONNECT_MS_MIN;
  if (d->want_acks || d->on_ack) {
    snprintf(topic, sizeof topic, "%s/ack", d->base);
    mosquitto_subscribe_v5(m, NULL, topic, 1, 0, NULL);
  }
  snprintf(topic, sizeof topic, "%s/error", d->base);
  mosquitto_subscribe_v5(m, NULL, topic, 1, 0, NULL);
  for (i = 0; i < d->count; ++i) {
    d->entries[i].mid = -1;
    publish_entry(d, &d->entries[i]);
  }
}

static void on_disconnect(struct mosquitto* m, void* obj, int rc, const mosquitto_property* props) {
  custos_device* d = obj;
  size_t i;
  (void)m;
  (void)rc;
  (void)props;
  d->connected = 0;
  for (i = 0; i < d->count; ++i) d->entries[i].mid = -1;
}

static void on_publish(struct mosquitto* m, void* obj, int mid, int reason,
                       const mosquitto_property* props) {
  custos_device* d = obj;
  size_t i;
  (void)m;
  (void)props;
  for (i = 0; i < d->count; ++i) {
    if (d->entries[i].mid == mid) {
      if (reason < 0x80 && d->want_acks) {
        d->entries[i].mid = -1; /* the broker has it: kept until answered */
        d->entries[i].awaiting_answer = 1;
        d->entries[i].resend_at_ms = mono_ms() + d->entries[i].resend_wait_ms;
        if (d->entries[i].resend_at_ms < d->next_resend_ms) {
          d->next_resend_ms = d->entries[i].resend_at_ms;
        }
      } else if (reason < 0x80) {
        drop_entry(d, i); /* the broker has it */
      } else {
        d->entries[i].mid = -1; /* refused by the broker (ACL, size): kept, retried */
      }
      return;
    }
  }
}

static void on_message(struct mosquitto* m, void* obj, const struct mosquitto_message* msg,
                       const mosquitto_property* props) {
  custos_device* d = obj;
  custos_ack ack;
  void* corr = NULL;
  uint16_t corr_len = 0;
  size_t tlen = msg->topic ? strlen(msg->topic) : 0;
  char* json;
  (void)m;
  if (msg->payloadlen < 0 || (size_t)msg->payloadlen > ACK_JSON_BYTES_MAX) return;
  memset(&ack, 0, sizeof ack);
  ack.refused = tlen >= 6 && strcmp(msg->topic + tlen - 6, "/error") == 0;
  if (mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, 0) &&
      corr) {
    if (corr_len == 8) {
      int i;
      for (i = 0; i < 8; ++i) ack.sequence = (ack.sequence << 8) | ((uint8_t*)corr)[i];
    }
    free(corr);
  }
  json = malloc((size_t)msg->payloadlen + 1);
  if (!json) return;
  memcpy(json, msg->payload, (size_t)msg->payloadlen);
  json[msg->payloadlen] = '\0';
  ack.json = json;
  ack.json_len = (size_t)msg->payloadlen;
  /* Answered (registered, already-registered or refused for good): it
   * leaves the queue. Sequence 0 is nobody's (another client's correlation). */
  if (ack.sequence != 0) {
    size_t i = find_entry(d, ack.sequence);
    if (i < d->count) drop_entry(d, i);
  }
  if (d->on_ack) d->on_ack(d, &ack, d->user);
  free(json);
}

static int connect_now(custos_device* d) {
  mosquitto_property* props = NULL;
  int rc;
  if (d->mosq) mosquitto_destroy(d->mosq);
  d->connected = 0;
  /* A fresh client per connection: what the broker did not acknowledge is
   * republished from this SDK's queue, not from libmosquitto's. */
  d->mosq = mosquitto_new(d->device_id, 1, d);
  if (!d->mosq) return CUSTOS_EMQTT;
  mosquitto_int_option(d->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
  if (mosquitto_tls_set(d->mosq, d->ca, NULL, d->cert, d->cert_key, NULL) != MOSQ_ERR_SUCCESS) {
    return CUSTOS_EINVAL;
  }
  {
    char will[TOPIC_BYTES_MAX + 16];
    snprintf(will, sizeof will, "%s/status", d->base);
    mosquitto_will_set_v5(d->mosq, will, (int)strlen(OFFLINE_WILL), OFFLINE_WILL, 1, 1, NULL);
  }
  mosquitto_connect_v5_callback_set(d->mosq, on_connect);
  mosquitto_disconnect_v5_callback_set(d->mosq, on_disconnect);
  mosquitto_publish_v5_callback_set(d->mosq, on_publish);
  mosquitto_message_v5_callback_set(d->mosq, on_message);
  rc = mosquitto_connect_bind_v5(d->mosq, d->host, d->port, d->keepalive_s, NULL, props);
  return rc == MOSQ_ERR_SUCCESS ? CUSTOS_OK : CUSTOS_ENOTCONN;
}

int custos_device_open(const custos_device_config* cfg, custos_device** out) {
  custos_device* d;
  char path[PATH_BYTES_MAX + 32];
  int rc;
  if (!cfg || !out || !segment_ok(cfg->device_id) || !segment_ok(cfg->site) ||
      !segment_ok(cfg->unit) || !segment_ok(cfg->device_class) || !cfg->key_path ||
      !cfg->state_dir || !cfg->host) {
    return CUSTOS_EINVAL;
  }
  d = calloc(1, sizeof *d);
  if (!d) return CUSTOS_EIO;
  strcpy(d->device_id, cfg->device_id);
  snprintf(d->base, sizeof d->base, "iomt/v1/%s/%s/%s/%s", cfg->site, cfg->unit, cfg->device_class,
           cfg->device_id);
  rc = copy_str(d->host, sizeof d->host, cfg->host);
  if (rc == CUSTOS_OK) rc = copy_str(d->ca, sizeof d->ca, cfg->ca_path ? cfg->ca_path : "");
  if (rc == CUSTOS_OK) rc = copy_str(d->cert, sizeof d->cert, cfg->cert_path ? cfg->cert_path : "");
  if (rc == CUSTOS_OK) {
    rc = copy_str(d->cert_key, sizeof d->cert_key, cfg->cert_key_path ? cfg->cert_key_path : "");
  }
  if (rc == CUSTOS_OK && snprintf(d->queue_dir, sizeof d->queue_dir, "%s/queue", cfg->state_dir) >=
                             (int)sizeof d->queue_dir) {
    rc = CUSTOS_EINVAL;
  }
  d->port = cfg->port ? cfg->port : 8883;
  d->keepalive_s = cfg->keepalive_s ? cfg->keepalive_s : 30;
  d->want_acks = cfg->want_acks;
  d->answer_resend_ms =
      cfg->answer_resend_ms ? cfg->answer_resend_ms : CUSTOS_ANSWER_RESEND_MS_DEFAULT;
  if (d->answer_resend_ms > CUSTOS_ANSWER_RESEND_MS_MAX) rc = CUSTOS_EINVAL;
  d->want_receipts = cfg->want_receipts;
  d->on_ack = cfg->on_ack;
  d->user = cfg->user;
  d->queue_messages_max =
      cfg->queue_messages_max ? cfg->queue_messages_max : CUSTOS_QUEUE_MESSAGES_DEFAULT;
  d->queue_bytes_max = cfg->queue_bytes_max ? cfg->queue_bytes_max : CUSTOS_QUEUE_BYTES_DEFAULT;
  d->backoff_ms = RECONNECT_MS_MIN;
  d->memory_queue = cfg->memory_queue;
  d->clock_offset_s = cfg->clock_offset_s;
  if (rc == CUSTOS_OK) rc = custos_mkdir_p(d->queue_dir);
  snprintf(path, sizeof path, "%s/sequence", cfg->state_dir);
  if (rc == CUSTOS_OK) rc = custos_sequence_open(&d->seq, path, cfg->sequence_block);
  if (rc == CUSTOS_OK) rc = custos_key_load(cfg->key_path, &d->key);
  if (rc == CUSTOS_OK && !d->memory_queue) rc = load_queue(d);
  if (rc != CUSTOS_OK) {
    custos_device_close(d);
    return rc;
  }
  *out = d;
  return CUSTOS_OK;
}

int custos_device_loop(custos_device* d, int timeout_ms) {
  int rc;
  if (!d->mosq || mosquitto_socket(d->mosq) < 0) {
    if (d->offline || mono_ms() < d->next_attempt_ms) {
      if (timeout_ms > 0) {
        struct timespec ts;
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        nanosleep(&ts, NULL);
      }
      return CUSTOS_ENOTCONN;
    }
    rc = connect_now(d);
    if (rc != CUSTOS_OK) {
      d->next_attempt_ms = mono_ms() + d->backoff_ms;
      d->backoff_ms = d->backoff_ms * 2 > RECONNECT_MS_MAX ? RECONNECT_MS_MAX : d->backoff_ms * 2;
      return rc;
    }
  }
  rc = mosquitto_loop(d->mosq, timeout_ms, 1);
  if (rc == MOSQ_ERR_SUCCESS && d->connected) resend_unanswered(d);
  if (rc != MOSQ_ERR_SUCCESS) {
    d->connected = 0;
    d->next_attempt_ms = mono_ms() + d->backoff_ms;
    d->backoff_ms = d->backoff_ms * 2 > RECONNECT_MS_MAX ? RECONNECT_MS_MAX : d->backoff_ms * 2;
    mosquitto_disconnect(d->mosq);
    return CUSTOS_ENOTCONN;
  }
  return CUSTOS_OK;
}

int64_t custos_device_publish(custos_device* d, const char* content_type, const char* kind_name,
                              const uint8_t* payload, size_t payload_len, const char* subject) {
  uint8_t* buf;
  char path[PATH_BYTES_MAX + 32];
  custos_header h;
  enum kind kind = KIND_EVENT;
  uint64_t sequence = 0;
  long len;
  int rc;
  if (!kind_name || strcmp(kind_name, "event") == 0) {
    kind = KIND_EVENT;
  } else if (strcmp(kind_name, "alarm") == 0) {
    kind = KIND_ALARM;
  } else if (strcmp(kind_name, "status") == 0) {
    kind = KIND_STATUS;
  } else {
    return CUSTOS_EINVAL;
  }
  if (d->count >= d->queue_messages_max || d->bytes >= d->queue_bytes_max) return CUSTOS_EFULL;
  rc = custos_sequence_take(&d->seq, &sequence);
  if (rc != CUSTOS_OK) return rc;
  buf = malloc(1 + CUSTOS_STATEMENT_BYTES_MAX);
  if (!buf) return CUSTOS_EIO;
  h.content_type = content_type;
  h.issuer = d->device_id;
  h.subject = subject && *subject ? subject : d->device_id;
  h.issued_at_s = (uint64_t)(now_ms() / 1000 + d->clock_offset_s);
  h.sequence = sequence;
  len =
      custos_sign_statement(d->key, &h, payload, payload_len, buf + 1, CUSTOS_STATEMENT_BYTES_MAX);
  if (len < 0) {
    free(buf);
    return len;
  }
  buf[0] = (uint8_t)kind;
  entry_path(d, sequence, path, sizeof path);
  /* On disk before it may leave: a crash after this publishes it again. */
  rc = d->memory_queue ? CUSTOS_OK : custos_file_write_synced(path, buf, (size_t)len + 1);
  if (rc == CUSTOS_OK) rc = push_entry(d, sequence, kind, buf + 1, (size_t)len);
  free(buf);
  if (rc != CUSTOS_OK) return rc;
  if (d->connected) publish_entry(d, &d->entries[d->count - 1]);
  return (int64_t)sequence;
}

int64_t custos_device_event(custos_device* d, const custos_payload* p, const char* subject) {
  uint8_t payload[CUSTOS_PAYLOAD_BYTES_MAX + 16];
  const char* kind = "event";
  long len = custos_payload_finish(p, payload, sizeof payload);
  if (len < 0) return len;
  /* The topic kind follows the event kind (custos_payload_event's field). */
  if (p->count > 0 && p->fields[0].key_len == 6 &&
      memcmp(p->data + p->fields[0].key_off,
             "\x65"
             "event",
             6) == 0) {
    const uint8_t* v = p->data + p->fields[0].val_off;
    size_t vl = p->fields[0].val_len;
    if (vl >= 6 && memcmp(v,
                          "\x65"
                          "alarm",
                          6) == 0)
      kind = "alarm";
    if (vl >= 14 && memcmp(v,
                           "\x6d"
                           "alarm-cleared",
                           14) == 0)
      kind = "alarm";
    if (vl >= 7 && memcmp(v,
                          "\x66"
                          "status",
                          7) == 0)
      kind = "status";
  }
  return custos_device_publish(d, CUSTOS_TYPE_DEVICE_EVENT, kind, payload, (size_t)len, subject);
}

int custos_device_connected(const custos_device* d) {
  return d->connected;
}

int custos_device_socket(const custos_device* d) {
  return d->mosq ? mosquitto_socket(d->mosq) : -1;
}

int custos_device_want_write(const custos_device* d) {
  return d->mosq && mosquitto_socket(d->mosq) >= 0 && mosquitto_want_write(d->mosq);
}

int custos_device_set_offline(custos_device* d, int offline) {
  size_t i;
  if (!d) return CUSTOS_EINVAL;
  if (offline && !d->offline) {
    /* Closing the socket without a DISCONNECT is what the broker sees when
     * the link breaks. Nothing is in flight any more: all is queued. */
    if (d->mosq) mosquitto_destroy(d->mosq);
    d->mosq = NULL;
    d->connected = 0;
    for (i = 0; i < d->count; ++i) d->entries[i].mid = -1;
  } else if (!offline && d->offline) {
    d->next_attempt_ms = 0;
    d->backoff_ms = RECONNECT_MS_MIN;
  }
  d->offline = offline ? 1 : 0;
  return CUSTOS_OK;
}

size_t custos_device_pending(const custos_device* d) {
  return d->count;
}

void custos_device_close(custos_device* d) {
  size_t i;
  if (!d) return;
  if (d->mosq) {
    if (d->connected) {
      int tries;
      mosquitto_disconnect(d->mosq);
      for (tries = 0; tries < 10 && mosquitto_socket(d->mosq) >= 0; ++tries) {
        mosquitto_loop(d->mosq, 10, 1);
      }
    }
    mosquitto_destroy(d->mosq);
  }
  for (i = 0; i < d->count; ++i) free(d->entries[i].bytes);
  free(d->entries);
  custos_key_free(d->key);
  free(d);
}
