/* wrnn: wordrec's int8 neural-network kernels for the Cortex-M55 (Helium/MVE) with a portable scalar path.
 *
 * Build: wrnn.c with arm-none-eabi-gcc -mcpu=cortex-m55 selects the Helium path (__ARM_FEATURE_MVE);
 * -DWRNN_SCALAR, or any compiler without MVE, selects the scalar path. Both paths give bit-identical outputs.
 *
 * LAYOUTS (all tensors contiguous, batch 1, no padding between rows)
 *   activations  NHWC int8: element (y, x, c) at (y * W + x) * C + c
 *   conv weights OHWI int8: element (o, ky, kx, i) at ((o * KH + ky) * KW + kx) * CIN + i
 *   depthwise    HWC  int8 (1 x KH x KW x C): element (ky, kx, c) at (ky * KW + kx) * C + c
 *   FC weights   [N][K] int8 row-major (one row per output feature); FC input [M][K], output [M][N]
 *   bias, mult, shift: int32 [out channels]; bias may be NULL (= zeros)
 *
 * QUANTIZATION (TFLite convention)
 *   real = scale * (q - zero_point). Activations: int8, asymmetric (zero point in [-128, 127]).
 *   Weights: int8, symmetric per output channel (zero point 0). Bias: int32 with scale in_scale * w_scale[c].
 *   Accumulator: acc = bias[c] + sum (x - in_zp) * w, computed modulo 2^32 (wrapping int32, as the hardware's
 *   VMLADAVA does; any summation order then gives the same bits). The kernels fold the input zero point:
 *   acc = (bias[c] - in_zp * sum(w[c])) + sum x * w, the bracket computed once per output channel per call.
 *
 * REQUANTIZATION, exactly (wrnn_requant below is the normative scalar definition)
 *   mult in Q31 (any int32; quantize_multiplier gives [2^30, 2^31 - 1] or 0), shift in [-31, 31]:
 *     r = max(-shift, 1), l = shift + r (>= 0)
 *     a = saturate_int32(acc * 2^l)                                    left shift, saturating
 *     h = DMULH(a, mult) = INT32_MAX if a == mult == INT32_MIN,
 *         else floor(a * mult / 2^31)                                  (64-bit product; the Arm VQDMULH
 *                                                                       instruction: no rounding here)
 *     d = floor((h + 2^(r-1)) / 2^r)                                   (VRSHL by -r: rounding half UP)
 *       Since floor(floor(z) / 2^r + 1/2) = floor(z / 2^r + 1/2), d is ONE rounding of acc * mult *
 *       2^(shift - 31) to the nearest integer, ties towards +inf (absent saturation). This is the
 *       single-rounding requantization (CMSIS-NN's CMSIS_NN_USE_SINGLE_ROUNDING), not TFLite's default
 *       double rounding (rounding high multiply, then a rounding divide): with one rounding the result is
 *       the nearest integer to the exact product, as float requantization (onnxruntime's) gives, so errors
 *       do not compound through a network (crnn_lite vs onnxruntime: text agreement 98.6 % -> 99.9 %).
 *     out = clamp(d + out_zp, act_min, act_max)                        (d + out_zp in 64 bits)
 *   real_scale = mult * 2^(shift - 31). -128 <= act_min <= act_max <= 127.
 *
 * ERRORS: every function returns WRNN_OK (0) on success or a negative code; on an error nothing is written.
 *   WRNN_ENULL  a required pointer is NULL
 *   WRNN_EDIM   a size is <= 0, or the geometry is inconsistent (e.g. out_h does not fit in_h)
 *   WRNN_EQUANT a zero point, clamp range or shift is out of its documented range
 * No kernel allocates memory; scratch buffers are the caller's, 4-byte aligned, size from *_scratch_bytes (the
 * same number on both paths, so a host can size a device's buffers). Stack: the Helium GEMM core (conv1x1, conv, FC,
 * matmul and the float-output conv1x1/conv) keeps 512 bytes of running sums on the stack; wrnn_conv_s8 uses ~940
 * bytes, and the deepest call, wrnn_dwconv_s8_f32, ~2 KB (1 KB of float weights, 64 taps x 4 channels, plus the
 * tile loop's frame) (gcc 12 -O3, -fstack-usage).
 * Buffers must not overlap, except where a function says otherwise.
 */
