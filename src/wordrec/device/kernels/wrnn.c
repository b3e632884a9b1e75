/* wrnn kernels: see wrnn.h for layouts, the arithmetic and the error codes.
 * The Helium path and the scalar path compute the same integers: accumulation is modulo 2^32 (order-free),
 * and the vector requantization (rq_vec) reproduces wrnn_requant bit for bit (tested on QEMU with edge values). */
#include "wrnn.h"

#include <math.h>
#include <string.h>

#if defined(__ARM_FEATURE_MVE) && !defined(WRNN_SCALAR)
#define WRNN_MVE 1
#include <arm_mve.h>
#endif

/* ---------------------------------------------------------------- scalar arithmetic (normative) */

static inline int32_t sat32(int64_t x) { return x > INT32_MAX ? INT32_MAX : (x < INT32_MIN ? INT32_MIN : (int32_t)x); }

/* floor(a * b / 2^31), with a == b == INT32_MIN -> INT32_MAX: the saturating doubling high multiply without
 * rounding (VQDMULH). An arithmetic shift floors; gcc's >> on negative int64 is arithmetic. */
static inline int32_t dmulh(int32_t a, int32_t b) {
  if (a == INT32_MIN && b == INT32_MIN) return INT32_MAX;
  return (int32_t)(((int64_t)a * b) >> 31);
}

/* One rounding of acc * mult * 2^(shift - 31), half up: r = max(1, -shift), l = shift + r >= 0,
 * floor(sat(acc * 2^l) * mult / 2^31) then a rounding right shift by r (floor(floor(z) / 2^r + 1/2) =
 * floor(z / 2^r + 1/2), so the truncating high multiply does not add a second rounding). */
int32_t wrnn_scale(int32_t acc, int32_t mult, int32_t shift) {
  const int32_t r = shift < 0 ? -shift : 1;
  const int32_t l = shift + r;
  const int32_t a = l ? sat32((int64_t)acc * ((int64_t)1 << l)) : acc;
  return (int32_t)(((int64_t)dmulh(a, mult) + ((int64_t)1 << (r - 1))) >> r);
}

int32_t wrnn_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max) {
  int64_t v = (int64_t)wrnn_scale(acc, mult, shift) + out_zp;
  return (int32_t)(v < act_min ? act_min : (v > act_max ? act_max : v));
}

/* Wrapping int32 arithmetic without signed-overflow UB. */
static inline int32_t wadd(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t wmul(int32_t a, int32_t b) { return (int32_t)((uint32_t)a * (uint32_t)b); }

/* ---------------------------------------------------------------- argument checks */

static int check_zp(int32_t zp) { return zp >= -128 && zp <= 127; }
static int check_clamp(int32_t lo, int32_t hi) { return lo >= -128 && lo <= hi && hi <= 127; }
static int check_shifts(const int32_t *shift, int32_t n) {
  for (int32_t i = 0; i < n; ++i)
    if (shift[i] < -31 || shift[i] > 31) return 0;
  return 1;
}
static int check_quant(const wrnn_quant *q) {
  return check_zp(q->in_zp) && check_zp(q->out_zp) && check_clamp(q->act_min, q->act_max);
}

/* Per-channel float quantizers (wrnn_quantize_f32 and the kernels that quantize as it does): scale > 0, zero point
 * integral in [-128, 127]. */
static int check_q(int32_t c, const float *scale, const float *zp) {
  for (int32_t i = 0; i < c; ++i)
    if (!(scale[i] > 0.0f) || !(zp[i] >= -128.0f && zp[i] <= 127.0f) || zp[i] != (float)(int32_t)zp[i]) return 0;
  return 1;
}

/* Window geometry: positive sizes and every output window overlapping the input. */
static int check_geom(const wrnn_geom *g) {
  if (g->in_h <= 0 || g->in_w <= 0 || g->in_c <= 0 || g->out_h <= 0 || g->out_w <= 0 || g->out_c <= 0 ||
      g->k_h <= 0 || g->k_w <= 0 || g->stride_h <= 0 || g->stride_w <= 0 || g->pad_top < 0 || g->pad_left < 0)
    return 0;
  if (g->pad_top >= g->k_h || g->pad_left >= g->k_w) return 0;
  if ((int64_t)(g->out_h - 1) * g->stride_h - g->pad_top >= g->in_h) return 0;
  if ((int64_t)(g->out_w - 1) * g->stride_w - g->pad_left >= g->in_w) return 0;
  return 1;
}

/* ---------------------------------------------------------------- Helium helpers */
#ifdef WRNN_MVE
/* Vector form of wrnn_requant with per-lane mult/shift: VQDMULH is exactly dmulh, VRSHL by -r (r >= 1) rounds
 * half up without overflow, VQSHL by l = shift + r saturates like sat32. */
static inline int32x4_t rq_scale_vec(int32x4_t acc, int32x4_t mult, int32x4_t shift) {
  const int32x4_t rsh = vminq_s32(shift, vdupq_n_s32(-1)); /* -r */
  return vrshlq_s32(vqdmulhq_s32(vqshlq_s32(acc, vsubq_s32(shift, rsh)), mult), rsh);
}

static inline int32x4_t rq_vec(int32x4_t acc, int32x4_t mult, int32x4_t shift, int32_t out_zp, int32_t act_min,
                               int32_t act_max) {
  int32x4_t x = vqaddq_n_s32(rq_scale_vec(acc, mult, shift), out_zp);
  x = vmaxq_s32(x, vdupq_n_s32(act_min));
  return vminq_s32(x, vdupq_n_s32(act_max));
}

/* Same as rq_vec with one (mult, shift) for all lanes (rsh = r >= 1, lsh = shift + r): the scalar-operand forms
 * of the same instructions. */
static inline int32x4_t rq_uniform(int32x4_t acc, int32_t mult, int32_t lsh, int32_t rsh, int32_t out_zp,
                                   int32x4_t lo, int32x4_t hi) {
  const int32x4_t x = vrshlq_n_s32(vqdmulhq_n_s32(vqshlq_r_s32(acc, lsh), mult), -rsh);
  return vminq_s32(vmaxq_s32(vqaddq_n_s32(x, out_zp), lo), hi);
}

/* Byte fill/copy for the short runs of im2col and row padding: one predicated vector op per 16 bytes instead of
 * a library call. */
static inline void fill_s8(int8_t *dst, int8_t v, int32_t n) {
  const int8x16_t vv = vdupq_n_s8(v);
  for (int32_t i = 0; i < n; i += 16) vstrbq_p_s8(dst + i, vv, vctp8q(n - i));
}

static inline void copy_s8(int8_t *dst, const int8_t *src, int32_t n) {
  for (int32_t i = 0; i < n; i += 16) {
    const mve_pred16_t p = vctp8q(n - i);
    vstrbq_p_s8(dst + i, vldrbq_z_s8(src + i, p), p);
  }
}

/* rq_uniform for act_min = -128, act_max = 127: saturating x * 2^24 then >> 24 is exactly clamp(x, -128, 127). */
static inline int32x4_t rq_full(int32x4_t acc, int32_t mult, int32_t lsh, int32_t rsh, int32_t out_zp) {
  const int32x4_t x = vrshlq_n_s32(vqdmulhq_n_s32(vqshlq_r_s32(acc, lsh), mult), -rsh);
  return vshrq_n_s32(vqshlq_n_s32(vqaddq_n_s32(x, out_zp), 24), 24);
}

static inline int32_t row_sum(const int8_t *w, int32_t k) {
  int32_t s = 0;
  for (int32_t i = 0; i < k; i += 16) s = vaddvaq_p_s8(s, vldrbq_z_s8(w + i, vctp8q(k - i)), vctp8q(k - i));
  return s;
}
#else
static inline void fill_s8(int8_t *dst, int8_t v, int32_t n) { memset(dst, v, (size_t)n); }
static inline void copy_s8(int8_t *dst, const int8_t *src, int32_t n) { memcpy(dst, src, (size_t)n); }

static inline int32_t row_sum(const int8_t *w, int32_t k) {
  int32_t s = 0;
  for (int32_t i = 0; i < k; ++i) s += w[i];
  return s;
}
#endif

/* folded bias: bias - in_zp * sum(w row), wrapping */
static inline int32_t fold(const int32_t *bias, int32_t c, const int8_t *wrow, int32_t k, int32_t in_zp) {
  return wadd(bias ? bias[c] : 0, wmul(-in_zp, row_sum(wrow, k)));
}

/* ---------------------------------------------------------------- GEMM core
 * out[p * out_stride + o] = requant(fb[o] + sum_i a[p * a_stride + i] * w[o * k + i]) for p < m, o < n, where
 * fb is `folded` when given, else computed from bias/in_zp per block of output channels, plus row_add[p] when
 * given (matmul's second zero point). */
#ifdef WRNN_MVE
/* sums[p][j] (+)= dot16(x + p * stride, w_j) for p < n, j < 4: the GEMM's innermost loop in assembly, because
 * VMLADAVA wants even accumulator registers and gcc's allocation costs 4 extra moves per pixel. 11 instructions
 * per 64 MACs. x rows must hold 16 readable bytes; n >= 1. */
static inline void dot4_rows(const int8_t *x, int32_t stride, int32_t n, int8x16_t w0, int8x16_t w1, int8x16_t w2,
                             int8x16_t w3, int32_t *sums, int accumulate) {
  register int32_t r0 __asm__("r0"), r2 __asm__("r2"), r4 __asm__("r4"), r6 __asm__("r6");
  int8x16_t xv;
  if (accumulate) {
    __asm__ volatile(
        "dls lr, %[n]\n"
        "1:\n"
        "vldrb.8 %q[xv], [%[x]]\n"
        "ldrd %[a0], %[a1], [%[s]]\n"
        "ldrd %[a2], %[a3], [%[s], #8]\n"
        "add %[x], %[x], %[stride]\n"
        "vmladava.s8 %[a0], %q[xv], %q[w0]\n"
        "vmladava.s8 %[a1], %q[xv], %q[w1]\n"
        "vmladava.s8 %[a2], %q[xv], %q[w2]\n"
        "vmladava.s8 %[a3], %q[xv], %q[w3]\n"
        "strd %[a0], %[a1], [%[s]], #8\n"
        "strd %[a2], %[a3], [%[s]], #8\n"
        "le lr, 1b\n"
        : [x] "+r"(x), [s] "+r"(sums), [a0] "=&r"(r0), [a1] "=&r"(r2), [a2] "=&r"(r4), [a3] "=&r"(r6),
          [xv] "=&w"(xv)
        : [n] "r"(n), [stride] "r"(stride), [w0] "w"(w0), [w1] "w"(w1), [w2] "w"(w2), [w3] "w"(w3)
        : "lr", "memory");
  } else {
    __asm__ volatile(
        "dls lr, %[n]\n"
        "1:\n"
        "vldrb.8 %q[xv], [%[x]]\n"
        "add %[x], %[x], %[stride]\n"
        "vmladav.s8 %[a0], %q[xv], %q[w0]\n"
        "vmladav.s8 %[a1], %q[xv], %q[w1]\n"
        "vmladav.s8 %[a2], %q[xv], %q[w2]\n"
        "vmladav.s8 %[a3], %q[xv], %q[w3]\n"
        "strd %[a0], %[a1], [%[s]], #8\n"
        "strd %[a2], %[a3], [%[s]], #8\n"
        "le lr, 1b\n"
        : [x] "+r"(x), [s] "+r"(sums), [a0] "=&r"(r0), [a1] "=&r"(r2), [a2] "=&r"(r4), [a3] "=&r"(r6),
          [xv] "=&w"(xv)
        : [n] "r"(n), [stride] "r"(stride), [w0] "w"(w0), [w1] "w"(w1), [w2] "w"(w2), [w3] "w"(w3)
        : "lr", "memory");
  }
}

/* sums[p][j] = sum_i a0[p * a_stride + i] * w_j[i] for p < np, i < k, j < 4: the integer core shared by gemm_s8 and
 * gemm_s8_f32, which differ only in their epilogues. K in slices of 16: the slice's 4 weight vectors stay in
 * registers while the chunk's np pixels stream past (1 activation load + 4 VMLADAVA per pixel, the running sums in
 * the caller's stack array), so no per-pixel pointer resets, and the loop-invariant state is small enough that gcc
 * keeps it in registers. Plain inline, not always_inline: at -O3 gcc inlines it where the loop used to be written
 * out (same instruction counts), while forcing it early changes the scheduling of both callers. */
static inline void dot4_chunk(const int8_t *a0, int32_t a_stride, int32_t np, int32_t k, const int8_t *w0,
                              const int8_t *w1, const int8_t *w2, const int8_t *w3, int32_t *sums) {
  for (int32_t i = 0; i < k; i += 16) {
    const mve_pred16_t kp = vctp8q(k - i);
    const int8x16_t v0 = vldrbq_z_s8(w0 + i, kp), v1 = vldrbq_z_s8(w1 + i, kp);
    const int8x16_t v2 = vldrbq_z_s8(w2 + i, kp), v3 = vldrbq_z_s8(w3 + i, kp);
    const int8_t *ap = a0 + i;
    int32_t *sp = sums;
    if (i == 0) {
      if (k >= 16) {
        dot4_rows(ap, a_stride, np, v0, v1, v2, v3, sp, 0);
      } else {
        for (int32_t p = 0; p < np; ++p, ap += a_stride, sp += 4) {
          const int8x16_t x = vldrbq_z_s8(ap, kp);
          sp[0] = vmladavq_s8(x, v0), sp[1] = vmladavq_s8(x, v1);
          sp[2] = vmladavq_s8(x, v2), sp[3] = vmladavq_s8(x, v3);
        }
      }
    } else if (i + 16 <= k) {
      dot4_rows(ap, a_stride, np, v0, v1, v2, v3, sp, 1);
    } else {
      for (int32_t p = 0; p < np; ++p, ap += a_stride, sp += 4) {
        const int8x16_t x = vldrbq_z_s8(ap, kp);
        sp[0] = vmladavaq_s8(sp[0], x, v0), sp[1] = vmladavaq_s8(sp[1], x, v1);
        sp[2] = vmladavaq_s8(sp[2], x, v2), sp[3] = vmladavaq_s8(sp[3], x, v3);
      }
    }
  }
}
#endif

#define WRNN_GEMM_CHUNK 32 /* pixels per pass over K (128 int32 running sums on the stack) */
static void gemm_s8(const int8_t *a, int32_t a_stride, int32_t m, const int8_t *w, int32_t n, int32_t k,
                    const int32_t *folded, const int32_t *row_add, const int32_t *bias, const int32_t *mult,
                    const int32_t *shift, const wrnn_quant *q, int8_t *out, int32_t out_stride) {
#ifdef WRNN_MVE
  /* Blocks of 4 output channels; within a block, chunks of WRNN_GEMM_CHUNK pixels (see the loop below). The four
   * sums of a pixel are requantized as one vector and stored as 4 contiguous bytes. Channel tails reuse the last
   * weight row and store through a predicate. */
  const int32_t out_zp = q->out_zp, act_min = q->act_min, act_max = q->act_max;
  for (int32_t o = 0; o < n; o += 4) {
    const int32_t live = n - o < 4 ? n - o : 4;
    const int8_t *w0 = w + (int64_t)o * k;
    const int8_t *w1 = w + (int64_t)(live > 1 ? o + 1 : o) * k;
    const int8_t *w2 = w + (int64_t)(live > 2 ? o + 2 : o) * k;
    const int8_t *w3 = w + (int64_t)(live > 3 ? o + 3 : o) * k;
    const mve_pred16_t opred = vctp32q(live);
    int32x4_t fb;
    if (folded) {
      fb = vldrwq_z_s32(folded + o, opred);
    } else {
      fb = vdupq_n_s32(fold(bias, o, w0, k, q->in_zp));
      if (live > 1) fb = vsetq_lane_s32(fold(bias, o + 1, w1, k, q->in_zp), fb, 1);
      if (live > 2) fb = vsetq_lane_s32(fold(bias, o + 2, w2, k, q->in_zp), fb, 2);
      if (live > 3) fb = vsetq_lane_s32(fold(bias, o + 3, w3, k, q->in_zp), fb, 3);
    }
    const int32x4_t mv = vldrwq_z_s32(mult + o, opred);
    const int32x4_t sv = vldrwq_z_s32(shift + o, opred);
    int32_t sums[WRNN_GEMM_CHUNK * 4] __attribute__((aligned(8)));
    for (int32_t p0 = 0; p0 < m; p0 += WRNN_GEMM_CHUNK) {
      const int32_t np = m - p0 < WRNN_GEMM_CHUNK ? m - p0 : WRNN_GEMM_CHUNK;
      dot4_chunk(a + (int64_t)p0 * a_stride, a_stride, np, k, w0, w1, w2, w3, sums);
      int8_t *op = out + (int64_t)p0 * out_stride + o;
      const int32_t *sp = sums;
      /* out_zp/act_min/act_max are locals: read through q, gcc would reload them after every (aliasing) byte store */
      if (row_add) {
        for (int32_t p = 0; p < np; ++p, sp += 4, op += out_stride) {
          const int32x4_t acc = vaddq_n_s32(vaddq_s32(vldrwq_s32(sp), fb), row_add[p0 + p]);
          vstrbq_p_s32(op, rq_vec(acc, mv, sv, out_zp, act_min, act_max), opred);
        }
      } else if (live == 4) {
        for (int32_t p = 0; p < np; ++p, sp += 4, op += out_stride)
          vstrbq_s32(op, rq_vec(vaddq_s32(vldrwq_s32(sp), fb), mv, sv, out_zp, act_min, act_max));
      } else {
        for (int32_t p = 0; p < np; ++p, sp += 4, op += out_stride)
          vstrbq_p_s32(op, rq_vec(vaddq_s32(vldrwq_s32(sp), fb), mv, sv, out_zp, act_min, act_max), opred);
      }
    }
  }
#else
  for (int32_t o = 0; o < n; ++o) {
    const int8_t *wr = w + (int64_t)o * k;
    const int32_t fb = folded ? folded[o] : fold(bias, o, wr, k, q->in_zp);
    for (int32_t p = 0; p < m; ++p) {
      const int8_t *ar = a + (int64_t)p * a_stride;
      int32_t acc = row_add ? wadd(fb, row_add[p]) : fb;
      for (int32_t i = 0; i < k; ++i) acc = wadd(acc, ar[i] * wr[i]);
      out[(int64_t)p * out_stride + o] =
          (int8_t)wrnn_requant(acc, mult[o], shift[o], q->out_zp, q->act_min, q->act_max);
    }
  }
#endif
}

/* ---------------------------------------------------------------- public kernels */

int wrnn_requantize_s32(const int32_t *acc, int32_t n, int32_t channels, const int32_t *mult, const int32_t *shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
  if (!acc || !mult || !shift || !out) return WRNN_ENULL;
  if (n <= 0 || channels <= 0 || n % channels) return WRNN_EDIM;
  if (!check_zp(out_zp) || !check_clamp(act_min, act_max) || !check_shifts(shift, channels)) return WRNN_EQUANT;
  for (int32_t base = 0; base < n; base += channels) {
#ifdef WRNN_MVE
    for (int32_t c = 0; c < channels; c += 4) {
      const mve_pred16_t p = vctp32q(channels - c);
      const int32x4_t r = rq_vec(vldrwq_z_s32(acc + base + c, p), vldrwq_z_s32(mult + c, p),
                                 vldrwq_z_s32(shift + c, p), out_zp, act_min, act_max);
      vstrbq_p_s32(out + base + c, r, p);
    }
#else
    for (int32_t c = 0; c < channels; ++c)
      out[base + c] = (int8_t)wrnn_requant(acc[base + c], mult[c], shift[c], out_zp, act_min, act_max);
#endif
  }
  return WRNN_OK;
}

static int check_gemm(const int8_t *in, const int8_t *w, const int32_t *mult, const int32_t *shift,
                      const wrnn_quant *q, const int8_t *out, int32_t m, int32_t k, int32_t n) {
  if (!in || !w || !mult || !shift || !q || !out) return WRNN_ENULL;
  if (m <= 0 || k <= 0 || n <= 0) return WRNN_EDIM;
  if (!check_quant(q) || !check_shifts(shift, n)) return WRNN_EQUANT;
  return WRNN_OK;
}

int wrnn_conv1x1_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c,
                    const int32_t *bias, const int32_t *mult, const int32_t *shift, const wrnn_quant *q, int8_t *out) {
  const int rc = check_gemm(in, w, mult, shift, q, out, pixels, in_c, out_c);
  if (rc) return rc;
  gemm_s8(in, in_c, pixels, w, out_c, in_c, 0, 0, bias, mult, shift, q, out, out_c);
  return WRNN_OK;
}

