/* A grouped conv whose groups each read one input channel (a pack's first conv on one-channel
 * images): float32, channels-last, stride 1, zero padding, members <= 16. Input (N, H, W, K),
 * output (N, OH, OW, K * per); channel c reads input channel c / per. Weights come as
 * (KH * KW, CP): tap by tap, channels padded to CP, a multiple of 16, with zeros.
 * Each image is first spread over CP channels (c takes its member's pixel) with its padding,
 * in a buffer that stays in the cache; then every tap is 16 channels' multiply-add.
 * AVX-512; images split among threads. */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

typedef struct {
    long members, per, channels, cp, h, w, kh, kw, ph, pw, hp, wp, oh, ow;
} Shape;

static Shape shape_of(long members, long per, long h, long w, long kh, long kw, long ph,
                      long pw) {
    Shape s = {members, per, members * per, (members * per + 15) / 16 * 16, h, w, kh, kw, ph,
               pw, h + 2 * ph, w + 2 * pw, 0, 0};
    s.oh = s.hp - kh + 1;
    s.ow = s.wp - kw + 1;
    return s;
}

/* the padded image, channel c holding member c / per's pixel; the border stays as it was */
static void spread(const float *x, float *xs, const int *member, const Shape *s) {
    __mmask16 in = lanes(0, s->members);
    for (long i = 0; i < s->h; i++)
        for (long j = 0; j < s->w; j++) {
            __m512 pixel = _mm512_maskz_loadu_ps(in, x + (i * s->w + j) * s->members);
            float *to = xs + ((i + s->ph) * s->wp + j + s->pw) * s->cp;
            for (long q = 0; q < s->cp; q += 16)
                _mm512_store_ps(to + q, _mm512_permutexvar_ps(
                    _mm512_load_si512(member + q), pixel));
        }
}

/* a buffer for the spread image (its border zero) and then each channel's member */
static float *spread_buffer(const Shape *s, int **member) {
    long size = s->hp * s->wp * s->cp;
    float *xs = aligned_alloc(64, (size + s->cp) * sizeof(float));
    memset(xs, 0, size * sizeof(float));
    *member = (int *)(xs + size);
    for (long c = 0; c < s->cp; c++) (*member)[c] = (int)(c < s->channels ? c / s->per : 0);
    return xs;
}

/* `count` outputs of one row, 16 channels: each input column loaded once per kernel row */
static inline __attribute__((always_inline)) void forward_block(
    const float *xs, const float *wt, __m512 bias, float *out, __mmask16 m, const Shape *s,
    long kh, long kw, long count) {
    __m512 acc[8], column[8 + 7];
    for (long r = 0; r < count; r++) acc[r] = bias;
    for (long u = 0; u < kh; u++) {
        for (long c = 0; c < count + kw - 1; c++)
            column[c] = _mm512_load_ps(xs + (u * s->wp + c) * s->cp);
        for (long v = 0; v < kw; v++) {
            __m512 weight = _mm512_load_ps(wt + (u * kw + v) * s->cp);
            for (long r = 0; r < count; r++)
                acc[r] = _mm512_fmadd_ps(weight, column[r + v], acc[r]);
        }
    }
    for (long r = 0; r < count; r++) _mm512_mask_storeu_ps(out + r * s->channels, m, acc[r]);
}

static inline __attribute__((always_inline)) void forward_image(
    const float *xs, const float *wt, const float *bias, float *y, const Shape *s, long kh,
    long kw) {
    for (long i = 0; i < s->oh; i++)
        for (long q = 0; q < s->cp; q += 16) {
            __mmask16 m = lanes(q, s->channels);
            __m512 b = _mm512_load_ps(bias + q);
            const float *from = xs + i * s->wp * s->cp + q;
            float *out = y + i * s->ow * s->channels + q;
            long j = 0;
            for (; j + 8 <= s->ow; j += 8)
                forward_block(from + j * s->cp, wt + q, b, out + j * s->channels, m, s, kh, kw, 8);
            for (; j + 4 <= s->ow; j += 4)
                forward_block(from + j * s->cp, wt + q, b, out + j * s->channels, m, s, kh, kw, 4);
            for (; j < s->ow; j++)
                forward_block(from + j * s->cp, wt + q, b, out + j * s->channels, m, s, kh, kw, 1);
        }
}