#ifndef WRNN_H
#define WRNN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WRNN_OK 0
#define WRNN_ENULL (-1)
#define WRNN_EDIM (-2)
#define WRNN_EQUANT (-3)

/* Output requantization shared by the conv/FC/requantize kernels. */
typedef struct {
  int32_t in_zp;   /* input zero point, [-128, 127] */
  int32_t out_zp;  /* output zero point, [-128, 127] */
  int32_t act_min; /* output clamp, -128 <= act_min <= act_max <= 127 */
  int32_t act_max;
} wrnn_quant;

/* Geometry of a k x k window over an NHWC input. Padding is implicit: out_h/out_w and pad_top/pad_left place
 * the window; positions outside the input read as the input zero point (so contribute 0 to a conv) and are
 * excluded from an average pool's count. Requires every window to overlap the input at least partially. */
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t out_h, out_w, out_c; /* depthwise and pooling: out_c == in_c */
  int32_t k_h, k_w;
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left;   /* >= 0 */
} wrnn_geom;

/* Scalar requantization of one accumulator: the normative definition of the arithmetic above. */
int32_t wrnn_requant(int32_t acc, int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max);
/* The scaling alone: round(DMULH(sat(acc * 2^l), mult) / 2^r), no zero point, no clamp. */
int32_t wrnn_scale(int32_t acc, int32_t mult, int32_t shift);

/* out[i] = requant(acc[i], mult[i % channels], shift[i % channels], ...) for i < n. */
int wrnn_requantize_s32(const int32_t *acc, int32_t n, int32_t channels, const int32_t *mult, const int32_t *shift,
                        int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out);

/* 1x1 convolution, stride 1, over `pixels` NHWC pixels: out[p][o] = requant(bias[o] + sum_i (in[p][i] - in_zp) *
 * w[o][i]). in [pixels][in_c], w [out_c][in_c], out [pixels][out_c]. No scratch. */
int wrnn_conv1x1_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c,
                    const int32_t *bias, const int32_t *mult, const int32_t *shift, const wrnn_quant *q, int8_t *out);

/* Fully connected: out[m][n] = requant(bias[n] + sum_k (in[m][k] - in_zp) * w[n][k]) with per-n mult/shift.
 * in [M][K], w [N][K], out [M][N]. Same arithmetic as conv1x1 (M pixels, K input channels). */
int wrnn_fc_s8(const int8_t *in, int32_t m, int32_t k, const int8_t *w, int32_t n, const int32_t *bias,
               const int32_t *mult, const int32_t *shift, const wrnn_quant *q, int8_t *out);

/* k_h x k_w convolution with stride and zero-point padding. w OHWI [out_c][k_h][k_w][in_c].
 * scratch: wrnn_conv_s8_scratch_bytes(g) bytes, 4-byte aligned: folded bias (4 * out_c) + im2col of `cols` pixels
 * of K = k_h * k_w * in_c bytes each (rounded up to 4), cols = 32 for K <= 128, 16 for K <= 512, else 8: more
 * pixels per GEMM call where a column is short (a 3x3 stem over 3 channels: 0.86 -> 1.03 MACs/instruction). */
int32_t wrnn_conv_s8_scratch_bytes(const wrnn_geom *g);
int wrnn_conv_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                 const wrnn_geom *g, const wrnn_quant *q, void *scratch, int8_t *out);

/* Float-output variants (a QDQ graph whose conv output is not quantized: DQ -> conv -> float GELU / residual add):
 * out[p][o] = (float)(sum_i (in[p][i] - in_zp) * w[o][i]) * scale[o] + bias[o] (bias may be NULL), each operation
 * rounded separately (no FMA), NHWC float output. scale[o] = in_scale * w_scale[o]; the float bias is added in
 * float, as onnxruntime does for a DQ -> Conv graph. conv1x1 also serves FC (pixels = M rows).
 * scratch: wrnn_conv1x1_s8_f32_scratch_bytes(out_c) = 4 * out_c; the k x k variant takes
 * wrnn_conv_s8_scratch_bytes(g) (same layout as wrnn_conv_s8). */