int wrnn_fc_s8(const int8_t *in, int32_t m, int32_t k, const int8_t *w, int32_t n, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, const wrnn_quant *q, int8_t *out) {
  const int rc = check_gemm(in, w, mult, shift, q, out, m, k, n);
  if (rc) return rc;
  gemm_s8(in, k, m, w, n, k, 0, 0, bias, mult, shift, q, out, n);
  return WRNN_OK;
}

/* Activation x activation: sum (a - az)(b - bz) = sum ab - az sum_k b[j] - bz sum_k a[i] + k az bz, i.e. a column
 * term (B's rows, like a conv's folded bias, with the constant) and a row term (A's rows), both wrapping. */
static void zp_terms(const int8_t *a, const int8_t *b, int32_t m, int32_t k, int32_t n, int32_t a_zp, int32_t b_zp,
                     int32_t *folded, int32_t *row_add) {
  const int32_t konst = wmul(wmul(k, a_zp), b_zp);
  for (int32_t j = 0; j < n; ++j) folded[j] = wadd(konst, wmul(-a_zp, row_sum(b + (int64_t)j * k, k)));
  for (int32_t i = 0; i < m; ++i) row_add[i] = wmul(-b_zp, row_sum(a + (int64_t)i * k, k));
}

int32_t wrnn_matmul_s8s8_scratch_bytes(int32_t m, int32_t n) {
  if (m <= 0 || n <= 0 || (int64_t)m + 3 * (int64_t)n > INT32_MAX / 4) return WRNN_EDIM;
  return 4 * (m + 3 * n);
}

int wrnn_matmul_s8s8(const int8_t *a, const int8_t *b, int32_t m, int32_t k, int32_t n, int32_t a_zp, int32_t b_zp,
                     int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max, void *scratch,
                     int8_t *out) {
  if (!a || !b || !scratch || !out) return WRNN_ENULL;
  if (m <= 0 || k <= 0 || n <= 0 || wrnn_matmul_s8s8_scratch_bytes(m, n) < 0) return WRNN_EDIM;
  if (!check_zp(a_zp) || !check_zp(b_zp) || !check_zp(out_zp) || !check_clamp(act_min, act_max) ||
      !check_shifts(&shift, 1))
    return WRNN_EQUANT;
  int32_t *folded = (int32_t *)scratch, *row_add = folded + n, *mults = row_add + m, *shifts = mults + n;
  zp_terms(a, b, m, k, n, a_zp, b_zp, folded, row_add);
  for (int32_t j = 0; j < n; ++j) {
    mults[j] = mult;
    shifts[j] = shift;
  }
  const wrnn_quant q = {a_zp, out_zp, act_min, act_max};
  gemm_s8(a, k, m, b, n, k, folded, row_add, 0, mults, shifts, &q, out, n);
  return WRNN_OK;
}

/* im2col pixels per GEMM call (wrnn.h): more where a column is short, to spread the per-call set-up */
static int32_t conv_cols(int32_t k) { return k <= 128 ? 32 : (k <= 512 ? 16 : 8); }

int32_t wrnn_conv_s8_scratch_bytes(const wrnn_geom *g) {
  if (!g || !check_geom(g)) return WRNN_EDIM;
  const int64_t k = (int64_t)g->k_h * g->k_w * g->in_c;
  if (k > (1 << 24)) return WRNN_EDIM;
  const int64_t bytes = 4 * (int64_t)g->out_c + ((conv_cols((int32_t)k) * k + 3) & ~3);
  return bytes > INT32_MAX ? WRNN_EDIM : (int32_t)bytes;
}

/* Copy the receptive field of output pixel (oy, ox) into col[k_h * k_w * in_c]; outside positions get in_zp. */
static void im2col_pixel(const int8_t *in, const wrnn_geom *g, int32_t oy, int32_t ox, int8_t pad, int8_t *col) {
  const int32_t c = g->in_c, row = g->k_w * c;
  const int32_t y0 = oy * g->stride_h - g->pad_top, x0 = ox * g->stride_w - g->pad_left;
  for (int32_t ky = 0; ky < g->k_h; ++ky, col += row) {
    const int32_t y = y0 + ky;
    if (y < 0 || y >= g->in_h) {
      fill_s8(col, pad, row);
      continue;
    }
    /* the in-bounds x range of this row is one contiguous run of NHWC bytes */
    const int32_t kx_lo = x0 < 0 ? -x0 : 0;
    const int32_t kx_hi = x0 + g->k_w > g->in_w ? g->in_w - x0 : g->k_w;
    if (kx_lo > 0) fill_s8(col, pad, kx_lo * c);
    copy_s8(col + kx_lo * c, in + ((int64_t)y * g->in_w + x0 + kx_lo) * c, (kx_hi - kx_lo) * c);
    if (kx_hi < g->k_w) fill_s8(col + kx_hi * c, pad, (g->k_w - kx_hi) * c);
  }
}

int wrnn_conv_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                 const wrnn_geom *g, const wrnn_quant *q, void *scratch, int8_t *out) {
  if (!in || !w || !mult || !shift || !g || !q || !scratch || !out) return WRNN_ENULL;
  if (!check_geom(g) || wrnn_conv_s8_scratch_bytes(g) < 0) return WRNN_EDIM;
  if (!check_quant(q) || !check_shifts(shift, g->out_c)) return WRNN_EQUANT;
  const int32_t k = g->k_h * g->k_w * g->in_c;
  int32_t *folded = (int32_t *)scratch;
  int8_t *cols = (int8_t *)(folded + g->out_c);
  for (int32_t o = 0; o < g->out_c; ++o) folded[o] = fold(bias, o, w + (int64_t)o * k, k, q->in_zp);
  const int32_t total = g->out_h * g->out_w, ncols = conv_cols(k);
  for (int32_t p0 = 0; p0 < total; p0 += ncols) {
    const int32_t np = total - p0 < ncols ? total - p0 : ncols;
    for (int32_t j = 0; j < np; ++j)
      im2col_pixel(in, g, (p0 + j) / g->out_w, (p0 + j) % g->out_w, (int8_t)q->in_zp, cols + j * k);
    gemm_s8(cols, k, np, w, g->out_c, k, folded, 0, bias, mult, shift, q, out + (int64_t)p0 * g->out_c, g->out_c);
  }
  return WRNN_OK;
}

/* ---------------------------------------------------------------- float-output GEMM (QDQ graphs whose conv
 * output stays float: DQ -> conv -> GELU / residual add in float)
 * out[p * out_stride + o] = (float)(fb[o] + sum_i a[p * a_stride + i] * w[o * k + i]) * scale[o] + bias[o], fb the
 * folded zero point (-in_zp * sum(w row), wrapping). The same integer core as gemm_s8; the epilogue is one
 * int->float conversion (round to nearest), one multiply and one add, each IEEE single rounded, in that order on
 * both paths (no fused multiply-add: build with -ffp-contract=off), so Helium and scalar give the same bits. */
static void gemm_s8_f32(const int8_t *a, int32_t a_stride, int32_t m, const int8_t *w, int32_t n, int32_t k,
                        const int32_t *folded, const int32_t *row_add, const float *scale, const float *bias,
                        float *out, int32_t out_stride) {
#ifdef WRNN_MVE
  for (int32_t o = 0; o < n; o += 4) {
    const int32_t live = n - o < 4 ? n - o : 4;
    const int8_t *w0 = w + (int64_t)o * k;
    const int8_t *w1 = w + (int64_t)(live > 1 ? o + 1 : o) * k;
    const int8_t *w2 = w + (int64_t)(live > 2 ? o + 2 : o) * k;
    const int8_t *w3 = w + (int64_t)(live > 3 ? o + 3 : o) * k;
    const mve_pred16_t opred = vctp32q(live);
    const int32x4_t fb = vldrwq_z_s32(folded + o, opred);
    const float32x4_t sc = vldrwq_z_f32(scale + o, opred);
    const float32x4_t bs = bias ? vldrwq_z_f32(bias + o, opred) : vdupq_n_f32(0.0f);
    int32_t sums[WRNN_GEMM_CHUNK * 4] __attribute__((aligned(8)));
    for (int32_t p0 = 0; p0 < m; p0 += WRNN_GEMM_CHUNK) {
      const int32_t np = m - p0 < WRNN_GEMM_CHUNK ? m - p0 : WRNN_GEMM_CHUNK;
      dot4_chunk(a + (int64_t)p0 * a_stride, a_stride, np, k, w0, w1, w2, w3, sums);
      float *op = out + (int64_t)p0 * out_stride + o;
      const int32_t *sp = sums;
      if (row_add) { /* a per-pixel term too (activation x activation: -b_zp * sum of the A row) */
        for (int32_t p = 0; p < np; ++p, sp += 4, op += out_stride) {
          const int32x4_t acc = vaddq_n_s32(vaddq_s32(vldrwq_s32(sp), fb), row_add[p0 + p]);
          vstrwq_p_f32(op, vaddq_f32(vmulq_f32(vcvtq_f32_s32(acc), sc), bs), opred);
        }
      } else {
        for (int32_t p = 0; p < np; ++p, sp += 4, op += out_stride) {
          const float32x4_t f = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vaddq_s32(vldrwq_s32(sp), fb)), sc), bs);
          vstrwq_p_f32(op, f, opred);
        }
      }
    }
  }
#else
  for (int32_t o = 0; o < n; ++o) {
    const int8_t *wr = w + (int64_t)o * k;
    for (int32_t p = 0; p < m; ++p) {
      const int8_t *ar = a + (int64_t)p * a_stride;
      int32_t acc = row_add ? wadd(folded[o], row_add[p]) : folded[o];
      for (int32_t i = 0; i < k; ++i) acc = wadd(acc, ar[i] * wr[i]);
      volatile float prod = (float)acc * scale[o]; /* two roundings, as the vector path */
      out[(int64_t)p * out_stride + o] = prod + (bias ? bias[o] : 0.0f);
    }
  }
#endif
}

int32_t wrnn_conv1x1_s8_f32_scratch_bytes(int32_t out_c) { return out_c > 0 ? 4 * out_c : WRNN_EDIM; }

int wrnn_conv1x1_s8_f32(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c, int32_t in_zp,
                        const float *scale, const float *bias, void *scratch, float *out) {
  if (!in || !w || !scale || !scratch || !out) return WRNN_ENULL;
  if (pixels <= 0 || in_c <= 0 || out_c <= 0) return WRNN_EDIM;
  if (!check_zp(in_zp)) return WRNN_EQUANT;
  int32_t *folded = (int32_t *)scratch;
  for (int32_t o = 0; o < out_c; ++o) folded[o] = fold(0, o, w + (int64_t)o * in_c, in_c, in_zp);
  gemm_s8_f32(in, in_c, pixels, w, out_c, in_c, folded, NULL, scale, bias, out, out_c);
  return WRNN_OK;
}

