/* One entry point for every wrnn kernel, driven by an opcode, an int32 argument list and buffer pointers.
 * The host ctypes wrapper and the QEMU test program both go through it, so the arguments a test passes reach
 * the kernel the same way on both sides. Argument order per opcode is mirrored in wordrec/device/int8_host.py. */
#include "wrnn_call.h"

#include "wrnn.h"

static wrnn_geom geom(const int32_t *a) {
  wrnn_geom g = {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]};
  return g;
}

int wrnn_call(int32_t op, const int32_t *a, void *const *b) {
  switch (op) {
    case WRNN_OP_REQUANTIZE: /* n, channels, out_zp, act_min, act_max | acc, mult, shift, out */
      return wrnn_requantize_s32(b[0], a[0], a[1], b[1], b[2], a[2], a[3], a[4], b[3]);
    case WRNN_OP_CONV1X1: /* pixels, in_c, out_c, in_zp, out_zp, act_min, act_max | in, w, bias, mult, shift, out */
    case WRNN_OP_FC: {    /* m, k, n, ... same */
      const wrnn_quant q = {a[3], a[4], a[5], a[6]};
      if (op == WRNN_OP_FC) return wrnn_fc_s8(b[0], a[0], a[1], b[1], a[2], b[2], b[3], b[4], &q, b[5]);
      return wrnn_conv1x1_s8(b[0], a[0], a[1], b[1], a[2], b[2], b[3], b[4], &q, b[5]);
    }
    case WRNN_OP_CONV:   /* geom[12], in_zp, out_zp, act_min, act_max | in, w, bias, mult, shift, scratch, out */
    case WRNN_OP_DWCONV: {
      const wrnn_geom g = geom(a);
      const wrnn_quant q = {a[12], a[13], a[14], a[15]};
      if (op == WRNN_OP_CONV) return wrnn_conv_s8(b[0], b[1], b[2], b[3], b[4], &g, &q, b[5], b[6]);
      return wrnn_dwconv_s8(b[0], b[1], b[2], b[3], b[4], &g, &q, b[5], b[6]);
    }
    case WRNN_OP_AVGPOOL: { /* geom[12], act_min, act_max | in, out */
      const wrnn_geom g = geom(a);
      return wrnn_avgpool_s8(b[0], &g, a[12], a[13], b[1]);
    }
    case WRNN_OP_LUT: /* n | in, table, out */
      return wrnn_lut_s8(b[0], a[0], b[1], b[2]);
    case WRNN_OP_MUL: /* pixels, c, x_zp, s_zp, mult, shift, out_zp, act_min, act_max | x, s, out */
      return wrnn_mul_s8(b[0], a[0], a[1], b[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], b[2]);
    case WRNN_OP_ADD: { /* n, left_shift, a_zp, a_mult, a_shift, b_zp, b_mult, b_shift, out_zp, out_mult,
                           out_shift, act_min, act_max | a, b, out */
      const wrnn_add_params p = {a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11], a[12]};
      return wrnn_add_s8(b[0], b[1], a[0], &p, b[2]);
    }
    case WRNN_OP_CONV_SCRATCH: { /* geom[12] -> bytes (or error) */
      const wrnn_geom g = geom(a);
      return wrnn_conv_s8_scratch_bytes(&g);
    }
    case WRNN_OP_DWCONV_SCRATCH: {
      const wrnn_geom g = geom(a);
      return wrnn_dwconv_s8_scratch_bytes(&g);
    }
    case WRNN_OP_MATMUL: /* m, k, n, a_zp, b_zp, mult, shift, out_zp, act_min, act_max | a, b, scratch, out */
      return wrnn_matmul_s8s8(b[0], b[1], a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], b[2], b[3]);
    case WRNN_OP_MATMUL_SCRATCH: /* m, n -> bytes */
      return wrnn_matmul_s8s8_scratch_bytes(a[0], a[1]);
    case WRNN_OP_CONV1X1_GELU: /* pixels, in_c, out_c, in_zp | in, w, scale, bias, gelu table, scratch, out */
      return wrnn_conv1x1_s8_gelu_s8(b[0], a[0], a[1], b[1], a[2], a[3], b[2], b[3], b[4], b[5], b[6]);
    case WRNN_OP_CONV1X1_F32_THEN_GELU: { /* the same | ..., scratch, float tmp [pixels][out_c], out: the two-call
                                             sequence the fused kernel replaces, for comparison on either side */
      const int rc = wrnn_conv1x1_s8_f32(b[0], a[0], a[1], b[1], a[2], a[3], b[2], b[3], b[5], b[6]);
      return rc ? rc : wrnn_gelu_s8(b[6], a[0] * a[2], b[4], b[7]);
    }
    case WRNN_OP_GELU: /* n | x (float), gelu table, out */
      return wrnn_gelu_s8(b[0], a[0], b[1], b[2]);
    case WRNN_OP_MATMUL_F32: /* batch, m, k, n, a_zp, b_zp | a, b, scale (one float), scratch, out (float) */
      return b[2] ? wrnn_matmul_s8s8_f32(b[0], b[1], a[0], a[1], a[2], a[3], a[4], a[5], *(const float *)b[2], b[3],
                                         b[4])
                  : WRNN_ENULL;
    case WRNN_OP_MATMUL_F32_SCRATCH: /* m, n -> bytes */
      return wrnn_matmul_s8s8_f32_scratch_bytes(a[0], a[1]);
    case WRNN_OP_QUANTIZE_F32: /* pixels, c, relu | a, b (or NULL), scale, recip, zp (float per channel), out */
      return wrnn_quantize_f32(b[0], b[1], a[2], a[0], a[1], b[2], b[3], b[4], b[5]);
    case WRNN_OP_DWCONV_F32: { /* geom[12] | in, w, in_zp (int32 per channel), scale, bias, out (float) */
      const wrnn_geom g = geom(a);
      return wrnn_dwconv_s8_f32(b[0], b[1], b[2], b[3], b[4], &g, b[5]);
    }
    case WRNN_OP_CONV1X1_Q8: /* pixels, in_c, out_c, in_zp, relu | in, w, scale, bias, q_scale, q_recip, q_zp,
                                scratch, out */
      return wrnn_conv1x1_s8_q8(b[0], a[0], a[1], b[1], a[2], a[3], b[2], b[3], a[4], b[4], b[5], b[6], b[7], b[8]);
    case WRNN_OP_DWCONV_Q8: { /* geom[12], relu | in, w, in_zp, scale, bias, q_scale, q_recip, q_zp, scratch, out */
      const wrnn_geom g = geom(a);
      return wrnn_dwconv_s8_q8(b[0], b[1], b[2], b[3], b[4], &g, a[12], b[5], b[6], b[7], b[8], b[9]);
    }
    case WRNN_OP_CONV1X1_Q8_SCRATCH: /* pixels, out_c -> bytes */
      return wrnn_conv1x1_s8_q8_scratch_bytes(a[0], a[1]);
    case WRNN_OP_DWCONV_Q8_SCRATCH: { /* geom[12] -> bytes */
      const wrnn_geom g = geom(a);
      return wrnn_dwconv_s8_q8_scratch_bytes(&g);
    }
    case WRNN_OP_DWCONV3X3_Q8: { /* as WRNN_OP_DWCONV_Q8 */
      const wrnn_geom g = geom(a);
      return wrnn_dwconv3x3_s8_q8(b[0], b[1], b[2], b[3], b[4], &g, a[12], b[5], b[6], b[7], b[8], b[9]);
    }
    case WRNN_OP_DWCONV3X3_Q8_SCRATCH: { /* geom[12] -> bytes */
      const wrnn_geom g = geom(a);
      return wrnn_dwconv3x3_s8_q8_scratch_bytes(&g);
    }
    case WRNN_OP_MLP: { /* pixels, in_c, hidden_c, in_zp, out_c, hidden zp, out_zp, act_min, act_max | in, w1,
                           scale1, bias1, gelu table, w2, bias2, mult2, shift2, scratch, out */
      const wrnn_quant q = {a[5], a[6], a[7], a[8]};
      return wrnn_mlp_s8(b[0], a[0], a[1], b[1], a[2], a[3], b[2], b[3], b[4], b[5], a[4], b[6], b[7], b[8], &q,
                         b[9], b[10]);
    }
    case WRNN_OP_MLP_SCRATCH: /* pixels, hidden_c, out_c -> bytes */
      return wrnn_mlp_s8_scratch_bytes(a[0], a[1], a[2]);
    case WRNN_OP_ADD_DQ: /* pixels, c, a_zp, b_zp | a, b, a_scale, b_scale (one float each), q_scale, q_recip, q_zp,
                            out */
      return b[2] && b[3] ? wrnn_add_dq_s8(b[0], b[1], a[0], a[1], a[2], *(const float *)b[2], a[3],
                                           *(const float *)b[3], b[4], b[5], b[6], b[7])
                          : WRNN_ENULL;
    case WRNN_OP_MEAN_F32: { /* geom[12], zp | in, scale (one float), out (float) */
      const wrnn_geom g = geom(a);
      return b[1] ? wrnn_mean_s8_f32(b[0], &g, *(const float *)b[1], a[12], b[2]) : WRNN_ENULL;
    }
    default:
      return WRNN_CALL_EOP;
  }
}