int32_t wrnn_conv1x1_s8_f32_scratch_bytes(int32_t out_c);
int wrnn_conv1x1_s8_f32(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c, int32_t in_zp,
                        const float *scale, const float *bias, void *scratch, float *out);
int wrnn_conv_s8_f32(const int8_t *in, const int8_t *w, int32_t in_zp, const float *scale, const float *bias,
                     const wrnn_geom *g, void *scratch, float *out);

/* Depthwise, channel multiplier 1, per-channel input zero points in_zp[c] (int32, each in [-128, 127]), float
 * output: out[y][x][c] = (float)(sum over in-bounds taps of (in - in_zp[c]) * w[ky][kx][c]) * scale[c] + bias[c]
 * (bias may be NULL), rounded as the float-output GEMM above. w HWC. Padding contributes 0 (as a tap at the zero
 * point would). |acc| < 2^31 for k_h * k_w < 66000. No scratch. Helium, k_h * k_w <= 64: the sums are accumulated
 * in float32 by VFMA, exactly (every partial sum is an integer below 2^24), so the output bits are the scalar
 * path's; 4 channels x 4 pixels per assembly tile for 3-wide kernels, the zero point folded into a per-row
 * correction: 1.03-1.15 MACs per executed instruction on ppocrv6_small's 3x3 layers (C = 96..384), 0.49 on its
 * 1x7 (see docs/int8_kernels.md). Larger windows: int32 lanes, x - zp per tap. */
int wrnn_dwconv_s8_f32(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale, const float *bias,
                       const wrnn_geom *g, float *out);

/* Per-channel quantize of a float tensor, or of the sum of two (a residual add feeding a quantized conv), channel
 * last: out[p][c] = clamp(rint(x / scale[c]) + zp[c], -128, 127) with x = a[p][c] (+ b[p][c]), the + zp and the
 * clamp in float (min first: NaN -> 127), rint ties to even: the graph's QuantizeLinear as TVM's C legalizes it.
 * The quotient without a divide (Helium has none): y = clamp(x * recip[c], +-1024), then y + fma(-y, s, x) *
 * recip[c] by two fused multiply-adds; recip[c] = 1 / scale[c] rounded to float. That is x / s correctly rounded
 * wherever it matters (identical on 1.4e8 random pairs with normal x and |x / s| <= 4096; beyond, the clamp
 * decides). b may be NULL; relu != 0 takes max(x, 0) first (NaN -> 0; only without b, else WRNN_EDIM). zp[c]
 * integral in [-128, 127], scale[c] > 0, else WRNN_EQUANT. Helium: one 4-channel block down all pixels. */
int wrnn_quantize_f32(const float *a, const float *b, int32_t relu, int32_t pixels, int32_t c, const float *scale,
                      const float *recip, const float *zp, int8_t *out);

/* A residual add of two int8 maps (NHWC, C last) with its output quantize, as TVM's fused DQ -> add -> Q loop
 * computes it: out[p][c] = Q(((float)(a - a_zp) * a_scale) + ((float)(b - b_zp) * b_scale)), each operation
 * rounded to float32 (no FMA), Q = wrnn_quantize_f32's per-channel quantize (q_scale, q_recip, q_zp [C]). The
 * compiler passes a_scale / b_scale as the float32 that TVM's C literal of the graph's scale denotes (7
 * significant digits, "%.6e"), so the call is bit for bit the loop it replaces. ~6 instructions per element on
 * Helium against TVM's ~30 (a divide each). */
int wrnn_add_dq_s8(const int8_t *a, const int8_t *b, int32_t pixels, int32_t c, int32_t a_zp, float a_scale,
                   int32_t b_zp, float b_scale, const float *q_scale, const float *q_recip, const float *q_zp,
                   int8_t *out);

