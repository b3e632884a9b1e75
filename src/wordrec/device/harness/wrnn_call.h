/* Opcode dispatcher over the wrnn kernels (test harness; see wrnn_call.c for the argument order). */
#ifndef WRNN_CALL_H
#define WRNN_CALL_H
#include <stdint.h>

enum {
  WRNN_OP_REQUANTIZE = 0,
  WRNN_OP_CONV1X1 = 1,
  WRNN_OP_FC = 2,
  WRNN_OP_CONV = 3,
  WRNN_OP_DWCONV = 4,
  WRNN_OP_AVGPOOL = 5,
  WRNN_OP_LUT = 6,
  WRNN_OP_MUL = 7,
  WRNN_OP_ADD = 8,
  WRNN_OP_CONV_SCRATCH = 9,
  WRNN_OP_DWCONV_SCRATCH = 10,
  WRNN_OP_MATMUL = 11,
  WRNN_OP_MATMUL_SCRATCH = 12,
  WRNN_OP_CONV1X1_GELU = 13,
  WRNN_OP_CONV1X1_F32_THEN_GELU = 14,
  WRNN_OP_DWCONV_F32 = 15,
  WRNN_OP_GELU = 16,
  WRNN_OP_MATMUL_F32 = 17,
  WRNN_OP_MATMUL_F32_SCRATCH = 18,
  WRNN_OP_QUANTIZE_F32 = 19,
  WRNN_OP_CONV1X1_Q8 = 20,
  WRNN_OP_DWCONV_Q8 = 21,
  WRNN_OP_CONV1X1_Q8_SCRATCH = 22,
  WRNN_OP_DWCONV_Q8_SCRATCH = 23,
  WRNN_OP_MEAN_F32 = 24,
  WRNN_OP_DWCONV3X3_Q8 = 25,
  WRNN_OP_DWCONV3X3_Q8_SCRATCH = 26,
  WRNN_OP_MLP = 27,
  WRNN_OP_MLP_SCRATCH = 28,
  WRNN_OP_ADD_DQ = 29,
};
#define WRNN_CALL_EOP (-100) /* unknown opcode */

int wrnn_call(int32_t op, const int32_t *args, void *const *bufs);
#endif