int wrnn_conv_s8_f32(const int8_t *in, const int8_t *w, int32_t in_zp, const float *scale, const float *bias,
                     const wrnn_geom *g, void *scratch, float *out) {
  if (!in || !w || !scale || !g || !scratch || !out) return WRNN_ENULL;
  if (!check_geom(g) || wrnn_conv_s8_scratch_bytes(g) < 0) return WRNN_EDIM;
  if (!check_zp(in_zp)) return WRNN_EQUANT;
  const int32_t k = g->k_h * g->k_w * g->in_c;
  int32_t *folded = (int32_t *)scratch;
  int8_t *cols = (int8_t *)(folded + g->out_c);
  for (int32_t o = 0; o < g->out_c; ++o) folded[o] = fold(0, o, w + (int64_t)o * k, k, in_zp);
  const int32_t total = g->out_h * g->out_w, ncols = conv_cols(k);
  for (int32_t p0 = 0; p0 < total; p0 += ncols) {
    const int32_t np = total - p0 < ncols ? total - p0 : ncols;
    for (int32_t j = 0; j < np; ++j)
      im2col_pixel(in, g, (p0 + j) / g->out_w, (p0 + j) % g->out_w, (int8_t)in_zp, cols + j * k);
    gemm_s8_f32(cols, k, np, w, g->out_c, k, folded, NULL, scale, bias, out + (int64_t)p0 * g->out_c, g->out_c);
  }
  return WRNN_OK;
}

int32_t wrnn_matmul_s8s8_f32_scratch_bytes(int32_t m, int32_t n) {
  if (m <= 0 || n <= 0 || (int64_t)m + 2 * (int64_t)n > INT32_MAX / 4) return WRNN_EDIM;
  return 4 * (m + 2 * n);
}

int wrnn_matmul_s8s8_f32(const int8_t *a, const int8_t *b, int32_t batch, int32_t m, int32_t k, int32_t n,
                         int32_t a_zp, int32_t b_zp, float scale, void *scratch, float *out) {
  if (!a || !b || !scratch || !out) return WRNN_ENULL;
  if (batch <= 0 || m <= 0 || k <= 0 || n <= 0 || wrnn_matmul_s8s8_f32_scratch_bytes(m, n) < 0) return WRNN_EDIM;
  if (!check_zp(a_zp) || !check_zp(b_zp)) return WRNN_EQUANT;
  int32_t *folded = (int32_t *)scratch, *row_add = folded + n;
  float *scales = (float *)(row_add + m); /* the GEMM epilogue takes a scale per column */
  for (int32_t j = 0; j < n; ++j) scales[j] = scale;
  for (int32_t h = 0; h < batch; ++h, a += (int64_t)m * k, b += (int64_t)n * k, out += (int64_t)m * n) {
    zp_terms(a, b, m, k, n, a_zp, b_zp, folded, row_add);
    gemm_s8_f32(a, k, m, b, n, k, folded, row_add, scales, NULL, out, n);
  }
  return WRNN_OK;
}

/* Depthwise with per-channel input zero points and a float output (NNCF quantizes a depthwise conv's input per
 * channel). acc[c] = sum over the taps inside the input of (x - in_zp[c]) * w[c]: a padded tap would add
 * (in_zp[c] - in_zp[c]) * w = 0, so it is skipped; then the float epilogue of gemm_s8_f32.
 *
 * Helium: MVE has no integer vector x vector multiply-accumulate (VMULL + VADD is 4 instructions per 8 MACs), but
 * it has VFMA.F32: one instruction per 4 MACs. Float accumulation is exact here: every partial sum is an integer
 * below 2^24 in magnitude (|x * w| <= 2^14, |zp * sum w| <= 2^14 * taps, taps <= WRNN_DWF_MAXT), so each VFMA
 * rounds nothing and the accumulator equals (float)acc -- the scalar epilogue then gives the same bits. The zero
 * point leaves the inner loop: sum (x - zp) w = sum x w - zp * sum w over the same taps; rows outside the input are
 * skipped, so the correction is per output row and channel block, and pixels whose window leaves the input at the
 * left/right take a per-pixel path that subtracts zp per tap. Interior pixels go 4 at a time (4 float accumulators
 * per 4 channels); at stride 1 the 4 pixels' windows overlap, so each input vector is loaded and converted once per
 * kernel row and feeds up to 4 VFMAs (the four live inputs rotate through registers). */
#define WRNN_DWF_MAXT 64 /* taps of the float path: 64 float32x4 weights on the stack (1 KB); exact up to 514 */
#define WRNN_DWF_ROWCOLS 128 /* columns of the converted single-row copy (2 KB of stack); wider: per-pixel borders */

#ifdef WRNN_MVE
/* FMAs of one 3-tap kernel row for 4 pixels at stride 1: input j (0..5) feeds pixel p with tap j - p. J0 / J5
 * are skipped (J0_SKIP, J5_SKIP) when that input column lies outside the image: it feeds only pixel 0's tap 0 /
 * pixel 3's tap 2, which a padded tap leaves out -- the left / right border pixel then needs only its own
 * zero-point correction. With J0_SKIP, x points at input j = 1. */
#define WRNN_DWF_J0 "vldrb.s32 q0, [%[x]]\n add %[p], %[x], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q1\n"
#define WRNN_DWF_J0_SKIP "mov %[p], %[x]\n"
#define WRNN_DWF_J1_4                                                                                           \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q2\n vfma.f32 q5, q0, q1\n"  \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q3\n vfma.f32 q5, q0, q2\n"  \
  "vfma.f32 q6, q0, q1\n"                                                                                     \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q5, q0, q3\n vfma.f32 q6, q0, q2\n"  \
  "vfma.f32 q7, q0, q1\n"                                                                                     \
  "vldrb.s32 q0, [%[p]]\n vcvt.f32.s32 q0, q0\n vfma.f32 q6, q0, q3\n vfma.f32 q7, q0, q2\n"
#define WRNN_DWF_J5 "add %[p], %[c]\n vldrb.s32 q0, [%[p]]\n vcvt.f32.s32 q0, q0\n vfma.f32 q7, q0, q3\n"
#define WRNN_DWF_J5_SKIP ""
/* the same at stride 2: input j (0..8) feeds pixel p with tap j - 2p */
#define WRNN_DWF_ROW_S2                                                                                         \
  "vldrb.s32 q0, [%[x]]\n add %[p], %[x], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q1\n"                  \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q2\n"                        \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q4, q0, q3\n vfma.f32 q5, q0, q1\n"  \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q5, q0, q2\n"                        \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q5, q0, q3\n vfma.f32 q6, q0, q1\n"  \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q6, q0, q2\n"                        \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q6, q0, q3\n vfma.f32 q7, q0, q1\n"  \
  "vldrb.s32 q0, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q0, q0\n vfma.f32 q7, q0, q2\n"                        \
  "vldrb.s32 q0, [%[p]]\n vcvt.f32.s32 q0, q0\n vfma.f32 q7, q0, q3\n"
/* nt tiles of 4 pixels x 4 channels (no channel tail) of a 3-wide kernel, each step XSTEP (log2 of stride * 4)
 * pixels on: x is pixel 0's first tap in kernel row ky_lo, wf that row's 3 weight vectors (then the next rows'),
 * cv = {per pixel -zp * sum of its in-image weights, scale, bias}. Assembly because the tile needs all 8 Q
 * registers (4 sums, 3 weights, the input): written in C, gcc kept the epilogue's constants in registers too and
 * spilled the sums in the tap loop. The sums start at the zero-point correction (an exact integer like every
 * partial sum), so the epilogue is the scalar one: acc * scale, then + bias, stored. */
#define WRNN_DWF_TILES(ROW, XSTEP)                                                                              \
  __asm__ volatile("1:\n vldrw.u32 q4, [%[cv]]\n vldrw.u32 q5, [%[cv], #16]\n vldrw.u32 q6, [%[cv], #32]\n"     \
                   "vldrw.u32 q7, [%[cv], #48]\n mov %[w], %[wf]\n mov %[x], %[xt]\n dls lr, %[nky]\n"          \
                   "2:\n vldrw.u32 q1, [%[w]], #16\n vldrw.u32 q2, [%[w]], #16\n vldrw.u32 q3, [%[w]], #16\n"  \
                   ROW "add %[x], %[row]\n le lr, 2b\n"                                                       \
                   "vldrw.u32 q0, [%[cv], #64]\n vldrw.u32 q1, [%[cv], #80]\n"                                 \
                   "vmul.f32 q4, q4, q0\n vadd.f32 q4, q4, q1\n vstrw.32 q4, [%[o]]\n add %[o], %[o], %[c], lsl #2\n" \
                   "vmul.f32 q5, q5, q0\n vadd.f32 q5, q5, q1\n vstrw.32 q5, [%[o]]\n add %[o], %[o], %[c], lsl #2\n" \
                   "vmul.f32 q6, q6, q0\n vadd.f32 q6, q6, q1\n vstrw.32 q6, [%[o]]\n add %[o], %[o], %[c], lsl #2\n" \
                   "vmul.f32 q7, q7, q0\n vadd.f32 q7, q7, q1\n vstrw.32 q7, [%[o]]\n add %[o], %[o], %[c], lsl #2\n" \
                   "add %[xt], %[xt], %[c], lsl #" XSTEP "\n subs %[nt], #1\n bne 1b\n"                      \
                   : [xt] "+r"(xt), [o] "+r"(o), [nt] "+r"(nt), [x] "=&l"(x), [p] "=&l"(p), [w] "=&r"(w)   \
                   : [wf] "r"(wf), [nky] "r"(nky), [row] "r"(row), [c] "r"(c), [cv] "r"(cv)                 \
                   : "lr", "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", \
                     "d11", "d12", "d13", "d14", "d15")

/* One kernel row of any width kw for 4 pixels at stride 1, weights streamed: tap kx feeds pixel p from input
 * kx + p, so three inputs carry over to the next tap and one is loaded (8 instructions per 16 MACs). The three
 * carried inputs rotate through q0..q2 (a 3-step cycle), the weight is q3; the sums are the caller's. */
#define WRNN_DWF_STEP(A, B, C)                                                                                  \
  "vldrw.u32 q3, [%[w]], #16\n vfma.f32 %q[a0], " A ", q3\n vldrb.s32 " A ", [%[p]]\n add %[p], %[c]\n"          \
  "vcvt.f32.s32 " A ", " A "\n vfma.f32 %q[a1], " B ", q3\n vfma.f32 %q[a2], " C ", q3\n"                        \
  "vfma.f32 %q[a3], " A ", q3\n"

/* The tap loop of a row for 4 pixels: groups of 3 taps (the carried inputs back in q0..q2 after each), then rem
 * (0..2) more; STEP is one tap (WRNN_DWF_STEP on int8 input, WRNN_DWF_FSTEP on a converted float row). */
#define WRNN_DWF_TAPS(STEP)                                                                                     \
  "wls lr, %[groups], 3f\n"                                                                                    \
  "2:\n" STEP("q0", "q1", "q2") STEP("q1", "q2", "q0") STEP("q2", "q0", "q1") "le lr, 2b\n"                     \
  "3:\n cmp %[rem], #0\n beq 4f\n" STEP("q0", "q1", "q2") "cmp %[rem], #1\n beq 4f\n" STEP("q1", "q2", "q0")   \
  "4:\n"

static inline __attribute__((always_inline)) void dwf_row_s1(const int8_t *x, const float32x4_t *w, int32_t c,
                                                             int32_t groups, int32_t rem, float32x4_t *a0,
                                                             float32x4_t *a1, float32x4_t *a2, float32x4_t *a3) {
  const int8_t *p;
  __asm__ volatile("vldrb.s32 q0, [%[x]]\n add %[p], %[x], %[c]\n vcvt.f32.s32 q0, q0\n"
                   "vldrb.s32 q1, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q1, q1\n"
                   "vldrb.s32 q2, [%[p]]\n add %[p], %[c]\n vcvt.f32.s32 q2, q2\n"
                   WRNN_DWF_TAPS(WRNN_DWF_STEP)
                   : [p] "=&l"(p), [w] "+r"(w), [a0] "+w"(*a0), [a1] "+w"(*a1), [a2] "+w"(*a2), [a3] "+w"(*a3)
                   : [x] "l"(x), [c] "r"(c), [groups] "r"(groups), [rem] "r"(rem)
                   : "lr", "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7");
}

/* dwf_row_s1 on a row already converted to float, 4 channels per column (16 bytes): a post-incremented load
 * replaces the byte load, pointer add and conversion (6 instructions per 16 MACs). */
#define WRNN_DWF_FSTEP(A, B, C)                                                                                 \
  "vldrw.u32 q3, [%[w]], #16\n vfma.f32 %q[a0], " A ", q3\n vldrw.u32 " A ", [%[p]], #16\n"                     \
  "vfma.f32 %q[a1], " B ", q3\n vfma.f32 %q[a2], " C ", q3\n vfma.f32 %q[a3], " A ", q3\n"

static inline __attribute__((always_inline)) void dwf_frow(const float *x, const float32x4_t *w, int32_t groups,
                                                           int32_t rem, float32x4_t *a0, float32x4_t *a1,
                                                           float32x4_t *a2, float32x4_t *a3) {
  __asm__ volatile("vldrw.u32 q0, [%[p]], #16\n vldrw.u32 q1, [%[p]], #16\n vldrw.u32 q2, [%[p]], #16\n"
                   WRNN_DWF_TAPS(WRNN_DWF_FSTEP)
                   : [p] "+r"(x), [w] "+r"(w), [a0] "+w"(*a0), [a1] "+w"(*a1), [a2] "+w"(*a2), [a3] "+w"(*a3)
                   : [groups] "r"(groups), [rem] "r"(rem)
                   : "lr", "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7");
}

/* Columns of a converted row: `left` zero-point columns, `n` converted from the input row, `right` zero-point ones
 * (wrnn_dwconv3x3_s8_q8's ring rows, and the single-row path of wrnn_dwconv_s8_f32). */
typedef struct {
  int32_t left, n, right;
} dwq_cols;
static inline __attribute__((always_inline)) void dwq_convert(const int8_t *in, const wrnn_geom *g,
                                                              const dwq_cols *k, int32_t c0, int32_t iy,
                                                              float32x4_t zpf, float *d);

enum { DWF_FULL, DWF_LEFT, DWF_RIGHT, DWF_S2 };

static void dwf_tiles3(const int8_t *xt, const float32x4_t *wf, int32_t nky, int32_t row, int32_t c,
                       const float32x4_t *cv, float *o, int32_t nt, int mode) {
  const int8_t *x, *p;
  const float32x4_t *w;
  switch (mode) {
    case DWF_FULL: WRNN_DWF_TILES(WRNN_DWF_J0 WRNN_DWF_J1_4 WRNN_DWF_J5, "2"); break;
    case DWF_LEFT: WRNN_DWF_TILES(WRNN_DWF_J0_SKIP WRNN_DWF_J1_4 WRNN_DWF_J5, "2"); break;
    case DWF_RIGHT: WRNN_DWF_TILES(WRNN_DWF_J0 WRNN_DWF_J1_4 WRNN_DWF_J5_SKIP, "2"); break;
    default: WRNN_DWF_TILES(WRNN_DWF_ROW_S2, "3"); break;
  }
}

static inline __attribute__((always_inline)) float32x4_t dwf_ld(const int8_t *p, mve_pred16_t pr, int tail) {
  return vcvtq_f32_s32(tail ? vldrbq_z_s32(p, pr) : vldrbq_s32(p));
}

