/* Many devices in one thread: the shape a hospital simulator takes. Each
 * device has its own key, TLS certificate and MQTT connection; all are
 * driven from one poll() over all their sockets (custos_device_socket), with
 * memory queues and sequence numbers reserved in blocks (no fsync per
 * event). It never spins: its CPU is the devices' work (signing, TLS, MQTT),
 * not waiting, since it shares the machine with the pipeline it measures.
 *
 *   custos-fleet --dir FLEET --ca broker/ca.crt --devices 100 --events 50 [--rate 1]
 *
 * FLEET holds, for device i (id PREFIXi, default prefix "sim-"): PREFIXi.key
 * (signing key, registered on the ledger by its maker), PREFIXi-tls.crt and
 * PREFIXi-tls.key (from `custos broker issue`); state goes to FLEET/state/.
 * scripts/gateway-fleet.sh makes such a folder. Prints one JSON line:
 * events sent, acknowledged, refused, seconds, events/s, and the
 * publish-to-ack latency (p50, p99) seen by the devices. */
#include <mosquitto.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "custos_device.h"

#define LATENCY_BUCKETS 2000 /* 10 ms buckets up to 20 s */
/* Every device's loop runs at least this often, ready or not: keepalive
 * pings, reconnects and the resends of unanswered statements. */
#define ALL_DEVICES_EVERY_S 0.1

typedef struct fleet {
  long acked, refused;
  long latency[LATENCY_BUCKETS + 1];
  double* sent_at; /* per device, per sequence slot */
  long events;
} fleet;

typedef struct member {
  fleet* f;
  long index;
  uint64_t first_sequence;
} member;

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Waits up to timeout_ms for any device's socket, then runs the loop of the
 * devices that are ready (and of all of them every ALL_DEVICES_EVERY_S). */
static void pump(custos_device** devs, long n, struct pollfd* fds, int timeout_ms, double* all_at) {
  long i;
  int all;
  for (i = 0; i < n; ++i) {
    fds[i].fd = custos_device_socket(devs[i]);
    fds[i].events = (short)(POLLIN | (custos_device_want_write(devs[i]) ? POLLOUT : 0));
    fds[i].revents = 0;
  }
  if (poll(fds, (nfds_t)n, timeout_ms) < 0) return;
  all = now_s() >= *all_at;
  if (all) *all_at = now_s() + ALL_DEVICES_EVERY_S;
  for (i = 0; i < n; ++i) {
    if (all || fds[i].revents) custos_device_loop(devs[i], 0);
  }
}

static const char* arg(int argc, char** argv, const char* name, const char* fallback) {
  int i;
  for (i = 1; i + 1 < argc; ++i) {
    if (strcmp(argv[i], name) == 0) return argv[i + 1];
  }
  return fallback;
}

static void on_ack(custos_device* dev, const custos_ack* ack, void* user) {
  member* m = user;
  fleet* f = m->f;
  (void)dev;
  if (ack->refused) {
    f->refused++;
    if (f->refused <= 3) fprintf(stderr, "refused: %s\n", ack->json);
    return;
  }
  f->acked++;
  if (ack->sequence >= m->first_sequence &&
      ack->sequence - m->first_sequence < (uint64_t)f->events) {
    double sent = f->sent_at[m->index * f->events + (long)(ack->sequence - m->first_sequence)];
    long bucket = (long)((now_s() - sent) * 100.0);
    if (bucket < 0) bucket = 0;
    if (bucket > LATENCY_BUCKETS) bucket = LATENCY_BUCKETS;
    f->latency[bucket]++;
  }
}

static double quantile_ms(const fleet* f, double q) {
  long total = 0, seen = 0, i;
  for (i = 0; i <= LATENCY_BUCKETS; ++i) total += f->latency[i];
  for (i = 0; i <= LATENCY_BUCKETS; ++i) {
    seen += f->latency[i];
    if (total > 0 && (double)seen >= q * (double)total) return (double)(i + 1) * 10.0;
  }
  return 0;
}

