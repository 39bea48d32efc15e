#include "files.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "custos_device.h"

int custos_dir_sync(const char* dir) {
  int fd = open(dir, O_RDONLY | O_DIRECTORY);
  int rc;
  if (fd < 0) return CUSTOS_EIO;
  rc = fsync(fd);
  close(fd);
  return rc == 0 ? CUSTOS_OK : CUSTOS_EIO;
}

int custos_mkdir_p(const char* dir) {
  char tmp[512];
  size_t i, n = strlen(dir);
  if (n == 0 || n >= sizeof tmp) return CUSTOS_EINVAL;
  memcpy(tmp, dir, n + 1);
  for (i = 1; i <= n; ++i) {
    if (tmp[i] == '/' || tmp[i] == '\0') {
      char c = tmp[i];
      tmp[i] = '\0';
      if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return CUSTOS_EIO;
      tmp[i] = c;
    }
  }
  return CUSTOS_OK;
}

static int parent_of(const char* path, char* out, size_t cap) {
  const char* slash = strrchr(path, '/');
  size_t n;
  if (!slash) {
    if (cap < 2) return CUSTOS_EINVAL;
    strcpy(out, ".");
    return CUSTOS_OK;
  }
  n = (size_t)(slash - path);
  if (n == 0) n = 1;
  if (n >= cap) return CUSTOS_EINVAL;
  memcpy(out, path, n);
  out[n] = '\0';
  return CUSTOS_OK;
}

int custos_file_write_synced(const char* path, const uint8_t* data, size_t len) {
  char tmp[600], dir[512];
  int fd;
  size_t done = 0;
  if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp) return CUSTOS_EINVAL;
  if (parent_of(path, dir, sizeof dir) != CUSTOS_OK) return CUSTOS_EINVAL;
  fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd < 0) return CUSTOS_EIO;
  while (done < len) {
    ssize_t w = write(fd, data + done, len - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      close(fd);
      return CUSTOS_EIO;
    }
    done += (size_t)w;
  }
  if (fsync(fd) != 0) {
    close(fd);
    return CUSTOS_EIO;
  }
  close(fd);
  if (rename(tmp, path) != 0) return CUSTOS_EIO;
  return custos_dir_sync(dir);
}

long custos_file_read(const char* path, uint8_t* out, size_t cap) {
  int fd = open(path, O_RDONLY);
  size_t done = 0;
  if (fd < 0) return errno == ENOENT ? CUSTOS_EINVAL : CUSTOS_EIO;
  for (;;) {
    ssize_t r;
    if (done == cap) break;
    r = read(fd, out + done, cap - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      close(fd);
      return CUSTOS_EIO;
    }
    if (r == 0) break;
    done += (size_t)r;
  }
  close(fd);
  return (long)done;
}
