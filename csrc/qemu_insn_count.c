/*
 * QEMU TCG plugin: count guest instructions executed between two marker functions.
 *
 *   qemu-system-arm ... -plugin qemu_insn_count.so,begin=0xADDR,end=0xADDR,out=FILE
 *
 * Every executed instruction adds 1 to a counter (inline TCG add, exact and deterministic: QEMU executes
 * the same guest program the same way every run). When the first instruction of `begin` executes the
 * counter is sampled; at `end` the difference is appended to FILE, one line per window, so each line is the
 * instruction count of one inference. Single vCPU (the Cortex-M55 board has one).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_plugin_api.h"

QEMU_PLUGIN_EXPORT int qemu_plugin_version = QEMU_PLUGIN_VERSION;

static uint64_t executed;
static uint64_t window_start;
static uint64_t begin_addr, end_addr;
static int in_window;
static FILE* out;

static void on_begin(unsigned int vcpu, void* udata) {
  (void)vcpu, (void)udata;
  window_start = executed;
  in_window = 1;
}

static void on_end(unsigned int vcpu, void* udata) {
  (void)vcpu, (void)udata;
  if (!in_window) return;
  fprintf(out, "%" PRIu64 "\n", executed - window_start);
  fflush(out);
  in_window = 0;
}

static void on_tb_trans(qemu_plugin_id_t id, struct qemu_plugin_tb* tb) {
  (void)id;
  size_t n = qemu_plugin_tb_n_insns(tb);
  for (size_t i = 0; i < n; ++i) {
    struct qemu_plugin_insn* insn = qemu_plugin_tb_get_insn(tb, i);
    uint64_t pc = qemu_plugin_insn_vaddr(insn);
    /* Sample before the counter includes this instruction: the window is [begin, end). */
    if (pc == begin_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
    if (pc == end_addr) qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
    qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
  }
}

static void on_plugin_exit(qemu_plugin_id_t id, void* udata) {
  (void)id, (void)udata;
  if (out) fclose(out);
  out = NULL;
}

QEMU_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t* info, int argc, char** argv) {
  (void)info;
  const char* path = NULL;
  for (int i = 0; i < argc; ++i) {
    if (!strncmp(argv[i], "begin=", 6)) begin_addr = strtoull(argv[i] + 6, NULL, 0);
    else if (!strncmp(argv[i], "end=", 4)) end_addr = strtoull(argv[i] + 4, NULL, 0);
    else if (!strncmp(argv[i], "out=", 4)) path = argv[i] + 4;
    else {
      fprintf(stderr, "qemu_insn_count: unknown argument %s (expected begin=, end=, out=)\n", argv[i]);
      return -1;
    }
  }
  if (!begin_addr || !end_addr || !path) {
    fprintf(stderr, "qemu_insn_count: need begin=ADDR,end=ADDR,out=FILE\n");
    return -1;
  }
  /* Thumb function symbols carry bit 0; instruction addresses do not. */
  begin_addr &= ~(uint64_t)1;
  end_addr &= ~(uint64_t)1;
  out = fopen(path, "w");
  if (!out) {
    fprintf(stderr, "qemu_insn_count: cannot write %s\n", path);
    return -1;
  }
  qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb_trans);
  qemu_plugin_register_atexit_cb(id, on_plugin_exit, NULL);
  return 0;
}