int main(int argc, char** argv) {
  const char* dir = arg(argc, argv, "--dir", NULL);
  const char* prefix = arg(argc, argv, "--prefix", "sim-");
  long n = atol(arg(argc, argv, "--devices", "10"));
  long events = atol(arg(argc, argv, "--events", "10"));
  double rate = atof(arg(argc, argv, "--rate", "0")); /* events/s per device; 0 = at once */
  double timeout = atof(arg(argc, argv, "--timeout-s", "120"));
  fleet f;
  custos_device** devs;
  member* members;
  char id[96], path[4][1024];
  long i, k;
  double t0, t_end, all_at = 0;
  struct pollfd* fds;
  struct rusage usage;
  if (!dir || n <= 0 || events <= 0) {
    fprintf(stderr,
            "usage: custos-fleet --dir FLEET --ca CA.crt [--prefix sim-] [--devices N] "
            "[--events N] [--rate EV/S] [--host H] [--port P] [--timeout-s S]\n");
    return 2;
  }
  memset(&f, 0, sizeof f);
  f.events = events;
  f.sent_at = calloc((size_t)(n * events), sizeof *f.sent_at);
  devs = calloc((size_t)n, sizeof *devs);
  members = calloc((size_t)n, sizeof *members);
  fds = calloc((size_t)n, sizeof *fds);
  if (!f.sent_at || !devs || !members || !fds) return 2;
  mosquitto_lib_init();
  for (i = 0; i < n; ++i) {
    custos_device_config c;
    int rc;
    memset(&c, 0, sizeof c);
    if (snprintf(id, sizeof id, "%s%ld", prefix, i) >= (int)sizeof id ||
        strlen(dir) > sizeof path[0] - sizeof id - 16) {
      fprintf(stderr, "custos-fleet: --dir or --prefix too long\n");
      return 2;
    }
    snprintf(path[0], sizeof path[0], "%s/%s.key", dir, id);
    snprintf(path[1], sizeof path[1], "%s/state/%s", dir, id);
    snprintf(path[2], sizeof path[2], "%s/%s-tls.crt", dir, id);
    snprintf(path[3], sizeof path[3], "%s/%s-tls.key", dir, id);
    c.device_id = id;
    c.site = arg(argc, argv, "--site", "st-mary");
    c.unit = arg(argc, argv, "--unit", "icu");
    c.device_class = "infusion-pump";
    c.key_path = path[0];
    c.state_dir = path[1];
    c.host = arg(argc, argv, "--host", "127.0.0.1");
    c.port = atoi(arg(argc, argv, "--port", "8883"));
    c.ca_path = arg(argc, argv, "--ca", NULL);
    c.cert_path = path[2];
    c.cert_key_path = path[3];
    c.want_acks = 1;
    c.on_ack = on_ack;
    c.user = &members[i];
    c.memory_queue = 1;
    c.sequence_block = 1000000;
    c.queue_messages_max = (uint32_t)events + 16;
    members[i].f = &f;
    members[i].index = i;
    rc = custos_device_open(&c, &devs[i]);
    if (rc != CUSTOS_OK) {
      fprintf(stderr, "custos-fleet: device %s: %s\n", id, custos_strerror(rc));
      return 2;
    }
  }
  /* Connect everyone first (up to 10 s). */
  t0 = now_s();
  for (;;) {
    long connected = 0;
    pump(devs, n, fds, 10, &all_at);
    for (i = 0; i < n; ++i) connected += custos_device_connected(devs[i]);
    if (connected == n || now_s() - t0 > 10) break;
  }
  t0 = now_s();
  for (k = 0; k < events; ++k) {
    if (rate > 0) {
      double wait_s;
      while ((wait_s = t0 + (double)k / rate - now_s()) > 0) {
        pump(devs, n, fds, (int)(wait_s * 1000.0) + 1, &all_at);
      }
    }
    for (i = 0; i < n; ++i) {
      custos_payload p;
      int64_t seq;
      custos_payload_event(&p, "rate-change");
      custos_payload_number(&p, "rate_ml_h", 10.0 + (double)(k % 40) * 0.5);
      f.sent_at[i * events + k] = now_s();
      seq = custos_device_event(devs[i], &p, "infusion-1");
      if (seq < 0) {
        fprintf(stderr, "custos-fleet: %s\n", custos_strerror((int)seq));
        return 1;
      }
      if (k == 0) members[i].first_sequence = (uint64_t)seq;
    }
    /* The publishes above were written at once (libmosquitto writes
     * straight away when no loop thread runs); read what came back. */
    pump(devs, n, fds, 0, &all_at);
  }
  while (f.acked + f.refused < n * events && now_s() - t0 < timeout) {
    pump(devs, n, fds, 100, &all_at);
  }
  t_end = now_s();
  getrusage(RUSAGE_SELF, &usage);
  printf(
      "{\"devices\":%ld,\"events\":%ld,\"acked\":%ld,\"refused\":%ld,\"seconds\":%.2f,"
      "\"events_per_s\":%.0f,\"ack_p50_ms\":%.0f,\"ack_p99_ms\":%.0f,\"cpu_s\":%.3f}\n",
      n, n * events, f.acked, f.refused, t_end - t0, (double)f.acked / (t_end - t0),
      quantile_ms(&f, 0.5), quantile_ms(&f, 0.99),
      (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
          (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6);
  for (i = 0; i < n; ++i) custos_device_close(devs[i]);
  mosquitto_lib_cleanup();
  free(f.sent_at);
  free(devs);
  free(members);
  free(fds);
  return f.acked + f.refused == n * events && f.refused == 0 ? 0 : 1;
}
