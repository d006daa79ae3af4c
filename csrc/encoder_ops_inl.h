// Body of the element-wise encoder epilogues; included (once each) by encoder_ops.cc and encoder_ops_avx2.cc,
// which compile it for different instruction sets. Everything here has internal linkage so the two copies
// never collide. The loops are written so GCC/Clang auto-vectorise them at -O3: no calls to libm in the hot
// loops (erf and exp are the polynomial approximations below), and reductions use 8 independent partial sums.
// No include guard on purpose.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "encoder_ops.h"

namespace {

// erf(x) for float: Eigen's rational approximation (odd/even polynomials, inputs clamped to [-4, 4], where
// erf is +-1 in float). Max absolute error ~4e-7 against double-precision erf.
inline float erf_approx(float x) {
  x = std::min(std::max(x, -4.0f), 4.0f);
  const float x2 = x * x;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * x;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return p / q;
}

// exp(x) for float (Cephes expf): x = n ln2 + r, |r| <= ln2/2, exp(r) by a degree-6 polynomial, times 2^n
// built in the exponent bits. Relative error ~2e-7. Inputs are clamped to [-87.3, 88.3], so a masked score
// (about -3.4e38) gives ~1e-38 rather than 0, which is invisible next to the row's largest term exp(0) = 1.
inline float exp_approx(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  // NaN survives the clamp (std::min/max return their first argument when a comparison is false). Converting
  // it to int is undefined (and the shift below would then overflow): take n = 0 for NaN; p, and so the
  // result, stays NaN as in torch.
  const float t = x == x ? x * 1.44269504088896341f : 0.0f;
  const int32_t n = static_cast<int32_t>(t + (t >= 0.0f ? 0.5f : -0.5f));
  const float nf = static_cast<float>(n);
  float r = x - nf * 0.693359375f;
  r = r - nf * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t bits = static_cast<int32_t>(static_cast<uint32_t>(n + 127) << 23);  // n + 127 in [1, 255]
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

void add_bias_impl(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    for (int64_t c = 0; c < cols; ++c) row[c] += bias[c];
  }
}

void add_bias_gelu_impl(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias) {
  constexpr float kInvSqrt2 = 0.70710678118654752f;
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    for (int64_t c = 0; c < cols; ++c) {
      const float v = row[c] + bias[c];
      row[c] = 0.5f * v * (1.0f + erf_approx(v * kInvSqrt2));
    }
  }
}

void add_bias_residual_impl(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias,
                            const float* residual) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = y + r * ld;
    const float* res = residual + r * ld;
    for (int64_t c = 0; c < cols; ++c) row[c] += bias[c] + res[c];
  }
}

inline float row_max(const float* x, int64_t n) {
  float m[8];
  for (float& v : m) v = -INFINITY;
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) m[k] = std::max(m[k], x[c + k]);
  float out = -INFINITY;
  for (float v : m) out = std::max(out, v);
  for (; c < n; ++c) out = std::max(out, x[c]);
  return out;
}

inline float row_sum(const float* x, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t c = 0;
  for (; c + 8 <= n; c += 8)
    for (int k = 0; k < 8; ++k) s[k] += x[c + k];
  float out = 0.0f;
  for (float v : s) out += v;
  for (; c < n; ++c) out += x[c];
  return out;
}

void masked_softmax_impl(float* s, int64_t rows, int64_t cols, const float* mask_bias) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = s + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] += mask_bias[c];
    const float m = row_max(row, cols);
    for (int64_t c = 0; c < cols; ++c) row[c] = exp_approx(row[c] - m);
    const float inv = 1.0f / row_sum(row, cols);
    for (int64_t c = 0; c < cols; ++c) row[c] *= inv;
  }
}

void layer_norm_impl(float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps) {
  for (int64_t r = 0; r < rows; ++r) {
    float* row = x + r * cols;
    const float mean = row_sum(row, cols) / static_cast<float>(cols);
    float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8)
      for (int k = 0; k < 8; ++k) {
        const float d = row[c + k] - mean;
        s[k] += d * d;
      }
    float var = 0.0f;
    for (float v : s) var += v;
    for (; c < cols; ++c) var += (row[c] - mean) * (row[c] - mean);
    var /= static_cast<float>(cols);
    const float inv_std = 1.0f / std::sqrt(var + eps);
    for (c = 0; c < cols; ++c) row[c] = (row[c] - mean) * inv_std * gamma[c] + beta[c];
  }
}

}  // namespace
