/* A 2x2, stride-2 max pool over channels-last float32 maps (N, H, W, C), H and W even.
 * It picks aten's element: the window in row-major order, a strictly greater value or a NaN
 * taking the place, and keeps that element's place (0..3) in a byte per output. Its gradient
 * writes every input once, 0.0f + the output's gradient at that place (aten adds it to a
 * zero-filled map: -0.0 comes back +0.0) and 0.0f elsewhere. With relu, the output is then
 * torch.relu's (NaN kept, -0.0 kept) and a window whose output it zeroes keeps no place (4):
 * ReLU's gradient there is 0. AVX-512: 16 channels a step; output rows split among threads. */
#include <stdint.h>

#include "kernels.h"

static inline __m512 take(__m512 best, __m512i *place, __m512 value, int at) {
    __mmask16 wins = _mm512_cmp_ps_mask(value, best, _CMP_GT_OQ)
                   | _mm512_cmp_ps_mask(value, value, _CMP_UNORD_Q);
    *place = _mm512_mask_mov_epi32(*place, wins, _mm512_set1_epi32(at));
    return _mm512_mask_mov_ps(best, wins, value);
}

/* output rows [first, last) of all n images, numbered image by image */
static void forward_rows(const float *x, float *y, int8_t *places, long first, long last,
                         long w, long channels, int relu) {
    long ow = w / 2, row = w * channels;
    const __m512 zero = _mm512_setzero_ps();
    for (long r = first; r < last; r++) {
        const float *top = x + 2 * r * row, *bottom = top + row;
        float *out = y + r * ow * channels;
        int8_t *at = places + r * ow * channels;
        for (long j = 0; j < ow; j++)
            for (long c = 0; c < channels; c += 16) {
                __mmask16 m = lanes(c, channels);
                long left = 2 * j * channels + c, right = left + channels;
                __m512i place = _mm512_setzero_si512();
                __m512 best = _mm512_maskz_loadu_ps(m, top + left);
                best = take(best, &place, _mm512_maskz_loadu_ps(m, top + right), 1);
                best = take(best, &place, _mm512_maskz_loadu_ps(m, bottom + left), 2);
                best = take(best, &place, _mm512_maskz_loadu_ps(m, bottom + right), 3);
                if (relu) {
                    __mmask16 zeroed = _mm512_cmp_ps_mask(best, zero, _CMP_LE_OQ);
                    place = _mm512_mask_mov_epi32(place, zeroed, _mm512_set1_epi32(4));
                    best = _mm512_max_ps(zero, best);  /* as torch's: 0 vs -0.0 gives -0.0 */
                }
                _mm512_mask_storeu_ps(out + j * channels + c, m, best);
                _mm512_mask_cvtepi32_storeu_epi8(at + j * channels + c, m, place);
            }
    }
}

static void backward_rows(const float *grad, const int8_t *places, float *grad_x, long first,
                          long last, long w, long channels) {
    long ow = w / 2, row = w * channels;
    const __m512 zero = _mm512_setzero_ps();
    for (long r = first; r < last; r++) {
        float *top = grad_x + 2 * r * row, *bottom = top + row;
        const float *g = grad + r * ow * channels;
        const int8_t *at = places + r * ow * channels;
        for (long j = 0; j < ow; j++)
            for (long c = 0; c < channels; c += 16) {
                __mmask16 m = lanes(c, channels);
                long left = 2 * j * channels + c, right = left + channels;
                __m512 value = _mm512_add_ps(
                    _mm512_maskz_loadu_ps(m, g + j * channels + c), zero);
                __m512i place = _mm512_cvtepi8_epi32(
                    _mm_maskz_loadu_epi8(m, at + j * channels + c));
#define PLACE(k) _mm512_maskz_mov_ps( \
        _mm512_cmpeq_epi32_mask(place, _mm512_set1_epi32(k)), value)
                _mm512_mask_storeu_ps(top + left, m, PLACE(0));
                _mm512_mask_storeu_ps(top + right, m, PLACE(1));
                _mm512_mask_storeu_ps(bottom + left, m, PLACE(2));
                _mm512_mask_storeu_ps(bottom + right, m, PLACE(3));
#undef PLACE
            }
    }
}

void max_pool_forward(const float *x, float *y, int8_t *places, long n, long h, long w,
                      long channels, int relu, int threads) {
    SPLIT(threads, n * (h / 2), forward_rows(x, y, places, first, last, w, channels, relu));
}

void max_pool_backward(const float *grad, const int8_t *places, float *grad_x, long n, long h,
                       long w, long channels, int threads) {
    SPLIT(threads, n * (h / 2),
          backward_rows(grad, places, grad_x, first, last, w, channels));
}
