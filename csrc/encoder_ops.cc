// Portable build of the encoder epilogues, and the run-time choice between it and the AVX2/FMA build.
#include "cpu.h"
#include "encoder_ops_inl.h"

namespace bortfast {

const EncoderOps& generic_encoder_ops() {
  static const EncoderOps ops{add_bias_impl,       add_bias_gelu_impl, add_bias_residual_impl,
                              masked_softmax_impl, layer_norm_impl,    "generic"};
  return ops;
}

const EncoderOps& select_encoder_ops() {
  static const EncoderOps& ops = cpu_has_avx2_fma() ? avx2_encoder_ops() : generic_encoder_ops();
  return ops;
}

}  // namespace bortfast
