/* Per-key sequence numbers that are never reused: the file holds the
 * highest number reserved, written (and synced) before any number up to it
 * is handed out. After a crash the next run starts above it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "custos_device.h"
#include "files.h"

#define SEQUENCE_TEXT_MAX 32u

static int store(custos_sequence* s, uint64_t reserved) {
  char text[SEQUENCE_TEXT_MAX];
  int n = snprintf(text, sizeof text, "%llu\n", (unsigned long long)reserved);
  int rc = custos_file_write_synced(s->path, (const uint8_t*)text, (size_t)n);
  if (rc == CUSTOS_OK) s->reserved = reserved;
  return rc;
}

int custos_sequence_open(custos_sequence* s, const char* path, uint32_t block) {
  uint8_t text[SEQUENCE_TEXT_MAX];
  long n;
  if (!s || !path || strlen(path) >= sizeof s->path) return CUSTOS_EINVAL;
  memset(s, 0, sizeof *s);
  strcpy(s->path, path);
  s->block = block ? block : 1;
  n = custos_file_read(path, text, sizeof text - 1);
  if (n == CUSTOS_EINVAL) { /* a new device */
    s->reserved = 0;
  } else if (n < 0) {
    return CUSTOS_EIO;
  } else {
    char* end = NULL;
    text[n] = '\0';
    s->reserved = strtoull((const char*)text, &end, 10);
    if (end == (char*)text) return CUSTOS_EIO; /* unreadable: refuse rather than reuse */
  }
  s->next = s->reserved + 1;
  /* With blocks, reserve the first one now: the first event then waits for
   * no fsync (a device opens once and publishes for long; a simulator opens
   * hundreds of devices before its clock starts). */
  if (s->block > 1) return store(s, s->next + s->block - 1);
  return CUSTOS_OK;
}

int custos_sequence_take(custos_sequence* s, uint64_t* out) {
  if (s->next > s->reserved) {
    int rc = store(s, s->next + s->block - 1);
    if (rc != CUSTOS_OK) return rc;
  }
  *out = s->next++;
  return CUSTOS_OK;
}
