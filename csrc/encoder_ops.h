// Element-wise epilogues of the fused encoder (bias+GELU, scale+mask+softmax, residual+LayerNorm).
// The same source (encoder_ops_inl.h) is compiled twice: portable (encoder_ops.cc) and with AVX2/FMA
// (encoder_ops_avx2.cc); select_encoder_ops() picks the AVX2 table only after the run-time CPU check.
#pragma once

#include <cstdint>

namespace bortfast {

struct EncoderOps {
  // y[r, c] = y[r, c] + bias[c] for an (rows, cols) block with row stride ld.
  void (*add_bias)(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias);
  // y = GELU(y + bias), GELU(x) = x/2 (1 + erf(x / sqrt 2)) (BERT's "gelu").
  void (*add_bias_gelu)(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias);
  // y = y + bias + residual (residual has the same row stride ld).
  void (*add_bias_residual)(float* y, int64_t rows, int64_t cols, int64_t ld, const float* bias,
                            const float* residual);
  // Row-wise softmax of s (rows, cols) after adding mask_bias[c] to every row (0 or a large negative value).
  void (*masked_softmax)(float* s, int64_t rows, int64_t cols, const float* mask_bias);
  // Row-wise LayerNorm in place: x = (x - mean) / sqrt(var + eps) * gamma + beta (biased variance).
  void (*layer_norm)(float* x, int64_t rows, int64_t cols, const float* gamma, const float* beta, float eps);
  const char* name;
};

const EncoderOps& generic_encoder_ops();
const EncoderOps& avx2_encoder_ops();  // only call when cpu_has_avx2_fma()
const EncoderOps& select_encoder_ops();

}  // namespace bortfast