/* one image's weight and bias gradients, added to acc: (KH * KW + 1, CP), the bias's last */
static inline __attribute__((always_inline)) void backward_image(
    const float *xs, const float *g, float *acc, const Shape *s, long kh, long kw) {
    long channels = s->channels, cp = s->cp;
    for (long i = 0; i < s->oh; i++)
        for (long q = 0; q < cp; q += 16) {
            __mmask16 m = lanes(q, channels);
            const float *grad = g + i * s->ow * channels + q;
            __m512 sum = _mm512_setzero_ps();
            for (long j = 0; j < s->ow; j++)
                sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(m, grad + j * channels));
            float *bias = acc + kh * kw * cp + q;
            _mm512_store_ps(bias, _mm512_add_ps(_mm512_load_ps(bias), sum));
            for (long u = 0; u < kh; u++) {
                const float *row = xs + (i + u) * s->wp * cp + q;
                __m512 even[7], odd[7];  /* two chains per tap: half the wait on each FMA */
                for (long v = 0; v < kw; v++) even[v] = odd[v] = _mm512_setzero_ps();
                long j = 0;
                for (; j + 2 <= s->ow; j += 2) {
                    __m512 g0 = _mm512_maskz_loadu_ps(m, grad + j * channels);
                    __m512 g1 = _mm512_maskz_loadu_ps(m, grad + (j + 1) * channels);
                    for (long v = 0; v < kw; v++) {
                        const float *at = row + (j + v) * cp;
                        even[v] = _mm512_fmadd_ps(g0, _mm512_load_ps(at), even[v]);
                        odd[v] = _mm512_fmadd_ps(g1, _mm512_load_ps(at + cp), odd[v]);
                    }
                }
                for (; j < s->ow; j++) {
                    __m512 g0 = _mm512_maskz_loadu_ps(m, grad + j * channels);
                    for (long v = 0; v < kw; v++)
                        even[v] = _mm512_fmadd_ps(g0, _mm512_load_ps(row + (j + v) * cp), even[v]);
                }
                for (long v = 0; v < kw; v++) {
                    float *to = acc + (u * kw + v) * cp + q;
                    _mm512_store_ps(to, _mm512_add_ps(_mm512_load_ps(to),
                                                      _mm512_add_ps(even[v], odd[v])));
                }
            }
        }
}

/* kernels of 3x3 and 5x5 get loops the compiler unrolls; others (up to 7 wide) the loops */
static void forward_images(const float *x, const float *wt, const float *bias, float *y,
                           const Shape *s, long first, long last) {
    int *member;
    float *xs = spread_buffer(s, &member);
    for (long b = first; b < last; b++) {
        spread(x + b * s->h * s->w * s->members, xs, member, s);
        float *out = y + b * s->oh * s->ow * s->channels;
        if (s->kh == 5 && s->kw == 5) forward_image(xs, wt, bias, out, s, 5, 5);
        else if (s->kh == 3 && s->kw == 3) forward_image(xs, wt, bias, out, s, 3, 3);
        else forward_image(xs, wt, bias, out, s, s->kh, s->kw);
    }
    free(xs);
}

static void backward_images(const float *x, const float *gy, float *acc, const Shape *s,
                            long first, long last) {
    int *member;
    float *xs = spread_buffer(s, &member);
    for (long b = first; b < last; b++) {
        spread(x + b * s->h * s->w * s->members, xs, member, s);
        const float *g = gy + b * s->oh * s->ow * s->channels;
        if (s->kh == 5 && s->kw == 5) backward_image(xs, g, acc, s, 5, 5);
        else if (s->kh == 3 && s->kw == 3) backward_image(xs, g, acc, s, 3, 3);
        else backward_image(xs, g, acc, s, s->kh, s->kw);
    }
    free(xs);
}

void one_input_conv_forward(const float *x, const float *wt, const float *bias, float *y,
                            long n, long members, long per, long h, long w, long kh, long kw,
                            long ph, long pw, int threads) {
    Shape s = shape_of(members, per, h, w, kh, kw, ph, pw);
    SPLIT(threads, n, forward_images(x, wt, bias, y, &s, first, last));
}

/* parts: (threads, KH * KW + 1, CP), each thread's sums over its images */
void one_input_conv_backward(const float *x, const float *gy, float *parts, long n,
                             long members, long per, long h, long w, long kh, long kw, long ph,
                             long pw, int threads) {
    Shape s = shape_of(members, per, h, w, kh, kw, ph, pw);
    long size = (kh * kw + 1) * s.cp;
    memset(parts, 0, threads * size * sizeof(float));  /* OpenMP may start fewer threads */
    SPLIT(threads, n, backward_images(x, gy, parts + part * size, &s, first, last));
}
