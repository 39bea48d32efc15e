/* An infusion pump built on the custos device SDK: it connects to the
 * broker with its client certificate, announces its status, programs and
 * starts an infusion, sends rate changes, an occlusion alarm and its
 * clearing, and waits for the gateway's acknowledgements.
 *
 *   custos-pump --sign-only DIR --key KEY --id ID --count N   (no broker)
 *   custos-pump --id pump-17 --key pump-17.key --state ./pump-17-state \
 *     --ca broker/ca.crt --cert pump-17.crt --cert-key pump-17-tls.key \
 *     --site st-mary --unit icu --count 10
 *
 * Prints one line per answer ("ack SEQ JSON" / "refused SEQ JSON") and a
 * summary JSON line at the end; exits 0 when every event was acknowledged
 * (or, with --no-wait, once the broker has them all). */
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "custos_device.h"

typedef struct counts {
  long acked, refused;
} counts;

static void on_ack(custos_device* dev, const custos_ack* ack, void* user) {
  counts* c = user;
  (void)dev;
  if (ack->refused) {
    c->refused++;
  } else {
    c->acked++;
  }
  printf("%s %llu %s\n", ack->refused ? "refused" : "ack", (unsigned long long)ack->sequence,
         ack->json);
  fflush(stdout);
}

static void build_event(custos_payload* p, long i, long count);

/* --sign-only DIR: the same script signed into DIR/<seq>.cose, no broker
 * (the interop tests verify these with independent COSE code). */
static int sign_only(const char* dir, const char* key_path, const char* id, long count) {
  custos_key* key = NULL;
  long i;
  int rc = custos_key_load(key_path, &key);
  if (rc != CUSTOS_OK) {
    fprintf(stderr, "custos-pump: %s\n", custos_strerror(rc));
    return 2;
  }
  for (i = 0; i < count; ++i) {
    custos_payload p;
    uint8_t payload[CUSTOS_PAYLOAD_BYTES_MAX], out[CUSTOS_STATEMENT_BYTES_MAX];
    char path[1024];
    custos_header h;
    long plen, slen;
    FILE* f;
    build_event(&p, i, count);
    plen = custos_payload_finish(&p, payload, sizeof payload);
    h.content_type = CUSTOS_TYPE_DEVICE_EVENT;
    h.issuer = id;
    h.subject = "infusion-1";
    h.issued_at_s = (uint64_t)time(NULL);
    h.sequence = (uint64_t)i + 1;
    slen = plen < 0 ? plen : custos_sign_statement(key, &h, payload, (size_t)plen, out, sizeof out);
    snprintf(path, sizeof path, "%s/%03ld.cose", dir, i + 1);
    f = slen > 0 ? fopen(path, "wb") : NULL;
    if (!f || fwrite(out, 1, (size_t)slen, f) != (size_t)slen) {
      fprintf(stderr, "custos-pump: cannot write %s\n", path);
      if (f) fclose(f);
      custos_key_free(key);
      return 2;
    }
    fclose(f);
  }
  custos_key_free(key);
  return 0;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char* arg(int argc, char** argv, const char* name, const char* fallback) {
  int i;
  for (i = 1; i + 1 < argc; ++i) {
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

static int flag(int argc, char** argv, const char* name) {
  int i;
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], name) == 0) return 1;
  }
  return 0;
}

/* The i-th event of the pump's script. */
static void build_event(custos_payload* p, long i, long count) {
  if (i == 0) {
    custos_payload_event(p, "status");
    custos_payload_text(p, "state", "idle");
    custos_payload_int(p, "battery_pct", 96);
  } else if (i == 1) {
    custos_payload_event(p, "programming");
    custos_payload_text(p, "drug", "heparin");
    custos_payload_text(p, "drug_library", "2025.3");
    custos_payload_number(p, "rate_ml_h", 12.5);
    custos_payload_number(p, "vtbi_ml", 250);
    custos_payload_quantity(p, "dose", 1000, "[iU]/h");
  } else if (i == 2) {
    custos_payload_event(p, "start");
    custos_payload_number(p, "rate_ml_h", 12.5);
  } else if (i == count - 2 && count > 4) {
    custos_payload_event(p, "alarm");
    custos_payload_text(p, "alarm", "occlusion-downstream");
    custos_payload_text(p, "priority", "high");
  } else if (i == count - 1 && count > 4) {
    custos_payload_event(p, "alarm-cleared");
    custos_payload_text(p, "alarm", "occlusion-downstream");
  } else {
    custos_payload_event(p, "rate-change");
    custos_payload_number(p, "rate_ml_h", 12.5 + (double)(i % 8) * 0.5);
  }
}