static inline __attribute__((always_inline)) void dwf_st(float *p, float32x4_t v, mve_pred16_t pr, int tail) {
  if (tail)
    vstrwq_p_f32(p, v, pr);
  else
    vst1q_f32(p, v);
}

/* One channel block (4 channels from c0, the last one predicated when tail) over the whole output. kw is a
 * compile-time constant in the common cases so the tap loop unrolls and the rotating inputs stay in registers. */
static inline __attribute__((always_inline)) void dwf_block(const int8_t *in, const wrnn_geom *g, int32_t c0,
                                                            const float32x4_t *wf, float32x4_t zpf, float32x4_t sc,
                                                            float32x4_t bs, float *out, mve_pred16_t pr, int tail,
                                                            const int32_t kw) {
  const int32_t c = g->in_c, row = g->in_w * c, in_w = g->in_w, in_h = g->in_h, kh = g->k_h;
  const int32_t sh = g->stride_h, sw = g->stride_w, out_w = g->out_w, out_h = g->out_h;
  const int32_t pad_top = g->pad_top, pad_left = g->pad_left;
  /* output columns whose whole window lies inside the input */
  const int32_t ox_a = (pad_left + sw - 1) / sw;
  int32_t ox_b = in_w + pad_left - kw < 0 ? 0 : (in_w + pad_left - kw) / sw + 1;
  if (ox_b > out_w) ox_b = out_w;
  const int32_t ox_q = ox_b - ox_a >= 4 ? ox_a + (ox_b - ox_a) / 4 * 4 : ox_a; /* end of the 4-pixel tiles */
  const float32x4_t zero = vdupq_n_f32(0.0f);
  /* the assembly tiles: 3-wide kernels, full channel blocks, at least one tile of interior pixels; at stride 1
   * with one padded column on a side, that side's border pixel joins a tile (J0_SKIP / J5_SKIP) */
  const int asm_row = kw == 3 && !tail && sw <= 2 && ox_b - ox_a >= 4;
  const int left = asm_row && sw == 1 && pad_left == 1 && ox_a == 1;
  const int right = asm_row && sw == 1 && ox_b == out_w - 1 && (out_w - 1) - pad_left + 2 == in_w;
  float32x4_t cv[6]; /* the tiles' per-pixel corrections, scale, bias (one buffer: a small stack frame) */
  cv[4] = sc, cv[5] = bs;
  if (kh == 1 && sw == 1 && !tail && kw >= 4 && pad_left > 0 && out_w >= 4 && out_w + kw - 1 <= WRNN_DWF_ROWCOLS) {
    /* one kernel row wider than 3 with padding (ppocrv6_small's 1x7): the block's input row converted to float
     * once with zero-point columns at the sides, so every pixel takes the streamed-weights tile (a padded tap
     * adds (zp - zp) * w = 0, the correction covering all kw taps) instead of the per-pixel path at the borders */
    float xf[4 * WRNN_DWF_ROWCOLS];
    dwq_cols k;
    k.left = pad_left, k.n = in_w < out_w + kw - 1 - pad_left ? in_w : out_w + kw - 1 - pad_left;
    k.right = out_w + kw - 1 - k.left - k.n;
    float32x4_t wsum = zero;
    for (int32_t t = 0; t < kw; ++t) wsum = vaddq_f32(wsum, wf[t]);
    const float32x4_t corr = vsubq_f32(zero, vmulq_f32(wsum, zpf)); /* 0 - v: see below */
    for (int32_t oy = 0; oy < out_h; ++oy) {
      dwq_convert(in, g, &k, c0, oy * sh, zpf, xf);
      float *orow = out + oy * out_w * c + c0;
      for (int32_t ox = 0; ox < out_w; ox += 4) {
        if (ox > out_w - 4) ox = out_w - 4; /* the last 4 pixels again: the same bits for the ones written */
        float32x4_t a0 = corr, a1 = corr, a2 = corr, a3 = corr;
        dwf_frow(xf + 4 * ox, wf, kw / 3, kw % 3, &a0, &a1, &a2, &a3);
        float *op = orow + ox * c;
        vst1q_f32(op, vaddq_f32(vmulq_f32(a0, sc), bs));
        vst1q_f32(op + c, vaddq_f32(vmulq_f32(a1, sc), bs));
        vst1q_f32(op + 2 * c, vaddq_f32(vmulq_f32(a2, sc), bs));
        vst1q_f32(op + 3 * c, vaddq_f32(vmulq_f32(a3, sc), bs));
      }
    }
    return;
  }
  for (int32_t oy = 0; oy < out_h; ++oy) {
    const int32_t y0 = oy * sh - pad_top;
    const int32_t ky_lo = y0 < 0 ? -y0 : 0, ky_hi = y0 + kh > in_h ? in_h - y0 : kh;
    const int32_t nky = ky_hi - ky_lo;
    float32x4_t wsum = zero;
    for (int32_t t = ky_lo * kw; t < ky_hi * kw; ++t) wsum = vaddq_f32(wsum, wf[t]);
    /* -zp * sum w: exact, |.| <= 2^14 * taps. 0 - v, not -v: a zero sum must be +0.0, as (float)0 is, so that
     * (acc * scale) + bias keeps the scalar sign when bias is -0.0 */
    const float32x4_t corr = vsubq_f32(zero, vmulq_f32(wsum, zpf));
    const int8_t *xrow = in + (y0 + ky_lo) * row + c0;
    const float32x4_t *wrow = wf + ky_lo * kw;
    float *orow = out + oy * out_w * c + c0;
    for (int32_t ox = 0; ox < out_w;) {
      const int32_t x0 = ox * sw - pad_left;
      if (asm_row && nky > 0 && ox == 0 && left) ox = ox_a; /* the left tile covers it */
      if (ox < ox_a || ox >= ox_q) { /* one pixel, window possibly cut at the left or right */
        const int32_t kx_lo = x0 < 0 ? -x0 : 0, kx_hi = x0 + kw > in_w ? in_w - x0 : kw;
        float32x4_t a = zero;
        const int8_t *xr = xrow + x0 * c;
        const float32x4_t *wr = wrow;
        for (int32_t ky = 0; ky < nky; ++ky, xr += row, wr += kw)
          for (int32_t kx = kx_lo; kx < kx_hi; ++kx)
            a = vfmaq_f32(a, vsubq_f32(dwf_ld(xr + kx * c, pr, tail), zpf), wr[kx]);
        dwf_st(orow + ox * c, vaddq_f32(vmulq_f32(a, sc), bs), pr, tail);
        ++ox;
        continue;
      }
      if (asm_row && nky > 0) {
        /* interior run [a, b) in tiles of 4; the pixels left over are recomputed by one tile ending at b (the same
         * bits written twice, cheaper than the per-pixel path) */
        cv[0] = cv[1] = cv[2] = cv[3] = corr;
        int32_t a = ox_a, b = ox_b;
        if (left) {
          float32x4_t wl = zero; /* pixel 0 misses tap column 0 */
          for (int32_t ky = 0; ky < nky; ++ky) wl = vaddq_f32(wl, wrow[ky * 3]);
          cv[0] = vaddq_f32(corr, vmulq_f32(wl, zpf));
          dwf_tiles3(xrow, wrow, nky, row, c, cv, orow, 1, DWF_LEFT);
          cv[0] = corr;
          if (b - 4 >= 4) a = 4;
        }
        if (right) {
          float32x4_t wr = zero; /* pixel out_w - 1 misses tap column 2 */
          for (int32_t ky = 0; ky < nky; ++ky) wr = vaddq_f32(wr, wrow[ky * 3 + 2]);
          cv[3] = vaddq_f32(corr, vmulq_f32(wr, zpf));
          dwf_tiles3(xrow + (out_w - 4 - pad_left) * c, wrow, nky, row, c, cv, orow + (out_w - 4) * c, 1, DWF_RIGHT);
          cv[3] = corr;
          if (out_w - 4 - a >= 4) b = out_w - 4;
        }
        const int mode = sw == 1 ? DWF_FULL : DWF_S2;
        dwf_tiles3(xrow + (a * sw - pad_left) * c, wrow, nky, row, c, cv, orow + a * c, (b - a) / 4, mode);
        if ((b - a) % 4)
          dwf_tiles3(xrow + ((b - 4) * sw - pad_left) * c, wrow, nky, row, c, cv, orow + (b - 4) * c, 1, mode);
        ox = right ? out_w : ox_b;
        continue;
      }
      float32x4_t a0 = zero, a1 = zero, a2 = zero, a3 = zero;
      const int8_t *xr = xrow + x0 * c;
      const float32x4_t *wr = wrow;
      if (sw == 1 && !tail) {
        for (int32_t ky = 0; ky < nky; ++ky, xr += row, wr += kw)
          dwf_row_s1(xr, wr, c, kw / 3, kw % 3, &a0, &a1, &a2, &a3);
      } else if (sw == 1) {
        for (int32_t ky = 0; ky < nky; ++ky, xr += row, wr += kw) {
          const int8_t *p = xr;
          float32x4_t v0 = dwf_ld(p, pr, tail), v1 = dwf_ld(p + c, pr, tail), v2 = dwf_ld(p + 2 * c, pr, tail);
          p += 3 * c;
#pragma GCC unroll 8
          for (int32_t kx = 0; kx < kw; ++kx, p += c) {
            const float32x4_t wv = wr[kx];
            a0 = vfmaq_f32(a0, v0, wv);
            const float32x4_t v3 = dwf_ld(p, pr, tail);
            a1 = vfmaq_f32(a1, v1, wv);
            a2 = vfmaq_f32(a2, v2, wv);
            a3 = vfmaq_f32(a3, v3, wv);
            v0 = v1, v1 = v2, v2 = v3;
          }
        }
      } else {
        const int32_t ps = sw * c;
        for (int32_t ky = 0; ky < nky; ++ky, xr += row, wr += kw) {
          const int8_t *p = xr;
#pragma GCC unroll 8
          for (int32_t kx = 0; kx < kw; ++kx, p += c) {
            const float32x4_t wv = wr[kx];
            a0 = vfmaq_f32(a0, dwf_ld(p, pr, tail), wv);
            a1 = vfmaq_f32(a1, dwf_ld(p + ps, pr, tail), wv);
            a2 = vfmaq_f32(a2, dwf_ld(p + 2 * ps, pr, tail), wv);
            a3 = vfmaq_f32(a3, dwf_ld(p + 3 * ps, pr, tail), wv);
          }
        }
      }
      float *op = orow + ox * c;
      dwf_st(op, vaddq_f32(vmulq_f32(vaddq_f32(a0, corr), sc), bs), pr, tail);
      dwf_st(op + c, vaddq_f32(vmulq_f32(vaddq_f32(a1, corr), sc), bs), pr, tail);
      dwf_st(op + 2 * c, vaddq_f32(vmulq_f32(vaddq_f32(a2, corr), sc), bs), pr, tail);
      dwf_st(op + 3 * c, vaddq_f32(vmulq_f32(vaddq_f32(a3, corr), sc), bs), pr, tail);
      ox += 4;
    }
  }
}

/* Each variant a function of its own: inlined, their stack frames would add up to each other's and the weights'. */
static __attribute__((noinline)) void dwf_block_k3(const int8_t *in, const wrnn_geom *g, int32_t c0,
                                                   const float32x4_t *wf, float32x4_t zpf, float32x4_t sc,
                                                   float32x4_t bs, float *out) {
  dwf_block(in, g, c0, wf, zpf, sc, bs, out, vctp32q(4), 0, 3);
}

static __attribute__((noinline)) void dwf_block_k7(const int8_t *in, const wrnn_geom *g, int32_t c0,
                                                   const float32x4_t *wf, float32x4_t zpf, float32x4_t sc,
                                                   float32x4_t bs, float *out) {
  dwf_block(in, g, c0, wf, zpf, sc, bs, out, vctp32q(4), 0, 7);
}

static __attribute__((noinline)) void dwf_block_full(const int8_t *in, const wrnn_geom *g, int32_t c0,
                                                     const float32x4_t *wf, float32x4_t zpf, float32x4_t sc,
                                                     float32x4_t bs, float *out) {
  dwf_block(in, g, c0, wf, zpf, sc, bs, out, vctp32q(4), 0, g->k_w);
}

static __attribute__((noinline)) void dwf_block_tail(const int8_t *in, const wrnn_geom *g, int32_t c0,
                                                     const float32x4_t *wf, float32x4_t zpf, float32x4_t sc,
                                                     float32x4_t bs, float *out, mve_pred16_t pr) {
  dwf_block(in, g, c0, wf, zpf, sc, bs, out, pr, 1, g->k_w);
}
#endif

/* One output value of the float-output depthwise, the normative arithmetic: the exact integer sum over the window's
 * in-image taps (x rows `row` bytes apart, weights `wrow`, pixels `c`), then (float)acc * scale rounded, + bias. */
static inline float dwf_value(const int8_t *x, const int8_t *w, int32_t nky, int32_t nkx, int32_t row, int32_t wrow,
                              int32_t c, int32_t zp, float scale, float bias) {
  int32_t acc = 0;
  for (int32_t ky = 0; ky < nky; ++ky)
    for (int32_t kx = 0; kx < nkx; ++kx) acc += (x[ky * row + kx * c] - zp) * w[ky * wrow + kx * c];
  volatile float prod = (float)acc * scale;
  return prod + bias;
}

int wrnn_dwconv_s8_f32(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale, const float *bias,
                       const wrnn_geom *g, float *out) {
  if (!in || !w || !in_zp || !scale || !g || !out) return WRNN_ENULL;
  if (!check_geom(g) || g->out_c != g->in_c) return WRNN_EDIM;
  const int32_t c = g->in_c;
  for (int32_t i = 0; i < c; ++i)
    if (!check_zp(in_zp[i])) return WRNN_EQUANT;
  const int32_t row = g->in_w * c, wrow = g->k_w * c; /* bytes per input row / weight row (int32: H*W*C < 2^31) */
#ifdef WRNN_MVE
  const int32_t taps = g->k_h * g->k_w;
  if (taps <= WRNN_DWF_MAXT) {
    float32x4_t wf[WRNN_DWF_MAXT];
    for (int32_t c0 = 0; c0 < c; c0 += 4) {
      const mve_pred16_t pr = vctp32q(c - c0);
      for (int32_t t = 0; t < taps; ++t) wf[t] = vcvtq_f32_s32(vldrbq_z_s32(w + t * c + c0, pr));
      const float32x4_t zpf = vcvtq_f32_s32(vldrwq_z_s32(in_zp + c0, pr));
      const float32x4_t sc = vldrwq_z_f32(scale + c0, pr);
      const float32x4_t bs = bias ? vldrwq_z_f32(bias + c0, pr) : vdupq_n_f32(0.0f);
      if (c - c0 >= 4 && g->k_w == 3)
        dwf_block_k3(in, g, c0, wf, zpf, sc, bs, out);
      else if (c - c0 >= 4 && g->k_w == 7) /* 1x7 in ppocrv6_small: the cut windows' tap loops unrolled */
        dwf_block_k7(in, g, c0, wf, zpf, sc, bs, out);
      else if (c - c0 >= 4)
        dwf_block_full(in, g, c0, wf, zpf, sc, bs, out);
      else
        dwf_block_tail(in, g, c0, wf, zpf, sc, bs, out, pr);
    }
    return WRNN_OK;
  }
#endif
  for (int32_t oy = 0; oy < g->out_h; ++oy) {
    const int32_t y0 = oy * g->stride_h - g->pad_top;
    const int32_t ky_lo = y0 < 0 ? -y0 : 0, ky_hi = y0 + g->k_h > g->in_h ? g->in_h - y0 : g->k_h;
    for (int32_t ox = 0; ox < g->out_w; ++ox) {
      const int32_t x0 = ox * g->stride_w - g->pad_left;
      const int32_t kx_lo = x0 < 0 ? -x0 : 0, kx_hi = x0 + g->k_w > g->in_w ? g->in_w - x0 : g->k_w;
      const int32_t nky = ky_hi - ky_lo, nkx = kx_hi - kx_lo;
      const int8_t *x_base = in + (y0 + ky_lo) * row + (x0 + kx_lo) * c;
      const int8_t *w_base = w + ky_lo * wrow + kx_lo * c;
      float *op = out + (oy * g->out_w + ox) * c;
#ifdef WRNN_MVE
      /* windows above WRNN_DWF_MAXT taps: 4 channels per step in int32 lanes */
      for (int32_t c0 = 0; c0 < c; c0 += 4) {
        const mve_pred16_t pr = vctp32q(c - c0);
        const int32x4_t zp = vldrwq_z_s32(in_zp + c0, pr);
        int32x4_t acc = vdupq_n_s32(0);
        const int8_t *xr = x_base + c0, *wr = w_base + c0;
        for (int32_t ky = 0; ky < nky; ++ky, xr += row, wr += wrow) {
          const int8_t *xp = xr, *wp = wr;
          for (int32_t kx = 0; kx < nkx; ++kx, xp += c, wp += c) {
            const int32x4_t xv = vsubq_s32(vldrbq_z_s32(xp, pr), zp);
            acc = vaddq_s32(acc, vmulq_s32(xv, vldrbq_z_s32(wp, pr)));
          }
        }
        const float32x4_t bs = bias ? vldrwq_z_f32(bias + c0, pr) : vdupq_n_f32(0.0f);
        const float32x4_t f = vaddq_f32(vmulq_f32(vcvtq_f32_s32(acc), vldrwq_z_f32(scale + c0, pr)), bs);
        vstrwq_p_f32(op + c0, f, pr);
      }
#else
      for (int32_t ch = 0; ch < c; ++ch)
        op[ch] = dwf_value(x_base + ch, w_base + ch, nky, nkx, row, wrow, c, in_zp[ch], scale[ch],
                           bias ? bias[ch] : 0.0f);
#endif
    }
  }
  return WRNN_OK;
}

