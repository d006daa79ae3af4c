// AVX2/FMA build of the encoder epilogues (compiled with -mavx2 -mfma; see CMakeLists.txt). Only reached
// through select_encoder_ops(), after cpu_has_avx2_fma().
#include "encoder_ops_inl.h"

namespace bortfast {

const EncoderOps& avx2_encoder_ops() {
  static const EncoderOps ops{add_bias_impl,       add_bias_gelu_impl, add_bias_residual_impl,
                              masked_softmax_impl, layer_norm_impl,    "avx2"};
  return ops;
}

}  // namespace bortfast
