/* The input gradients of a grouped conv of at most 16 input and 16 output channels a group
 * (a small network's pack): float32, channels-last, stride 1, zero padding. Output gradients
 * (N, OH, OW, G * CO), input gradients (N, H, W, G * CI). Weights come as (G, KH, KW, CI, 16),
 * a group's output channels padded with zeros. For each input pixel and group, CI vectors
 * over the output channels take the products of the output gradients and the weights; their
 * lanes are summed at the end, 8 or 16 sums at once. oneDNN's forward and weight gradients
 * ran as fast as this file's did, and are kept (benchmarks/RESULTS.md). AVX-512; images split
 * among threads, a group's weights in the L1 cache. */
#include "kernels.h"

typedef struct {
    long groups, ci, co, h, w, kh, kw, ph, pw, oh, ow, cin, cout;
    __mmask16 m;  /* a group's output channels */
} Shape;

static Shape shape_of(long groups, long ci, long co, long h, long w, long kh, long kw,
                      long ph, long pw) {
    Shape s = {groups, ci, co, h, w, kh, kw, ph, pw, h + 2 * ph - kh + 1, w + 2 * pw - kw + 1,
               groups * ci, groups * co, (__mmask16)((1u << co) - 1u)};
    return s;
}

/* lanes 0..7: the sums of a[0..7]'s 16 lanes each */
static inline __m512 sum8(const __m512 *a) {
    __m512 r[4];
    for (int k = 0; k < 4; k++)
        r[k] = _mm512_add_ps(_mm512_unpacklo_ps(a[2 * k], a[2 * k + 1]),
                             _mm512_unpackhi_ps(a[2 * k], a[2 * k + 1]));
    __m512 s[2];
    for (int k = 0; k < 2; k++) {
        __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(r[2 * k]), _mm512_castps_pd(r[2 * k + 1]));
        __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(r[2 * k]), _mm512_castps_pd(r[2 * k + 1]));
        s[k] = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
    }
    __m512 v = _mm512_add_ps(_mm512_shuffle_f32x4(s[0], s[1], 0x88),
                             _mm512_shuffle_f32x4(s[0], s[1], 0xDD));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, 0xB1));  /* blocks 0 and 2 hold the sums */
    const __m512i sums = _mm512_setr_epi32(0, 1, 2, 3, 8, 9, 10, 11, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(sums, v);
}

/* lane k: the sum of a[k]'s 16 lanes (a holds 16 vectors) */
static inline __m512 sum16(const __m512 *a) {
    return _mm512_shuffle_f32x4(sum8(a), sum8(a + 8), 0x44);
}

/* one input pixel's gradients in one group: its CI vectors summed lane by lane */
static inline __attribute__((always_inline)) void input_grad_pixel(
    const float *grad, const float *wv, float *to, const Shape *s, long ci, long u_first,
    long u_last, long v_first, long v_last) {
    __m512 acc[16];
    for (long c = 0; c < 16; c++) acc[c] = _mm512_setzero_ps();
    for (long u = u_first; u <= u_last; u++) {
        const float *gu = grad - u * s->ow * s->cout;
        const float *weights = wv + u * s->kw * ci * 16;
        for (long v = v_first; v <= v_last; v++) {
            __m512 gv = _mm512_maskz_loadu_ps(s->m, gu - v * s->cout);
            for (long c = 0; c < ci; c++)
                acc[c] = _mm512_fmadd_ps(gv, _mm512_load_ps(weights + (v * ci + c) * 16), acc[c]);
        }
    }
    if (ci <= 8) _mm512_mask_storeu_ps(to, lanes(0, ci), sum8(acc));
    else _mm512_mask_storeu_ps(to, lanes(0, ci), sum16(acc));
}

static inline __attribute__((always_inline)) void input_grad_image(
    const float *g_img, const float *wt, float *gx_img, const Shape *s, long ci) {
    for (long g = 0; g < s->groups; g++)
        for (long i = 0; i < s->h; i++) {
            long pi = i + s->ph;  /* row in the padded image: output rows pi - u */
            long u_first = pi - (s->oh - 1) > 0 ? pi - (s->oh - 1) : 0;
            long u_last = pi < s->kh - 1 ? pi : s->kh - 1;
            for (long j = 0; j < s->w; j++) {
                long pj = j + s->pw;
                long v_first = pj - (s->ow - 1) > 0 ? pj - (s->ow - 1) : 0;
                long v_last = pj < s->kw - 1 ? pj : s->kw - 1;
                input_grad_pixel(g_img + (pi * s->ow + pj) * s->cout + g * s->co,
                                 wt + g * s->kh * s->kw * ci * 16,
                                 gx_img + (i * s->w + j) * s->cin + g * ci, s, ci,
                                 u_first, u_last, v_first, v_last);
            }
        }
}

/* the input channels a group has, as a constant where the compiler unrolls for it */
#define BY_CHANNELS(ci, call) \
    switch (ci) { case 6: { const long ci_ = 6; call; break; } \
                  case 16: { const long ci_ = 16; call; break; } \
                  default: { const long ci_ = (ci); call; } }

static void input_grad_images(const float *gy, const float *wt, float *gx, const Shape *s,
                              long first, long last) {
    for (long b = first; b < last; b++) {
        const float *g_img = gy + b * s->oh * s->ow * s->cout;
        float *gx_img = gx + b * s->h * s->w * s->cin;
        BY_CHANNELS(s->ci, input_grad_image(g_img, wt, gx_img, s, ci_));
    }
}

void grouped_conv_input_grad(const float *gy, const float *wt, float *gx, long n, long groups,
                             long ci, long co, long h, long w, long kh, long kw, long ph,
                             long pw, int threads) {
    Shape s = shape_of(groups, ci, co, h, w, kh, kw, ph, pw);
    SPLIT(threads, n, input_grad_images(gy, wt, gx, &s, first, last));
}