/* GELU + quantize by step table (layout in wrnn.h; built by wordrec.device.int8_ref.gelu_table). The level is
 * looked up, not computed: bin j = trunc(clamp((x - x0) * inv, 0, bins - 1)), each operation rounded to float32
 * (no FMA), then x >= thr[j] ? hi[j] : lo[j]. A NaN x lands in bin 0 and compares false (lo[0]) on both paths. */
typedef struct {
  int32_t bins;
  float x0, inv, top;
  const float *thr;
  const int8_t *lo, *hi;
} gelu_tab;

static int gelu_tab_read(const int32_t *table, gelu_tab *t) {
  if (!table) return WRNN_ENULL;
  t->bins = table[0];
  memcpy(&t->x0, table + 1, sizeof(float));
  memcpy(&t->inv, table + 2, sizeof(float));
  if (t->bins < 2 || !(t->inv > 0.0f) || !(t->x0 == t->x0)) return WRNN_EQUANT;
  t->top = (float)(t->bins - 1);
  t->thr = (const float *)(table + WRNN_GELU_HEADER);
  t->lo = (const int8_t *)(table + WRNN_GELU_HEADER + t->bins);
  t->hi = t->lo + t->bins;
  return WRNN_OK;
}

#ifdef WRNN_MVE
/* Four lanes: 2 float operations, clamp, convert, three gathers, compare, select. */
static inline __attribute__((always_inline)) int32x4_t gelu_level_vec(float32x4_t x, const gelu_tab *t) {
  float32x4_t v = vmulq_n_f32(vsubq_n_f32(x, t->x0), t->inv);
  v = vminnmq_f32(vmaxnmq_f32(v, vdupq_n_f32(0.0f)), vdupq_n_f32(t->top));
  const uint32x4_t j = vreinterpretq_u32_s32(vcvtq_s32_f32(v)); /* v >= 0: truncation is the floor */
  const float32x4_t thr = vldrwq_gather_shifted_offset_f32(t->thr, j);
  const int32x4_t lo = vldrbq_gather_offset_s32(t->lo, j), hi = vldrbq_gather_offset_s32(t->hi, j);
  return vpselq_s32(hi, lo, vcmpgeq_f32(x, thr));
}
#else
static inline int8_t gelu_level(float x, const gelu_tab *t) {
  float v = (x - t->x0) * t->inv;
  v = v > 0.0f ? v : 0.0f; /* NaN -> 0, as VMAXNM */
  v = v < t->top ? v : t->top;
  const int32_t j = (int32_t)v;
  return x >= t->thr[j] ? t->hi[j] : t->lo[j];
}
#endif

int wrnn_gelu_s8(const float *x, int32_t n, const int32_t *table, int8_t *out) {
  if (!x || !out) return WRNN_ENULL;
  if (n <= 0) return WRNN_EDIM;
  gelu_tab t;
  const int rc = gelu_tab_read(table, &t);
  if (rc) return rc;
#ifdef WRNN_MVE
  for (int32_t i = 0; i < n; i += 4) {
    const mve_pred16_t pr = vctp32q(n - i);
    vstrbq_p_s32(out + i, gelu_level_vec(vldrwq_z_f32(x + i, pr), &t), pr);
  }
#else
  for (int32_t i = 0; i < n; ++i) out[i] = gelu_level(x[i], &t);
#endif
  return WRNN_OK;
}

/* Per-channel quantize of a float tensor, or of the sum of two (the graph's QuantizeLinear, as TVM legalizes it:
 * clamp(rint(x / s) + zp) with the + zp and the clamp in float, min before max, so NaN -> 127). Helium has no
 * divide: y = x * r (r = 1 / s rounded) clamped to +-1024, then q = y + fma(-y, s, x) * r by two fused
 * multiply-adds, the remainder being exact; the same on the scalar path (fmaf). */
#ifdef WRNN_MVE
static inline __attribute__((always_inline)) int32x4_t quant_vec(float32x4_t x, float32x4_t s, float32x4_t r,
                                                                 float32x4_t z) {
  float32x4_t y = vminnmq_f32(vmaxnmq_f32(vmulq_f32(x, r), vdupq_n_f32(-1024.0f)), vdupq_n_f32(1024.0f));
  y = vfmaq_f32(y, vfmsq_f32(x, y, s), r);
  const float32x4_t v = vaddq_f32(vrndnq_f32(y), z);
  return vcvtq_s32_f32(vmaxnmq_f32(vminnmq_f32(v, vdupq_n_f32(127.0f)), vdupq_n_f32(-128.0f)));
}
#else
static inline int8_t quant1(float x, float s, float r, float z) {
  float y = x * r;
  y = y > -1024.0f ? y : -1024.0f; /* NaN -> -1024, as VMAXNM */
  y = y < 1024.0f ? y : 1024.0f;
  float v = nearbyintf(fmaf(fmaf(-y, s, x), r, y)) + z;
  v = v < 127.0f ? v : 127.0f; /* NaN -> 127 */
  v = v > -128.0f ? v : -128.0f;
  return (int8_t)v;
}
#endif

#ifdef WRNN_MVE
/* One block of 4 channels down all pixels (the block's scale, 1 / scale and zero point stay in registers); sum and
 * relu are compile-time flags so each variant's pixel loop has no branch. */
static inline __attribute__((always_inline)) void quant_block(const float *a, const float *b, int32_t pixels,
                                                              int32_t c, float32x4_t s, float32x4_t r, float32x4_t z,
                                                              mve_pred16_t pr, int8_t *out, const int sum,
                                                              const int relu) {
  for (int32_t p = 0; p < pixels; ++p, a += c, b += sum ? c : 0, out += c) {
    float32x4_t x = vldrwq_z_f32(a, pr);
    if (sum) x = vaddq_f32(x, vldrwq_z_f32(b, pr));
    if (relu) x = vmaxnmq_f32(x, vdupq_n_f32(0.0f));
    vstrbq_p_s32(out, quant_vec(x, s, r, z), pr);
  }
}
#endif

int wrnn_quantize_f32(const float *a, const float *b, int32_t relu, int32_t pixels, int32_t c, const float *scale,
                      const float *recip, const float *zp, int8_t *out) {
  if (!a || !scale || !recip || !zp || !out) return WRNN_ENULL;
  if (pixels <= 0 || c <= 0 || (int64_t)pixels * c > INT32_MAX || (relu && b)) return WRNN_EDIM;
  if (!check_q(c, scale, zp)) return WRNN_EQUANT;
#ifdef WRNN_MVE
  for (int32_t c0 = 0; c0 < c; c0 += 4) {
    const mve_pred16_t pr = vctp32q(c - c0);
    const float32x4_t s = vldrwq_z_f32(scale + c0, pr), r = vldrwq_z_f32(recip + c0, pr);
    const float32x4_t z = vldrwq_z_f32(zp + c0, pr);
    if (b)
      quant_block(a + c0, b + c0, pixels, c, s, r, z, pr, out + c0, 1, 0);
    else if (relu)
      quant_block(a + c0, NULL, pixels, c, s, r, z, pr, out + c0, 0, 1);
    else
      quant_block(a + c0, NULL, pixels, c, s, r, z, pr, out + c0, 0, 0);
  }
#else
  for (int32_t p = 0; p < pixels; ++p)
    for (int32_t ch = 0; ch < c; ++ch) {
      const int64_t i = (int64_t)p * c + ch;
      float x = b ? a[i] + b[i] : a[i];
      if (relu) x = x > 0.0f ? x : 0.0f; /* NaN -> 0, as VMAXNM */
      out[i] = quant1(x, scale[ch], recip[ch], zp[ch]);
    }
#endif
  return WRNN_OK;
}

/* The residual add of two int8 maps as TVM's fused DQ -> add -> Q loop computes it (wrnn.h). */
#ifdef WRNN_MVE
static inline __attribute__((always_inline)) void add_dq_block(const int8_t *a, const int8_t *b, int32_t pixels,
                                                               int32_t c, int32_t a_zp, float a_scale, int32_t b_zp,
                                                               float b_scale, float32x4_t s, float32x4_t r,
                                                               float32x4_t z, mve_pred16_t pr, int8_t *out) {
  for (int32_t p = 0; p < pixels; ++p, a += c, b += c, out += c) {
    const float32x4_t fa = vmulq_n_f32(vcvtq_f32_s32(vsubq_n_s32(vldrbq_z_s32(a, pr), a_zp)), a_scale);
    const float32x4_t fb = vmulq_n_f32(vcvtq_f32_s32(vsubq_n_s32(vldrbq_z_s32(b, pr), b_zp)), b_scale);
    vstrbq_p_s32(out, quant_vec(vaddq_f32(fa, fb), s, r, z), pr);
  }
}
#endif

int wrnn_add_dq_s8(const int8_t *a, const int8_t *b, int32_t pixels, int32_t c, int32_t a_zp, float a_scale,
                   int32_t b_zp, float b_scale, const float *q_scale, const float *q_recip, const float *q_zp,
                   int8_t *out) {
  if (!a || !b || !q_scale || !q_recip || !q_zp || !out) return WRNN_ENULL;
  if (pixels <= 0 || c <= 0 || (int64_t)pixels * c > INT32_MAX) return WRNN_EDIM;
  if (!check_zp(a_zp) || !check_zp(b_zp) || !check_q(c, q_scale, q_zp)) return WRNN_EQUANT;
#ifdef WRNN_MVE
  for (int32_t c0 = 0; c0 < c; c0 += 4) {
    const mve_pred16_t pr = vctp32q(c - c0);
    add_dq_block(a + c0, b + c0, pixels, c, a_zp, a_scale, b_zp, b_scale, vldrwq_z_f32(q_scale + c0, pr),
                 vldrwq_z_f32(q_recip + c0, pr), vldrwq_z_f32(q_zp + c0, pr), pr, out + c0);
  }
#else
  for (int32_t p = 0; p < pixels; ++p)
    for (int32_t ch = 0; ch < c; ++ch) {
      const int64_t i = (int64_t)p * c + ch;
      volatile float fa = (float)(a[i] - a_zp) * a_scale, fb = (float)(b[i] - b_zp) * b_scale;
      out[i] = quant1(fa + fb, q_scale[ch], q_recip[ch], q_zp[ch]);
    }
#endif
  return WRNN_OK;
}

/* Float-output kernels quantized band by band (wrnn.h): the bands are the same functions on sub-problems that
 * compute every output value exactly as the whole call does (pixel bands of the 1x1 GEMM; single output rows of
 * the depthwise conv, its input cut to the rows that row reads, so each window sees the same taps). */
static int32_t band_pixels(int32_t pixels, int32_t out_c) {
  const int32_t p = WRNN_BAND_FLOATS / out_c;
  return p < 1 ? 1 : (p > pixels ? pixels : p);
}

int32_t wrnn_conv1x1_s8_q8_scratch_bytes(int32_t pixels, int32_t out_c) {
  if (pixels <= 0 || out_c <= 0 || out_c > INT32_MAX / 8 - WRNN_BAND_FLOATS) return WRNN_EDIM;
  return 4 * out_c + 4 * band_pixels(pixels, out_c) * out_c;
}

int wrnn_conv1x1_s8_q8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c, int32_t in_zp,
                       const float *scale, const float *bias, int32_t relu, const float *q_scale,
                       const float *q_recip, const float *q_zp, void *scratch, int8_t *out) {
  if (!in || !w || !scale || !q_scale || !q_recip || !q_zp || !scratch || !out) return WRNN_ENULL;
  if (pixels <= 0 || in_c <= 0 || wrnn_conv1x1_s8_q8_scratch_bytes(pixels, out_c) < 0) return WRNN_EDIM;
  if (!check_zp(in_zp)) return WRNN_EQUANT;
  int32_t *folded = (int32_t *)scratch;
  float *band = (float *)(folded + out_c);
  for (int32_t o = 0; o < out_c; ++o) folded[o] = fold(0, o, w + (int64_t)o * in_c, in_c, in_zp);
  const int32_t step = band_pixels(pixels, out_c);
  for (int32_t p0 = 0; p0 < pixels; p0 += step) {
    const int32_t np = pixels - p0 < step ? pixels - p0 : step;
    gemm_s8_f32(in + (int64_t)p0 * in_c, in_c, np, w, out_c, in_c, folded, NULL, scale, bias, band, out_c);
    const int rc = wrnn_quantize_f32(band, NULL, relu, np, out_c, q_scale, q_recip, q_zp, out + (int64_t)p0 * out_c);
    if (rc != WRNN_OK) return rc;
  }
  return WRNN_OK;
}

/* wrnn_dwconv_s8_q8's tile path keeps per channel block 9 weights, the corrections (all rows, rows 1-2, rows
 * 0-1), scale and bias: float32x4 vectors in its scratch (the scratch size is the same on every path) */
enum { DWQ_CONSTS = 14 };

/* The tile path's scratch: the constants, then the ring of 3 rows of out_w + 2 columns x 4 floats. */
static int32_t dwq_scratch(int32_t out_w) { return 16 * DWQ_CONSTS + 48 * (out_w + 2); }

int32_t wrnn_dwconv_s8_q8_scratch_bytes(const wrnn_geom *g) {
  if (!g || !check_geom(g) || (int64_t)g->out_w * g->out_c > INT32_MAX / 8) return WRNN_EDIM;
  /* one float output row, or the tile path's constants and ring if that is more (few channels) */
  const int32_t row = 4 * g->out_w * g->out_c, tiles = dwq_scratch(g->out_w);
  return row > tiles ? row : tiles;
}