/* A float-output kernel whose result is quantized at once, in bands, so the float tensor between the two calls
 * (4 bytes per value) never exists: each band of the float output goes to scratch, then through the
 * wrnn_quantize_f32 arithmetic (relu optional) into out. Bit for bit the two calls' int8 output (the same
 * functions on the same values). conv1x1: bands of WRNN_BAND_FLOATS / out_c pixels; depthwise: one output row,
 * or wrnn_dwconv3x3_s8_q8's tiles when the call qualifies for them. scratch: the _scratch_bytes functions (4-byte
 * aligned). Errors as the two calls'. */
#define WRNN_BAND_FLOATS 8192 /* 32 KB of float band: the 1x1 band fits beside ppocrv6_small's 384 KB arena */
int32_t wrnn_conv1x1_s8_q8_scratch_bytes(int32_t pixels, int32_t out_c);
int wrnn_conv1x1_s8_q8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c, int32_t in_zp,
                       const float *scale, const float *bias, int32_t relu, const float *q_scale,
                       const float *q_recip, const float *q_zp, void *scratch, int8_t *out);
int32_t wrnn_dwconv_s8_q8_scratch_bytes(const wrnn_geom *g);
int wrnn_dwconv_s8_q8(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale, const float *bias,
                      const wrnn_geom *g, int32_t relu, const float *q_scale, const float *q_recip,
                      const float *q_zp, void *scratch, int8_t *out);

/* wrnn_dwconv_s8_q8 for a 3x3 window at column stride 1 (any row stride, padding), C a multiple of 4, out_w >= 4,
 * one output quantizer for all channels (q_scale, q_recip, q_zp each equal across C, as an activation's per-tensor
 * quantizer) and finite scale and bias with (2^19 max|scale| + max|bias|) * q_recip < 1.8e19: the same int8 as
 * wrnn_dwconv_s8_q8, in a scratch of 16 * 14 + 48 * (out_w + 2) bytes (not a float output row): per block of 4
 * channels the input rows a window reads are converted to float once into a ring of 3 rows, and assembly tiles of
 * 4 pixels x 4 channels quantize in registers. ppocrv6_small's 3x3 layers: 1.05-1.10 MACs per executed instruction
 * at stride 1, 0.90 at stride 2 down, the quantize included. Other shapes: WRNN_EDIM; other quantizers: WRNN_EQUANT
 * (wrnn_dwconv_s8_q8 takes them, and takes this path itself when they qualify). */
int32_t wrnn_dwconv3x3_s8_q8_scratch_bytes(const wrnn_geom *g);
int wrnn_dwconv3x3_s8_q8(const int8_t *in, const int8_t *w, const int32_t *in_zp, const float *scale,
                         const float *bias, const wrnn_geom *g, int32_t relu, const float *q_scale,
                         const float *q_recip, const float *q_zp, void *scratch, int8_t *out);

/* Mean of the dequantized values over windows that tile the input exactly (stride = window, no padding,
 * out_h * k_h == in_h, out_w * k_w == in_w, out_c == in_c): an SE block's spatial mean (one window = the map) or a
 * non-overlapping average pool, read from the int8 map instead of a float copy of it. NHWC in, NHWC float out:
 * out[oy][ox][c] = (sum over the window, rows then columns, of (float)(x - zp) * scale) / (k_h * k_w), each
 * product and sum rounded to float32 (no FMA), one division at the end. No scratch. */
int wrnn_mean_s8_f32(const int8_t *in, const wrnn_geom *g, float scale, int32_t zp, float *out);

