/* Durable small files for the SDK (internal). */
#ifndef CUSTOS_SDK_FILES_H
#define CUSTOS_SDK_FILES_H

#include <stddef.h>
#include <stdint.h>

/* Writes `data` to `path` atomically: a temporary file, fsync, rename,
 * fsync of the directory. CUSTOS_OK or CUSTOS_EIO. */
int custos_file_write_synced(const char* path, const uint8_t* data, size_t len);
/* Reads up to cap bytes; returns the length or CUSTOS_EIO (-4). Missing
 * file: CUSTOS_EINVAL (-1). */
long custos_file_read(const char* path, uint8_t* out, size_t cap);
/* fsync of a directory (after a rename or an unlink in it). */
int custos_dir_sync(const char* dir);
int custos_mkdir_p(const char* dir);

#endif