/* The tile path applies: a 3x3 window at column stride 1, whole blocks of 4 channels, a row of >= 4 pixels, one
 * output quantizer for all channels (per tensor, as an activation's is), and finite scale and bias small enough
 * that |x * r| < 2^64: |acc| < 2^19 (9 taps of |x - zp| <= 255 times |w| <= 128), so |x| <= 2^19 max |scale| +
 * max |bias|. Then x is finite, never NaN, and y, the remainder and the quotient stay finite: the clamp-free
 * epilogue gives wrnn_quantize_f32's integer. */
static int dwq_ok(const wrnn_geom *g, const float *scale, const float *bias, const float *q_scale,
                  const float *q_recip, const float *q_zp) {
  const int32_t c = g->in_c;
  if (g->k_h != 3 || g->k_w != 3 || g->stride_w != 1 || c % 4 || g->out_w < 4) return 0;
  double ms = 0.0, mb = 0.0;
  for (int32_t i = 0; i < c; ++i) {
    if (q_scale[i] != q_scale[0] || q_recip[i] != q_recip[0] || q_zp[i] != q_zp[0]) return 0;
    const double a = fabs((double)scale[i]), b = bias ? fabs((double)bias[i]) : 0.0;
    if (!(a < 1e30) || !(b < 1e30)) return 0; /* also NaN */
    ms = a > ms ? a : ms, mb = b > mb ? b : mb;
  }
  return (ms * 524288.0 + mb) * (double)q_recip[0] < 1.8e19;
}

#ifdef WRNN_MVE
/* The 3x3 depthwise with its quantize in the tile (wrnn_dwconv_s8_q8's fast path, wrnn.h). Per block of 4
 * channels the input rows a window reads are converted to float once into a ring of 3 rows (16 bytes per column,
 * the columns outside the image holding the zero point, so every window is whole and a tile needs no border
 * case), and the tile reads them with immediate offsets: per kernel row 6 loads, 12 VFMAs, 3 weight loads. The
 * sums start at -zp * sum of the 9 weights (exact integers, as in wrnn_dwconv_s8_f32: the zero-point columns add
 * (zp - zp) * w = 0 exactly what a skipped tap adds), the epilogue is wrnn_dwconv_s8_f32's (acc * scale, + bias)
 * then wrnn_quantize_f32's with per-tensor r, -s, zp in core registers: y = x * r, x + y * -s, y + that * r,
 * VCVTN (ties to even, saturating), + zp saturating, two saturating narrows: the same integer as
 * clamp(rint(y) + zp) for every y the caller lets in (dwq_ok: no +-1024 clamp is needed because |x * r| stays
 * far below overflow, and x is never NaN). The block's constants: 9 weights, the correction, scale, bias. */
#define WRNN_DWQ_ROW(P, W0, W1, W2, O0, O1, O2, O3, O4, O5)                                                   \
  "vldrw.u32 q1, [%[cv], #" W0 "]\n vldrw.u32 q2, [%[cv], #" W1 "]\n vldrw.u32 q3, [%[cv], #" W2 "]\n"          \
  "vldrw.u32 q0, [" P ", #" O0 "]\n vfma.f32 q4, q0, q1\n"                                                     \
  "vldrw.u32 q0, [" P ", #" O1 "]\n vfma.f32 q4, q0, q2\n vfma.f32 q5, q0, q1\n"                               \
  "vldrw.u32 q0, [" P ", #" O2 "]\n vfma.f32 q4, q0, q3\n vfma.f32 q5, q0, q2\n vfma.f32 q6, q0, q1\n"          \
  "vldrw.u32 q0, [" P ", #" O3 "]\n vfma.f32 q5, q0, q3\n vfma.f32 q6, q0, q2\n vfma.f32 q7, q0, q1\n"          \
  "vldrw.u32 q0, [" P ", #" O4 "]\n vfma.f32 q6, q0, q3\n vfma.f32 q7, q0, q2\n"                               \
  "vldrw.u32 q0, [" P ", #" O5 "]\n vfma.f32 q7, q0, q3\n"
#define WRNN_DWQ_OUT(S, RELU)                                                                                   \
  RELU "vmul.f32 q2, " S ", %[r]\n vfma.f32 " S ", q2, %[ns]\n vfma.f32 q2, " S ", %[r]\n"                      \
  "vcvtn.s32.f32 q2, q2\n vqadd.s32 q2, q2, %[z]\n vqmovnb.s32 q1, q2\n vqmovnb.s16 q0, q1\n"                   \
  "vstrb.32 q0, [%[o]]\n add %[o], %[c]\n"
/* one tile: ROWS (two or three WRNN_DWQ_ROW) with the sums starting at the correction at cv + CORR */
#define WRNN_DWQ_TILE(ROWS, CORR, RELU_SETUP, R4, R5, R6, R7)                                                   \
  "vldrw.u32 q4, [%[cv], #" CORR "]\n vmov q5, q4\n vmov q6, q4\n vmov q7, q4\n" ROWS                          \
  "vldrw.u32 q0, [%[cv], #160]\n vldrw.u32 q1, [%[cv], #176]\n"                                               \
  "vmul.f32 q4, q4, q0\n vmul.f32 q5, q5, q0\n vmul.f32 q6, q6, q0\n vmul.f32 q7, q7, q0\n"                    \
  "vadd.f32 q4, q4, q1\n vadd.f32 q5, q5, q1\n vadd.f32 q6, q6, q1\n vadd.f32 q7, q7, q1\n"                    \
  RELU_SETUP WRNN_DWQ_OUT("q4", R4) WRNN_DWQ_OUT("q5", R5) WRNN_DWQ_OUT("q6", R6) WRNN_DWQ_OUT("q7", R7)
