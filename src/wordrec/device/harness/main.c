/* QEMU/FVP test program: run wrnn kernel calls read from a semihosted file and write their outputs back.
 *   in  wrnn_calls.bin: u32 magic 'WRNC', u32 n_calls, then per call:
 *       i32 op, u32 n_args, i32 args[n_args], u32 n_bufs, per buffer: u32 bytes, data padded to 4 bytes.
 *   out wrnn_results.bin: per call: i32 rc, u32 bytes, the last buffer (the kernel's output), padded to 4.
 * Each kernel call is bracketed by the marker functions so the TCG plugin counts its instructions alone. */
#include <stdint.h>
#include <stdio.h>

#include "wrnn_call.h"

#define MAGIC 0x434e5257u /* "WRNC" */
#define MAX_ARGS 32
#define MAX_BUFS 12
#ifndef POOL_BYTES
#define POOL_BYTES (3u * 1024u * 1024u)
#endif

static uint8_t pool[POOL_BYTES] __attribute__((aligned(16)));
volatile uint32_t wordrec_marker;
__attribute__((noipa, used)) void wordrec_mark_begin(void) { wordrec_marker = 1; }
__attribute__((noipa, used)) void wordrec_mark_end(void) { wordrec_marker = 2; }

static int read_u32(FILE *f, uint32_t *v) { return fread(v, 4, 1, f) == 1; }

int main(void) {
  FILE *fi = fopen("wrnn_calls.bin", "rb");
  if (!fi) { printf("wrnn: cannot open wrnn_calls.bin\n"); return 2; }
  FILE *fo = fopen("wrnn_results.bin", "wb");
  if (!fo) { printf("wrnn: cannot open wrnn_results.bin\n"); return 2; }
  uint32_t magic, n_calls;
  if (!read_u32(fi, &magic) || magic != MAGIC || !read_u32(fi, &n_calls)) { printf("wrnn: bad header\n"); return 3; }
  for (uint32_t c = 0; c < n_calls; ++c) {
    int32_t op, args[MAX_ARGS];
    uint32_t n_args, n_bufs, sizes[MAX_BUFS];
    void *bufs[MAX_BUFS];
    if (!read_u32(fi, (uint32_t *)&op) || !read_u32(fi, &n_args) || n_args > MAX_ARGS ||
        fread(args, 4, n_args, fi) != n_args || !read_u32(fi, &n_bufs) || n_bufs > MAX_BUFS || n_bufs == 0) {
      printf("wrnn: call %lu: bad arguments\n", (unsigned long)c);
      return 3;
    }
    uint32_t used = 0;
    for (uint32_t i = 0; i < n_bufs; ++i) {
      if (!read_u32(fi, &sizes[i])) return 3;
      const uint32_t padded = (sizes[i] + 3u) & ~3u;
      if (used + padded > POOL_BYTES) {
        printf("wrnn: call %lu: buffers exceed the pool\n", (unsigned long)c);
        return 3;
      }
      /* a zero-byte buffer is passed as NULL (e.g. no bias) */
      bufs[i] = sizes[i] ? pool + used : 0;
      if (padded && fread(pool + used, 1, padded, fi) != padded) { printf("wrnn: short read\n"); return 3; }
      used = (used + padded + 15u) & ~15u;
    }
    wordrec_mark_begin();
    const int32_t rc = wrnn_call(op, args, bufs);
    wordrec_mark_end();
    const uint32_t out_bytes = sizes[n_bufs - 1], padded = (out_bytes + 3u) & ~3u;
    if (fwrite(&rc, 4, 1, fo) != 1 || fwrite(&out_bytes, 4, 1, fo) != 1 ||
        (padded && fwrite(bufs[n_bufs - 1], 1, padded, fo) != padded)) {
      printf("wrnn: write failed\n");
      return 5;
    }
  }
  fclose(fo);
  fclose(fi);
  printf("wrnn: %lu calls ok\n", (unsigned long)n_calls);
  return 0;
}