/* GELU then quantize, n floats -> int8, by step table: the QDQ graph's Q(x * (erf(x / c) + 1)) is a step
 * function of x with at most 256 levels, so the level is looked up instead of computed. Table (int32 words,
 * built at compile time by wordrec.device.int8_ref.gelu_table from the graph's c, output scale and zero point):
 *   [0] bins (>= 2)  [1] x0 (float32 bits)  [2] inv, 1 / bin width (float32 bits, > 0)  [3] 0
 *   [4 .. 4 + bins)  thr[bins]: float32 threshold of the bin's one step (FLT_MAX: no step)
 *   then int8 lo[bins], hi[bins] (padded to a word): the level below thr and at/above it.
 * out = x >= thr[j] ? hi[j] : lo[j] with j = trunc(clamp((x - x0) * inv, 0, bins - 1)), each float operation
 * rounded to float32 (x - x0, then * inv; NaN -> bin 0). The bins are narrower than the closest two steps, so a
 * bin holds at most one; the levels are those of the exact function (float64 erf), i.e. correctly rounded.
 * Helium: ~11 instructions per 4 values (the erf polynomial it replaces took ~54). */
#define WRNN_GELU_HEADER 4
int wrnn_gelu_s8(const float *x, int32_t n, const int32_t *table, int8_t *out);

/* wrnn_conv1x1_s8_f32 followed by wrnn_gelu_s8, in one pass: out[p][o] = level(f[p][o]) with f the float value
 * wrnn_conv1x1_s8_f32 would store ((float)acc * scale[o] + bias[o], rounded as there) and level the lookup of
 * wrnn_gelu_s8 in gelu_table. The int8 output equals the two calls' bit for bit, without the pixels x out_c float
 * tensor between them (NNCF's conv -> GELU -> Q MLP blocks: 737 KB per block of ppocrv6_small at 48 x 320).
 * in [pixels][in_c], w [out_c][in_c], out [pixels][out_c] int8. scratch: wrnn_conv1x1_s8_f32_scratch_bytes(out_c). */
int wrnn_conv1x1_s8_gelu_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w, int32_t out_c,
                            int32_t in_zp, const float *scale, const float *bias, const int32_t *gelu_table,
                            void *scratch, int8_t *out);

/* A residual block's MLP pair in pixel bands: wrnn_conv1x1_s8_gelu_s8 (in -> hidden, in_zp, scale1, bias1,
 * gelu_table) then wrnn_conv1x1_s8 (hidden -> out, bias2, mult2, shift2, q2 with q2->in_zp the hidden map's zero
 * point), band by band, so the [pixels][hidden_c] map between them never exists whole (ppocrv6_small: 184,320 B
 * at every block, the arena's peak with the block's input and output). Bit for bit the two calls (the same
 * functions on pixel ranges; every output pixel reads only its own input pixel). Bands of WRNN_MLP_BAND_BYTES /
 * hidden_c pixels (whole 32-pixel GEMM chunks where that leaves one). scratch: wrnn_mlp_s8_scratch_bytes = 4 *
 * (hidden_c + out_c) (both layers' zero-point terms, folded once) + band * hidden_c. Errors as the two calls'. */
#define WRNN_MLP_BAND_BYTES 32768
int32_t wrnn_mlp_s8_scratch_bytes(int32_t pixels, int32_t hidden_c, int32_t out_c);
int wrnn_mlp_s8(const int8_t *in, int32_t pixels, int32_t in_c, const int8_t *w1, int32_t hidden_c, int32_t in_zp,
                const float *scale1, const float *bias1, const int32_t *gelu_table, const int8_t *w2, int32_t out_c,
                const int32_t *bias2, const int32_t *mult2, const int32_t *shift2, const wrnn_quant *q2,
                void *scratch, int8_t *out);

/* Depthwise k_h x k_w convolution, channel multiplier 1 (g->out_c == g->in_c). w HWC [k_h][k_w][c].
 * scratch: wrnn_dwconv_s8_scratch_bytes(g) bytes, 4-byte aligned: folded bias (4 * c), weights transposed to
 * [c][k_h * k_w], and k_h zero-point-padded input rows of ((ceil(out_w / 16) * 16 - 1) * stride_w + k_w) pixels
 * (the Helium path's row buffer; e.g. 3x3 over 80 x 128 channels: 37 KB). */
int32_t wrnn_dwconv_s8_scratch_bytes(const wrnn_geom *g);
int wrnn_dwconv_s8(const int8_t *in, const int8_t *w, const int32_t *bias, const int32_t *mult, const int32_t *shift,
                   const wrnn_geom *g, const wrnn_quant *q, void *scratch, int8_t *out);