#define WRNN_DWQ_LOOP(BODY, STEP)                                                                               \
  __asm__ volatile("wls lr, %[nt], 2f\n 1:\n" BODY "add %[p0], #" STEP "\n add %[p1], #" STEP "\n"              \
                   "add %[p2], #" STEP "\n le lr, 1b\n 2:\n"                                                  \
                   : [p0] "+r"(p0), [p1] "+r"(p1), [p2] "+r"(p2), [o] "+l"(o)                                 \
                   : [nt] "r"(nt), [cv] "r"(cv), [c] "r"(c), [r] "r"(r), [ns] "r"(ns), [z] "r"(z)             \
                   : "lr", "cc", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7", "d8", "d9", "d10", \
                     "d11", "d12", "d13", "d14", "d15")
/* the kernel rows a tile reads at column offset O0 (bytes): all three, or without row 0 / row 2 (outside) */
#define WRNN_DWQ_ROW0(O0, O1, O2, O3, O4, O5) WRNN_DWQ_ROW("%[p0]", "0", "16", "32", O0, O1, O2, O3, O4, O5)
#define WRNN_DWQ_ROW1(O0, O1, O2, O3, O4, O5) WRNN_DWQ_ROW("%[p1]", "48", "64", "80", O0, O1, O2, O3, O4, O5)
#define WRNN_DWQ_ROW2(O0, O1, O2, O3, O4, O5) WRNN_DWQ_ROW("%[p2]", "96", "112", "128", O0, O1, O2, O3, O4, O5)
#define WRNN_DWQ_ALL(...) WRNN_DWQ_ROW0(__VA_ARGS__) WRNN_DWQ_ROW1(__VA_ARGS__) WRNN_DWQ_ROW2(__VA_ARGS__)
#define WRNN_DWQ_TOP(...) WRNN_DWQ_ROW1(__VA_ARGS__) WRNN_DWQ_ROW2(__VA_ARGS__)
#define WRNN_DWQ_BOT(...) WRNN_DWQ_ROW0(__VA_ARGS__) WRNN_DWQ_ROW1(__VA_ARGS__)
#define WRNN_DWQ_A "0", "16", "32", "48", "64", "80"
#define WRNN_DWQ_B "64", "80", "96", "112", "128", "144"
#define WRNN_DWQ_RELU "vmov.i32 q3, #0\n", "vmaxnm.f32 q4, q4, q3\n", "vmaxnm.f32 q5, q5, q3\n", \
                      "vmaxnm.f32 q6, q6, q3\n", "vmaxnm.f32 q7, q7, q3\n"
#define WRNN_DWQ_NORELU "", "", "", "", ""
/* two tiles per loop step, then one */
#define WRNN_DWQ_RUN(SET, CORR, ...)                                                                            \
  do {                                                                                                          \
    nt = tiles / 2;                                                                                             \
    WRNN_DWQ_LOOP(WRNN_DWQ_TILE(SET(WRNN_DWQ_A), CORR, __VA_ARGS__)                                             \
                  WRNN_DWQ_TILE(SET(WRNN_DWQ_B), CORR, __VA_ARGS__), "128");                                    \
    nt = tiles % 2;                                                                                             \
    WRNN_DWQ_LOOP(WRNN_DWQ_TILE(SET(WRNN_DWQ_A), CORR, __VA_ARGS__), "64");                                     \
  } while (0)

enum { DWQ_ALL, DWQ_TOP, DWQ_BOT };

/* tiles tiles of 4 pixels x 4 channels from the ring rows p0..p2 (kernel rows 0..2, at the tile's first column)
 * into o (pixel stride c bytes). rows: all three, or DWQ_TOP / DWQ_BOT without kernel row 0 / 2 (a row outside the
 * image: its taps are left out, as wrnn_dwconv_s8_f32 leaves them, with the correction of the other six weights;
 * cheaper than a row of zero points). relu: max(x, 0) before the quantize, as wrnn_quantize_f32. */
static void dwq_tiles(const float *p0, const float *p1, const float *p2, const float *cv, int8_t *o, int32_t c,
                      int32_t tiles, float r, float ns, int32_t z, int relu, int rows) {
  int32_t nt;
  if (rows == DWQ_TOP && relu)
    WRNN_DWQ_RUN(WRNN_DWQ_TOP, "192", WRNN_DWQ_RELU);
  else if (rows == DWQ_TOP)
    WRNN_DWQ_RUN(WRNN_DWQ_TOP, "192", WRNN_DWQ_NORELU);
  else if (rows == DWQ_BOT && relu)
    WRNN_DWQ_RUN(WRNN_DWQ_BOT, "208", WRNN_DWQ_RELU);
  else if (rows == DWQ_BOT)
    WRNN_DWQ_RUN(WRNN_DWQ_BOT, "208", WRNN_DWQ_NORELU);
  else if (relu)
    WRNN_DWQ_RUN(WRNN_DWQ_ALL, "144", WRNN_DWQ_RELU);
  else
    WRNN_DWQ_RUN(WRNN_DWQ_ALL, "144", WRNN_DWQ_NORELU);
}


/* Input row iy of block c0 into a ring row (the zero point throughout when iy is outside the image). Four columns
 * per step: 17 instructions (gcc's loop took ~8 a column). */
static inline __attribute__((always_inline)) void dwq_convert(const int8_t *in, const wrnn_geom *g,
                                                              const dwq_cols *k, int32_t c0, int32_t iy,
                                                              float32x4_t zpf, float *d) {
  int32_t left = k->left, n = k->n, right = k->right;
  if (iy < 0 || iy >= g->in_h) left += n + right, n = right = 0;
  for (int32_t j = 0; j < left; ++j, d += 4) vst1q_f32(d, zpf);
  if (n) {
    const int32_t c = g->in_c, quads = n / 4;
    const int8_t *src = in + ((int64_t)iy * g->in_w + (k->left - g->pad_left)) * c + c0;
    __asm__ volatile("wls lr, %[q], 2f\n 1:\n vldrb.s32 q0, [%[s]]\n add %[s], %[c]\n vldrb.s32 q1, [%[s]]\n"
                     "add %[s], %[c]\n vldrb.s32 q2, [%[s]]\n add %[s], %[c]\n vldrb.s32 q3, [%[s]]\n"
                     "add %[s], %[c]\n vcvt.f32.s32 q0, q0\n vcvt.f32.s32 q1, q1\n vcvt.f32.s32 q2, q2\n"
                     "vcvt.f32.s32 q3, q3\n vstrw.32 q0, [%[d]], #16\n vstrw.32 q1, [%[d]], #16\n"
                     "vstrw.32 q2, [%[d]], #16\n vstrw.32 q3, [%[d]], #16\n le lr, 1b\n 2:\n"
                     : [s] "+l"(src), [d] "+r"(d)
                     : [q] "r"(quads), [c] "r"(c)
                     : "lr", "memory", "d0", "d1", "d2", "d3", "d4", "d5", "d6", "d7");
    for (int32_t j = quads * 4; j < n; ++j, src += c, d += 4) vst1q_f32(d, vcvtq_f32_s32(vldrbq_s32(src)));
  }
  for (int32_t j = 0; j < right; ++j, d += 4) vst1q_f32(d, zpf);
}

static void dwq_run(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale, const float *bias,
                    const wrnn_geom *g, int32_t relu, float r, float s, int32_t z, float *scratch, int8_t *out) {
  const int32_t c = g->in_c, cols = g->out_w + 2, orow = g->out_w * c, sh = g->stride_h, in_h = g->in_h;
  const int32_t nt = g->out_w / 4, back = 4 * (g->out_w - 4);
  float *cv = scratch, *ring = scratch + 4 * DWQ_CONSTS;
  const float32x4_t zero = vdupq_n_f32(0.0f);
  dwq_cols k; /* input columns [0, in_w) sit at ring columns [pad_left, pad_left + in_w), cut to [0, cols) */
  k.left = g->pad_left < cols ? g->pad_left : cols;
  k.n = g->pad_left + g->in_w < cols ? g->in_w : cols - k.left;
  k.right = cols - k.left - k.n;
  for (int32_t c0 = 0; c0 < c; c0 += 4) {
    float32x4_t wrow[3] = {zero, zero, zero}; /* per kernel row: the sum of its 3 weights */
    for (int32_t t = 0; t < 9; ++t) {
      const float32x4_t wt = vcvtq_f32_s32(vldrbq_s32(w + t * c + c0));
      vst1q_f32(cv + 4 * t, wt);
      wrow[t / 3] = vaddq_f32(wrow[t / 3], wt);
    }
    /* -zp * (sum of the weights a tile reads), 0 - v: +0.0 for a zero sum (see dwf_block). Every partial sum
     * an integer below 2^24, so the order of the additions does not matter. */
    const float32x4_t zpf = vcvtq_f32_s32(vld1q_s32(in_zp + c0));
    vst1q_f32(cv + 36, vsubq_f32(zero, vmulq_f32(vaddq_f32(vaddq_f32(wrow[0], wrow[1]), wrow[2]), zpf)));
    vst1q_f32(cv + 40, vld1q_f32(scale + c0));
    vst1q_f32(cv + 44, bias ? vld1q_f32(bias + c0) : zero);
    vst1q_f32(cv + 48, vsubq_f32(zero, vmulq_f32(vaddq_f32(wrow[1], wrow[2]), zpf)));
    vst1q_f32(cv + 52, vsubq_f32(zero, vmulq_f32(vaddq_f32(wrow[0], wrow[1]), zpf)));
    /* the window's rows r0..r2 in the ring's three rows (t0..t2: the input row each holds); moving down by sh
     * keeps 3 - sh of them. A row outside the image is converted (to zero points) only when the tile cannot
     * leave it out. */
    float *r0 = ring, *r1 = ring + 4 * cols, *r2 = ring + 8 * cols;
    int32_t t0 = INT32_MIN, t1 = INT32_MIN, t2 = INT32_MIN;
    int8_t *o = out + c0;
    for (int32_t oy = 0, y0 = -g->pad_top; oy < g->out_h; ++oy, y0 += sh, o += orow) {
      const int in0 = y0 >= 0 && y0 < in_h, in1 = y0 + 1 >= 0 && y0 + 1 < in_h, in2 = y0 + 2 >= 0 && y0 + 2 < in_h;
      const int rows = in0 && in1 && in2 ? DWQ_ALL : !in0 && in1 && in2 ? DWQ_TOP : in0 && in1 && !in2 ? DWQ_BOT
                                                                                                  : DWQ_ALL;
      if (oy > 0 && sh == 1) { /* rotate so the rows still in the window come first */
        float *p = r0;
        const int32_t t = t0;
        r0 = r1, t0 = t1, r1 = r2, t1 = t2, r2 = p, t2 = t;
      } else if (oy > 0 && sh == 2) {
        float *p = r0, *q = r1;
        const int32_t t = t0, u = t1;
        r0 = r2, t0 = t2, r1 = p, t1 = t, r2 = q, t2 = u;
      }
      if (rows != DWQ_TOP && t0 != y0) dwq_convert(in, g, &k, c0, y0, zpf, r0), t0 = y0;
      if (t1 != y0 + 1) dwq_convert(in, g, &k, c0, y0 + 1, zpf, r1), t1 = y0 + 1;
      if (rows != DWQ_BOT && t2 != y0 + 2) dwq_convert(in, g, &k, c0, y0 + 2, zpf, r2), t2 = y0 + 2;
      dwq_tiles(r0, r1, r2, cv, o, c, nt, r, -s, z, relu, rows);
      if (g->out_w % 4) /* the last 4 pixels again: the same bits for the ones already written */
        dwq_tiles(r0 + back, r1 + back, r2 + back, cv, o + (g->out_w - 4) * c, c, 1, r, -s, z, relu, rows);
    }
  }
}
#endif

int wrnn_dwconv_s8_q8(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale, const float *bias,
                      const wrnn_geom *g, int32_t relu, const float *q_scale, const float *q_recip,
                      const float *q_zp, void *scratch, int8_t *out) {
  if (!in || !w || !in_zp || !scale || !g || !q_scale || !q_recip || !q_zp || !scratch || !out) return WRNN_ENULL;
  if (wrnn_dwconv_s8_q8_scratch_bytes(g) < 0 || g->out_c != g->in_c) return WRNN_EDIM;
  if (!check_q(g->out_c, q_scale, q_zp)) return WRNN_EQUANT;
#ifdef WRNN_MVE
  if (dwq_ok(g, scale, bias, q_scale, q_recip, q_zp)) {
    for (int32_t i = 0; i < g->in_c; ++i)
      if (!check_zp(in_zp[i])) return WRNN_EQUANT;
    dwq_run(in, w, in_zp, scale, bias, g, relu, q_recip[0], q_scale[0], (int32_t)q_zp[0], (float *)scratch, out);
    return WRNN_OK;
  }
#endif
  const int32_t row = g->in_w * g->in_c, orow = g->out_w * g->out_c;
  for (int32_t oy = 0; oy < g->out_h; ++oy) {
    const int32_t y0 = oy * g->stride_h - g->pad_top;
    const int32_t lo = y0 < 0 ? 0 : y0, hi = y0 + g->k_h > g->in_h ? g->in_h : y0 + g->k_h;
    wrnn_geom b = *g;
    b.in_h = hi - lo, b.out_h = 1, b.pad_top = lo - y0;
    int rc = wrnn_dwconv_s8_f32(in + (int64_t)lo * row, w, in_zp, scale, bias, &b, (float *)scratch);
    if (rc == WRNN_OK)
      rc = wrnn_quantize_f32((const float *)scratch, NULL, relu, g->out_w, g->out_c, q_scale, q_recip, q_zp,
                             out + (int64_t)oy * orow);
    if (rc != WRNN_OK) return rc;
  }
  return WRNN_OK;
}

int32_t wrnn_dwconv3x3_s8_q8_scratch_bytes(const wrnn_geom *g) {
  if (!g || !check_geom(g) || g->k_h != 3 || g->k_w != 3 || g->stride_w != 1 || g->out_c != g->in_c ||
      g->in_c % 4 || g->out_w < 4 || g->out_w > (INT32_MAX - 16 * DWQ_CONSTS) / 48 - 2)
    return WRNN_EDIM;
  return dwq_scratch(g->out_w);
}

int wrnn_dwconv3x3_s8_q8(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale,
                         const float *bias, const wrnn_geom *g, int32_t relu, const float *q_scale,
                         const float *q_recip, const float *q_zp, void *scratch, int8_t *out) {
  if (!in || !w || !in_zp || !scale || !g || !q_scale || !q_recip || !q_zp || !scratch || !out) return WRNN_ENULL;
  if (wrnn_dwconv3x3_s8_q8_scratch_bytes(g) < 0) return WRNN_EDIM;
  const int32_t c = g->in_c;
  if (!check_q(c, q_scale, q_zp) || !dwq_ok(g, scale, bias, q_scale, q_recip, q_zp)) return WRNN_EQUANT;
  for (int32_t i = 0; i < c; ++i)
    if (!check_zp(in_zp[i])) return WRNN_EQUANT;
#ifdef WRNN_MVE
  dwq_run(in, w, in_zp, scale, bias, g, relu, q_recip[0], q_scale[0], (int32_t)q_zp[0], (float *)scratch, out);
#else
  const int32_t row = g->in_w * c, wrow = 3 * c;
  for (int32_t oy = 0; oy < g->out_h; ++oy) {
    const int32_t y0 = oy * g->stride_h - g->pad_top;
    const int32_t ky_lo = y0 < 0 ? -y0 : 0, ky_hi = y0 + 3 > g->in_h ? g->in_h - y0 : 3;
    for (int32_t ox = 0; ox < g->out_w; ++ox) {
      const int32_t x0 = ox - g->pad_left;
      const int32_t kx_lo = x0 < 0 ? -x0 : 0, kx_hi = x0 + 3 > g->in_w ? g->in_w - x0 : 3;
      const int8_t *xb = in + (y0 + ky_lo) * row + (x0 + kx_lo) * c, *wb = w + ky_lo * wrow + kx_lo * c;
      int8_t *op = out + ((int64_t)oy * g->out_w + ox) * c;
      for (int32_t ch = 0; ch < c; ++ch) {
        float x = dwf_value(xb + ch, wb + ch, ky_hi - ky_lo, kx_hi - kx_lo, row, wrow, c, in_zp[ch], scale[ch],
                            bias ? bias[ch] : 0.0f);
        if (relu) x = x > 0.0f ? x : 0.0f;
        op[ch] = quant1(x, q_scale[ch], q_recip[ch], q_zp[ch]);
      }
    }
  }
#endif
  return WRNN_OK;
}

int wrnn_mean_s8_f32(const int8_t *in, const wrnn_geom *g, float scale, int32_t zp, float *out) {
  if (!in || !g || !out) return WRNN_ENULL;
  if (!check_geom(g) || g->stride_h != g->k_h || g->stride_w != g->k_w || g->pad_top || g->pad_left ||
      (int64_t)g->out_h * g->k_h != g->in_h || (int64_t)g->out_w * g->k_w != g->in_w || g->out_c != g->in_c)
    return WRNN_EDIM;
  if (!check_zp(zp) || !(scale > 0.0f)) return WRNN_EQUANT;
  const int32_t c = g->in_c, row = g->in_w * c;
  const float n = (float)(g->k_h * g->k_w);
  for (int32_t oy = 0; oy < g->out_h; ++oy)
    for (int32_t ox = 0; ox < g->out_w; ++ox) {
      const int8_t *win = in + (int64_t)oy * g->k_h * row + (int64_t)ox * g->k_w * c;
      float *o = out + ((int64_t)oy * g->out_w + ox) * c;
#ifdef WRNN_MVE
      for (int32_t c0 = 0; c0 < c; c0 += 4) {
        const mve_pred16_t pr = vctp32q(c - c0);
        float32x4_t acc = vdupq_n_f32(0.0f);
        for (int32_t ky = 0; ky < g->k_h; ++ky)
          for (int32_t kx = 0; kx < g->k_w; ++kx) {
            const int32x4_t v = vsubq_n_s32(vldrbq_z_s32(win + ky * row + kx * c + c0, pr), zp);
            acc = vaddq_f32(acc, vmulq_n_f32(vcvtq_f32_s32(v), scale));
          }
        float a[4];
        vst1q_f32(a, acc);
        for (int32_t j = 0; j < 4 && c0 + j < c; ++j) o[c0 + j] = a[j] / n; /* MVE has no vector divide */
      }
#else
      for (int32_t ch = 0; ch < c; ++ch) {
        float acc = 0.0f;
        for (int32_t ky = 0; ky < g->k_h; ++ky)
          for (int32_t kx = 0; kx < g->k_w; ++kx) {
            volatile float v = (float)(win[ky * row + kx * c + ch] - zp) * scale; /* no FMA, as the vector path */
            acc += v;
          }
        o[ch] = acc / n;
      }
#endif
    }
  return WRNN_OK;
}

/* 1x1 conv (int8 in, float epilogue) fused with GELU + quantize: gemm_s8_f32's integer core and float epilogue,
 * then the table lookup of wrnn_gelu_s8 on the float value while it is still in a register, so the float tensor
 * between the two (pixels x out_c x 4 bytes) never exists. The float value is the same IEEE single as the one
 * gemm_s8_f32 would store (same three operations, same order), hence the same int8 as the two calls. */
static void gemm_s8_gelu(const int8_t *a, int32_t m, const int8_t *w, int32_t n, int32_t k, const int32_t *folded,
                         const float *scale, const float *bias, const gelu_tab *t, int8_t *out) {
#ifdef WRNN_MVE
  for (int32_t o = 0; o < n; o += 4) {
    const int32_t live = n - o < 4 ? n - o : 4;
    const int8_t *w0 = w + (int64_t)o * k;
    const int8_t *w1 = w + (int64_t)(live > 1 ? o + 1 : o) * k;
    const int8_t *w2 = w + (int64_t)(live > 2 ? o + 2 : o) * k;
    const int8_t *w3 = w + (int64_t)(live > 3 ? o + 3 : o) * k;
    const mve_pred16_t opred = vctp32q(live);
    const int32x4_t fb = vldrwq_z_s32(folded + o, opred);
    const float32x4_t sc = vldrwq_z_f32(scale + o, opred);
    const float32x4_t bs = bias ? vldrwq_z_f32(bias + o, opred) : vdupq_n_f32(0.0f);
    int32_t sums[WRNN_GEMM_CHUNK * 4] __attribute__((aligned(8)));
    for (int32_t p0 = 0; p0 < m; p0 += WRNN_GEMM_CHUNK) {
      const int32_t np = m - p0 < WRNN_GEMM_CHUNK ? m - p0 : WRNN_GEMM_CHUNK;
      dot4_chunk(a + (int64_t)p0 * k, k, np, k, w0, w1, w2, w3, sums);
      int8_t *op = out + (int64_t)p0 * n + o;
      const int32_t *sp = sums;
      for (int32_t p = 0; p < np; ++p, sp += 4, op += n) {
        const float32x4_t f = vaddq_f32(vmulq_f32(vcvtq_f32_s32(vaddq_s32(vldrwq_s32(sp), fb)), sc), bs);
        vstrbq_p_s32(op, gelu_level_vec(f, t), opred);
      }
    }
  }
#else
  for (int32_t o = 0; o < n; ++o) {
    const int8_t *wr = w + (int64_t)o * k;
    for (int32_t p = 0; p < m; ++p) {
      const int8_t *ar = a + (int64_t)p * k;
      int32_t acc = folded[o];
      for (int32_t i = 0; i < k; ++i) acc = wadd(acc, ar[i] * wr[i]);
      volatile float prod = (float)acc * scale[o]; /* gemm_s8_f32's epilogue, rounded as there */
      volatile float f = prod + (bias ? bias[o] : 0.0f);
      out[(int64_t)p * n + o] = gelu_level(f, t);
    }
  }
#endif
}

int wrnn_conv1x1_s8_gelu_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c,
                            int32_t in_zp, const float *scale, const float *bias, const int32_t *gelu_table,
                            void *scratch, int8_t *out) {
  if (!in || !w || !scale || !scratch || !out) return WRNN_ENULL;
  if (pixels <= 0 || in_c <= 0 || out_c <= 0) return WRNN_EDIM;
  if (!check_zp(in_zp)) return WRNN_EQUANT;
  gelu_tab t;
  const int rc = gelu_tab_read(gelu_table, &t);
  if (rc) return rc;
  int32_t *folded = (int32_t *)scratch;
  for (int32_t o = 0; o < out_c; ++o) folded[o] = fold(0, o, w + (int64_t)o * in_c, in_c, in_zp);
  gemm_s8_gelu(in, pixels, w, out_c, in_c, folded, scale, bias, &t, out);
  return WRNN_OK;
}

/* Pixels per band of the MLP pair: the hidden band within WRNN_MLP_BAND_BYTES, whole GEMM chunks when it can. */
static int32_t mlp_band(int32_t pixels, int32_t hidden_c) {
  int32_t p = WRNN_MLP_BAND_BYTES / hidden_c;
  if (p >= WRNN_GEMM_CHUNK) p -= p % WRNN_GEMM_CHUNK;
  return p < 1 ? 1 : (p > pixels ? pixels : p);
}

int32_t wrnn_mlp_s8_scratch_bytes(int32_t pixels, int32_t hidden_c, int32_t out_c) {
  if (pixels <= 0 || hidden_c <= 0 || out_c <= 0 || hidden_c > (INT32_MAX - WRNN_MLP_BAND_BYTES) / 8 ||
      out_c > INT32_MAX / 8)
    return WRNN_EDIM;
  const int64_t bytes = 4 * ((int64_t)hidden_c + out_c) + (int64_t)mlp_band(pixels, hidden_c) * hidden_c;
  return bytes > INT32_MAX ? WRNN_EDIM : (int32_t)bytes;
}

int wrnn_mlp_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w1, int32_t hidden_c, int32_t in_zp,
                const float *scale1, const float *bias1, const int32_t *gelu_table, const int8_t *w2, int32_t out_c,
                const int32_t *bias2, const int32_t *mult2, const int32_t *shift2, const wrnn_quant *q2,
                void *scratch, int8_t *out) {
  if (!in || !w1 || !scale1 || !scratch || !out) return WRNN_ENULL;
  if (pixels <= 0 || in_c <= 0 || wrnn_mlp_s8_scratch_bytes(pixels, hidden_c, out_c) < 0) return WRNN_EDIM;
  if (!check_zp(in_zp)) return WRNN_EQUANT;
  gelu_tab t;
  int rc = gelu_tab_read(gelu_table, &t);
  if (rc) return rc;
  rc = check_gemm(in, w2, mult2, shift2, q2, out, pixels, hidden_c, out_c);
  if (rc) return rc;
  /* both layers' zero-point terms once per call (gemm_s8 would fold the second's per band: out_c x hidden_c) */
  int32_t *folded = (int32_t *)scratch, *folded2 = folded + hidden_c;
  int8_t *band = (int8_t *)(folded2 + out_c);
  for (int32_t o = 0; o < hidden_c; ++o) folded[o] = fold(0, o, w1 + (int64_t)o * in_c, in_c, in_zp);
  for (int32_t o = 0; o < out_c; ++o) folded2[o] = fold(bias2, o, w2 + (int64_t)o * hidden_c, hidden_c, q2->in_zp);
  const int32_t step = mlp_band(pixels, hidden_c);
  for (int32_t p0 = 0; p0 < pixels; p0 += step) {
    const int32_t np = pixels - p0 < step ? pixels - p0 : step;
    gemm_s8_gelu(in + (int64_t)p0 * in_c, np, w1, hidden_c, in_c, folded, scale1, bias1, &t, band);
    gemm_s8(band, hidden_c, np, w2, out_c, hidden_c, folded2, 0, bias2, mult2, shift2, q2,
            out + (int64_t)p0 * out_c, out_c);
  }
  return WRNN_OK;
}