int main(int argc, char** argv) {
  custos_device_config cfg;
  custos_device* dev = NULL;
  counts c = {0, 0};
  long count = atol(arg(argc, argv, "--count", "5"));
  long interval_ms = atol(arg(argc, argv, "--interval-ms", "0"));
  long timeout_ms = atol(arg(argc, argv, "--timeout-ms", "30000"));
  int wait_acks = !flag(argc, argv, "--no-wait");
  long sent = 0, i;
  long long deadline;
  int rc;

  if (arg(argc, argv, "--sign-only", NULL)) {
    const char* id = arg(argc, argv, "--id", "pump-1");
    const char* key = arg(argc, argv, "--key", NULL);
    if (!key) return 2;
    return sign_only(arg(argc, argv, "--sign-only", NULL), key, id, count);
  }
  memset(&cfg, 0, sizeof cfg);
  cfg.device_id = arg(argc, argv, "--id", NULL);
  cfg.site = arg(argc, argv, "--site", "st-mary");
  cfg.unit = arg(argc, argv, "--unit", "icu");
  cfg.device_class = arg(argc, argv, "--class", "infusion-pump");
  cfg.key_path = arg(argc, argv, "--key", NULL);
  cfg.state_dir = arg(argc, argv, "--state", NULL);
  cfg.host = arg(argc, argv, "--host", "127.0.0.1");
  cfg.port = atoi(arg(argc, argv, "--port", "8883"));
  cfg.ca_path = arg(argc, argv, "--ca", NULL);
  cfg.cert_path = arg(argc, argv, "--cert", NULL);
  cfg.cert_key_path = arg(argc, argv, "--cert-key", NULL);
  cfg.want_acks = 1;
  cfg.want_receipts = flag(argc, argv, "--receipts");
  cfg.on_ack = on_ack;
  cfg.user = &c;
  if (!cfg.device_id || !cfg.key_path || !cfg.state_dir || !cfg.ca_path || !cfg.cert_path ||
      !cfg.cert_key_path || count < 0) {
    fprintf(stderr,
            "usage: custos-pump --id ID --key KEY.pem --state DIR --ca CA.crt --cert DEV.crt "
            "--cert-key DEV.key [--host H] [--port P] [--site S] [--unit U] [--count N] "
            "[--interval-ms MS] [--timeout-ms MS] [--receipts] [--no-wait]\n");
    return 2;
  }
  mosquitto_lib_init();
  rc = custos_device_open(&cfg, &dev);
  if (rc != CUSTOS_OK) {
    fprintf(stderr, "custos-pump: %s\n", custos_strerror(rc));
    return 2;
  }
  deadline = mono_ms() + timeout_ms;
  /* Events are signed and queued whether or not the broker is there. */
  for (i = 0; i < count; ++i) {
    custos_payload p;
    int64_t seq;
    build_event(&p, i, count);
    seq = custos_device_event(dev, &p, "infusion-1");
    if (seq < 0) {
      fprintf(stderr, "custos-pump: event %ld: %s\n", i, custos_strerror((int)seq));
      break;
    }
    sent++;
    custos_device_loop(dev, (int)interval_ms);
  }
  while (mono_ms() < deadline) {
    if (custos_device_pending(dev) == 0 && (!wait_acks || c.acked + c.refused >= sent)) break;
    custos_device_loop(dev, 50);
  }
  printf("{\"sent\":%ld,\"acked\":%ld,\"refused\":%ld,\"pending\":%lu}\n", sent, c.acked, c.refused,
         (unsigned long)custos_device_pending(dev));
  rc = custos_device_pending(dev) == 0 && (!wait_acks || c.acked + c.refused >= sent) ? 0 : 1;
  custos_device_close(dev);
  mosquitto_lib_cleanup();
  return rc;
}