/* Average pool (g->out_c == g->in_c; global pooling: k = input size, out 1x1). Input and output share scale and
 * zero point (TFLite). out = clamp(round(sum / count), act_min, act_max) where count is the number of window
 * positions inside the input and round is half away from zero: (sum +- count / 2) / count with C's truncating
 * division (+ for sum >= 0, - otherwise). Windows up to 2^23 positions. */
int wrnn_avgpool_s8(const int8_t *in, const wrnn_geom *g, int32_t act_min, int32_t act_max, int8_t *out);

/* Table lookup: out[i] = table[in[i] + 128]; in and out may be the same buffer. */
int wrnn_lut_s8(const int8_t *in, int32_t n, const int8_t *table, int8_t *out);

/* Broadcast multiply (SE block scale): out[p][c] = requant((x[p][c] - x_zp) * (s[c] - s_zp), mult, shift, out_zp,
 * act_min, act_max); x [pixels][c], s [c], one (mult, shift) for the tensor. */
int wrnn_mul_s8(const int8_t *x, int32_t pixels, int32_t c, const int8_t *s, int32_t x_zp, int32_t s_zp,
                int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max, int8_t *out);

/* Elementwise add with different input scales (TFLite's scheme), n elements:
 *   a' = wrnn_scale((a - a_zp) * 2^left_shift, a_mult, a_shift), likewise b' (left_shift in [0, 23]);
 *   out = clamp(wrnn_scale(a' + b' (wrapping), out_mult, out_shift) + out_zp, act_min, act_max).
 * a, b and out may be the same buffer. */
typedef struct {
  int32_t left_shift;
  int32_t a_zp, a_mult, a_shift;
  int32_t b_zp, b_mult, b_shift;
  int32_t out_zp, out_mult, out_shift;
  int32_t act_min, act_max;
} wrnn_add_params;
int wrnn_add_s8(const int8_t *a, const int8_t *b, int32_t n, const wrnn_add_params *p, int8_t *out);

/* Activation x activation (attention's Q.K^T; for A.V pass V transposed): out[i][j] = requant(sum_k (a[i][k] - a_zp) *
 * (b[j][k] - b_zp), mult, shift, out_zp, act_min, act_max); a [M][K], b [N][K] (rows of both along K), out [M][N],
 * one (mult, shift). scratch: wrnn_matmul_s8s8_scratch_bytes(m, n) = 4 * (M + 3N) bytes, 4-byte aligned. */
int32_t wrnn_matmul_s8s8_scratch_bytes(int32_t m, int32_t n);
int wrnn_matmul_s8s8(const int8_t *a, const int8_t *b, int32_t m, int32_t k, int32_t n, int32_t a_zp, int32_t b_zp,
                     int32_t mult, int32_t shift, int32_t out_zp, int32_t act_min, int32_t act_max, void *scratch,
                     int8_t *out);

/* Activation x activation with a float output (attention's Q.K^T in a QDQ graph: DQ(Q) @ DQ(K)^T -> softmax):
 * per batch h, out[h][i][j] = (float)(sum_k (a[h][i][k] - a_zp) * (b[h][j][k] - b_zp)) * scale, the int32 sum
 * wrapping, then one conversion and one multiply, each rounded to float32 (scale = a_scale * b_scale, rounded once
 * by the compiler). a [batch][M][K], b [batch][N][K], out [batch][M][N] float. The integer core of the GEMM.
 * scratch: wrnn_matmul_s8s8_f32_scratch_bytes(m, n) = 4 * (M + 2N) bytes, 4-byte aligned. */
int32_t wrnn_matmul_s8s8_f32_scratch_bytes(int32_t m, int32_t n);
int wrnn_matmul_s8s8_f32(const int8_t *a, const int8_t *b, int32_t batch, int32_t m, int32_t k, int32_t n,
                         int32_t a_zp, int32_t b_zp, float scale, void *scratch, float *out);

#ifdef __cplusplus
}
#endif
#endif /* WRNN_H */