/* Helium depthwise works on WRNN_DW_PIX output pixels of a row per step; the padded row buffer is wide enough
 * for the last, partial step. */
#define WRNN_DW_PIX 16
static int32_t dw_row_cols(const wrnn_geom *g) {
  return ((g->out_w + WRNN_DW_PIX - 1) / WRNN_DW_PIX * WRNN_DW_PIX - 1) * g->stride_w + g->k_w;
}

int32_t wrnn_dwconv_s8_scratch_bytes(const wrnn_geom *g) {
  if (!g || !check_geom(g) || g->out_c != g->in_c) return WRNN_EDIM;
  const int64_t bytes = 4 * (int64_t)g->in_c + (((int64_t)g->in_c * g->k_h * g->k_w + 3) & ~3) +
                        (((int64_t)g->k_h * dw_row_cols(g) * g->in_c + 3) & ~3);
  return bytes > INT32_MAX ? WRNN_EDIM : (int32_t)bytes;
}

#ifdef WRNN_MVE
/* Copy the k_h input rows of output row oy into rows[k_h][cols][c], columns and rows outside the input set to
 * in_zp: the inner loop then needs no bounds checks, and in_zp taps cancel against the folded bias. */
static void dw_pad_rows(const int8_t *in, const wrnn_geom *g, int32_t y0, int32_t cols, int8_t zp, int8_t *rows) {
  const int32_t c = g->in_c, row = cols * c;
  for (int32_t ky = 0; ky < g->k_h; ++ky, rows += row) {
    const int32_t y = y0 + ky;
    if (y < 0 || y >= g->in_h) {
      fill_s8(rows, zp, row);
      continue;
    }
    const int32_t right = cols - g->pad_left - g->in_w; /* may be negative: then the row is cut */
    const int32_t take = right < 0 ? g->in_w + right : g->in_w;
    fill_s8(rows, zp, g->pad_left * c);
    copy_s8(rows + g->pad_left * c, in + (int64_t)y * g->in_w * c, take * c);
    if (right > 0) fill_s8(rows + (g->pad_left + take) * c, zp, right * c);
  }
}
#endif

/* Helium: one channel at a time, 16 output pixels of a row per step in four int32x4 accumulators. Each tap is one
 * scalar weight (VMLA by a scalar register) times 4 pixels fetched by a byte gather at offsets {0,s,2s,3s} * C
 * from the zero-point-padded NHWC rows, ~2.7 instructions per 4 MACs including the weight load and pointer step;
 * the 16 outputs are requantized with the channel's (mult, shift) as scalar operands and scattered to NHWC. */
int wrnn_dwconv_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                   const wrnn_geom *g, const wrnn_quant *q, void *scratch, int8_t *out) {
  if (!in || !w || !mult || !shift || !g || !q || !scratch || !out) return WRNN_ENULL;
  if (!check_geom(g) || g->out_c != g->in_c || wrnn_dwconv_s8_scratch_bytes(g) < 0) return WRNN_EDIM;
  if (!check_quant(q) || !check_shifts(shift, g->in_c)) return WRNN_EQUANT;
  const int32_t c = g->in_c, taps = g->k_h * g->k_w, zp = q->in_zp;
  int32_t *folded = (int32_t *)scratch;
  int8_t *wt = (int8_t *)(folded + c); /* weights transposed to [c][taps]: one channel's taps contiguous */
  /* fold over all taps: a tap outside the input then adds in_zp * w, i.e. (in_zp - in_zp) * w = 0 */
  for (int32_t ch = 0; ch < c; ++ch) {
    int32_t s = 0;
    for (int32_t t = 0; t < taps; ++t) {
      wt[ch * taps + t] = w[t * c + ch];
      s += w[t * c + ch];
    }
    folded[ch] = wadd(bias ? bias[ch] : 0, wmul(-zp, s));
  }
#ifdef WRNN_MVE
  /* geometry and quantization as locals: the int8 output stores may alias *g and *q, so reading them in the
   * loops would reload them after every store */
  const int32_t cols = dw_row_cols(g), kw = g->k_w, kh = g->k_h, row_step = (cols - kw) * c;
  const int32_t out_w = g->out_w, out_h = g->out_h, sw = g->stride_w, sh = g->stride_h, pad_top = g->pad_top;
  const int32_t out_zp = q->out_zp;
  int8_t *rows = wt + ((c * taps + 3) & ~3);
  const uint32x4_t lane = vidupq_n_u32(0, 1);
  const uint32x4_t goff0 = vmulq_n_u32(lane, (uint32_t)(sw * c));
  const uint32x4_t goff1 = vaddq_n_u32(goff0, (uint32_t)(4 * sw * c));
  const int32_t step8 = 8 * sw * c; /* pixels 8..15 of a step: same offsets from a base 8 pixels on */
  const uint32x4_t soff = vmulq_n_u32(lane, (uint32_t)c);
  const int32x4_t lo = vdupq_n_s32(q->act_min), hi = vdupq_n_s32(q->act_max);
  const int full_range = q->act_min == -128 && q->act_max == 127;
  for (int32_t oy = 0; oy < out_h; ++oy) {
    dw_pad_rows(in, g, oy * sh - pad_top, cols, (int8_t)zp, rows);
    int8_t *orow = out + (int64_t)oy * out_w * c;
    for (int32_t ch = 0; ch < c; ++ch) {
      const int32_t m = mult[ch], rsh = shift[ch] < 0 ? -shift[ch] : 1, lsh = shift[ch] + rsh;
      const int32_t f0 = folded[ch];
      for (int32_t ox0 = 0; ox0 < out_w; ox0 += WRNN_DW_PIX) {
        int32x4_t a0 = vdupq_n_s32(f0), a1 = a0, a2 = a0, a3 = a0;
        const int8_t *xa = rows + (int64_t)ox0 * sw * c + ch;
        const int8_t *wp = wt + ch * taps;
        for (int32_t ky = 0; ky < kh; ++ky, xa += row_step) {
          for (int32_t kx = 0; kx < kw; ++kx, xa += c) {
            const int32_t wv = *wp++;
            const int8_t *xb = xa + step8;
            a0 = vmlaq_n_s32(a0, vldrbq_gather_offset_s32(xa, goff0), wv);
            a1 = vmlaq_n_s32(a1, vldrbq_gather_offset_s32(xa, goff1), wv);
            a2 = vmlaq_n_s32(a2, vldrbq_gather_offset_s32(xb, goff0), wv);
            a3 = vmlaq_n_s32(a3, vldrbq_gather_offset_s32(xb, goff1), wv);
          }
        }
        int8_t *op = orow + (int64_t)ox0 * c + ch;
        const int32_t count = out_w - ox0;
        int32x4_t r[4];
        if (full_range) { /* clamp by a saturating shift up and back: no vector constants to keep live */
          r[0] = rq_full(a0, m, lsh, rsh, out_zp), r[1] = rq_full(a1, m, lsh, rsh, out_zp);
          r[2] = rq_full(a2, m, lsh, rsh, out_zp), r[3] = rq_full(a3, m, lsh, rsh, out_zp);
        } else {
          r[0] = rq_uniform(a0, m, lsh, rsh, out_zp, lo, hi), r[1] = rq_uniform(a1, m, lsh, rsh, out_zp, lo, hi);
          r[2] = rq_uniform(a2, m, lsh, rsh, out_zp, lo, hi), r[3] = rq_uniform(a3, m, lsh, rsh, out_zp, lo, hi);
        }
        if (count >= WRNN_DW_PIX) {
          for (int32_t j = 0; j < 4; ++j) vstrbq_scatter_offset_s32(op + 4 * j * c, soff, r[j]);
        } else {
          for (int32_t j = 0; j < 4 && 4 * j < count; ++j)
            vstrbq_scatter_offset_p_s32(op + 4 * j * c, soff, r[j], vctp32q(count - 4 * j));
        }
      }
    }
  }
#else
  for (int32_t oy = 0; oy < g->out_h; ++oy) {
    const int32_t y0 = oy * g->stride_h - g->pad_top;
    for (int32_t ox = 0; ox < g->out_w; ++ox) {
      const int32_t x0 = ox * g->stride_w - g->pad_left;
      int8_t *op = out + ((int64_t)oy * g->out_w + ox) * c;
      for (int32_t ch = 0; ch < c; ++ch) {
        int32_t acc = folded[ch];
        for (int32_t ky = 0; ky < g->k_h; ++ky)
          for (int32_t kx = 0; kx < g->k_w; ++kx) {
            const int32_t y = y0 + ky, x = x0 + kx;
            const int in_bounds = y >= 0 && y < g->in_h && x >= 0 && x < g->in_w;
            const int32_t xv = in_bounds ? in[((int64_t)y * g->in_w + x) * c + ch] : zp;
            acc = wadd(acc, xv * wt[ch * taps + ky * g->k_w + kx]);
          }
        op[ch] = (int8_t)wrnn_requant(acc, mult[ch], shift[ch], q->out_zp, q->act_min, q->act_max);
      }
    }
  }
#endif
  return WRNN_OK;
}

int wrnn_avgpool_s8(const int8_t *in, const wrnn_geom *g, int32_t act_min, int32_t act_max, int8_t *out) {
  if (!in || !g || !out) return WRNN_ENULL;
  if (!check_geom(g) || g->out_c != g->in_c || (int64_t)g->k_h * g->k_w > (1 << 23)) return WRNN_EDIM;
  if (!check_clamp(act_min, act_max)) return WRNN_EQUANT;
  const int32_t c = g->in_c;
  /* No integer divide in Helium: both paths run this loop (sum per channel in int32, one division each). */
  for (int32_t oy = 0; oy < g->out_h; ++oy) {
    const int32_t y0 = oy * g->stride_h - g->pad_top;
    const int32_t ylo = y0 < 0 ? 0 : y0, yhi = y0 + g->k_h > g->in_h ? g->in_h : y0 + g->k_h;
    for (int32_t ox = 0; ox < g->out_w; ++ox) {
      const int32_t x0 = ox * g->stride_w - g->pad_left;
      const int32_t xlo = x0 < 0 ? 0 : x0, xhi = x0 + g->k_w > g->in_w ? g->in_w : x0 + g->k_w;
      const int32_t count = (yhi - ylo) * (xhi - xlo);
      int8_t *op = out + ((int64_t)oy * g->out_w + ox) * c;
      for (int32_t ch = 0; ch < c; ++ch) {
        int32_t sum = 0;
        for (int32_t y = ylo; y < yhi; ++y)
          for (int32_t x = xlo; x < xhi; ++x) sum += in[((int64_t)y * g->in_w + x) * c + ch];
        int32_t avg = (sum >= 0 ? sum + count / 2 : sum - count / 2) / count;
        op[ch] = (int8_t)(avg < act_min ? act_min : (avg > act_max ? act_max : avg));
      }
    }
  }
  return WRNN_OK;
}

int wrnn_lut_s8(const int8_t *in, int32_t n, const int8_t *table, int8_t *out) {
  if (!in || !table || !out) return WRNN_ENULL;
  if (n <= 0) return WRNN_EDIM;
#ifdef WRNN_MVE
  /* in + 128 as a byte offset is in ^ 0x80; a gather load does 16 lookups */
  for (int32_t i = 0; i < n; i += 16) {
    const mve_pred16_t p = vctp8q(n - i);
    const uint8x16_t idx = veorq_u8(vreinterpretq_u8_s8(vldrbq_z_s8(in + i, p)), vdupq_n_u8(0x80));
    vstrbq_p_s8(out + i, vldrbq_gather_offset_z_s8(table, idx, p), p);
  }
#else
  for (int32_t i = 0; i < n; ++i) out[i] = table[in[i] + 128];
#endif
  return WRNN_OK;
}

int wrnn_mul_s8(const int8_t *x, int32_t pixels, int32_t c, const int8_t *s, int32_t x_zp, int32_t s_zp,
                int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out) {
  if (!x || !s || !out) return WRNN_ENULL;
  if (pixels <= 0 || c <= 0) return WRNN_EDIM;
  if (!check_zp(x_zp) || !check_zp(s_zp) || !check_zp(out_zp) || !check_clamp(act_min, act_max) ||
      !check_shifts(&shift, 1))
    return WRNN_EQUANT;
#ifdef WRNN_MVE
  const int32x4_t mv = vdupq_n_s32(mult), sv = vdupq_n_s32(shift);
  for (int32_t p = 0; p < pixels; ++p) {
    const int8_t *xp = x + (int64_t)p * c;
    int8_t *op = out + (int64_t)p * c;
    for (int32_t ch = 0; ch < c; ch += 4) {
      const mve_pred16_t pr = vctp32q(c - ch);
      const int32x4_t xv = vsubq_n_s32(vldrbq_z_s32(xp + ch, pr), x_zp);
      const int32x4_t sc = vsubq_n_s32(vldrbq_z_s32(s + ch, pr), s_zp);
      vstrbq_p_s32(op + ch, rq_vec(vmulq_s32(xv, sc), mv, sv, out_zp, act_min, act_max), pr);
    }
  }
#else
  for (int32_t p = 0; p < pixels; ++p)
    for (int32_t ch = 0; ch < c; ++ch) {
      const int32_t prod = (x[(int64_t)p * c + ch] - x_zp) * (s[ch] - s_zp);
      out[(int64_t)p * c + ch] = (int8_t)wrnn_requant(prod, mult, shift, out_zp, act_min, act_max);
    }
#endif
  return WRNN_OK;
}

int wrnn_add_s8(const int8_t *a, const int8_t *b, int32_t n, const wrnn_add_params *q, int8_t *out) {
  if (!a || !b || !q || !out) return WRNN_ENULL;
  if (n <= 0) return WRNN_EDIM;
  const int32_t shifts[3] = {q->a_shift, q->b_shift, q->out_shift};
  if (!check_zp(q->a_zp) || !check_zp(q->b_zp) || !check_zp(q->out_zp) || !check_clamp(q->act_min, q->act_max) ||
      !check_shifts(shifts, 3) || q->left_shift < 0 || q->left_shift > 23)
    return WRNN_EQUANT;
#ifdef WRNN_MVE
  const int32x4_t am = vdupq_n_s32(q->a_mult), as = vdupq_n_s32(q->a_shift);
  const int32x4_t bm = vdupq_n_s32(q->b_mult), bs = vdupq_n_s32(q->b_shift);
  const int32x4_t om = vdupq_n_s32(q->out_mult), os = vdupq_n_s32(q->out_shift);
  const int32x4_t ls = vdupq_n_s32(q->left_shift);
  for (int32_t i = 0; i < n; i += 4) {
    const mve_pred16_t p = vctp32q(n - i);
    const int32x4_t av = vshlq_s32(vsubq_n_s32(vldrbq_z_s32(a + i, p), q->a_zp), ls);
    const int32x4_t bv = vshlq_s32(vsubq_n_s32(vldrbq_z_s32(b + i, p), q->b_zp), ls);
    const int32x4_t sum = vaddq_s32(rq_scale_vec(av, am, as), rq_scale_vec(bv, bm, bs));
    vstrbq_p_s32(out + i, rq_vec(sum, om, os, q->out_zp, q->act_min, q->act_max), p);
  }
#else
  for (int32_t i = 0; i < n; ++i) {
    const int32_t av = wrnn_scale((a[i] - q->a_zp) * (1 << q->left_shift), q->a_mult, q->a_shift);
    const int32_t bv = wrnn_scale((b[i] - q->b_zp) * (1 << q->left_shift), q->b_mult, q->b_shift);
    out[i] = (int8_t)wrnn_requant(wadd(av, bv), q->out_mult, q->out_shift, q->out_zp, q->act_min, q->act_max);
  }
#endif
  return WRNN_OK;
}
