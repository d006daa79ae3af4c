#include "cost_model.h"

#include <stdexcept>
#include <string>

namespace bortfast {
namespace {

// Overflow-checked int64 arithmetic: a count that does not fit is an error, never a wrapped value.
int64_t mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) throw std::overflow_error("bortfast: cost model overflows int64");
  return r;
}
int64_t add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw std::overflow_error("bortfast: cost model overflows int64");
  return r;
}

void check_positive(int64_t value, const char* name) {
  if (value <= 0) {
    throw std::invalid_argument(std::string(name) + " must be positive, got " + std::to_string(value));
  }
}

}  // namespace

void check_arch(const int64_t* row, int64_t index) {
  const int64_t layers = row[0], heads = row[1], hidden = row[2], intermediate = row[3];
  if (layers <= 0 || heads <= 0 || hidden <= 0 || intermediate <= 0 || hidden % heads != 0) {
    throw std::invalid_argument("invalid architecture at row " + std::to_string(index) +
                                ": (layers=" + std::to_string(layers) + ", heads=" + std::to_string(heads) +
                                ", hidden=" + std::to_string(hidden) +
                                ", intermediate=" + std::to_string(intermediate) +
                                "); all sizes must be positive and hidden must be divisible by heads");
  }
}

void param_counts(const int64_t* archs, int64_t n, int64_t vocab_size, int64_t max_positions,
                  int64_t type_vocab_size, ModelKind kind, int64_t* out) {
  check_positive(vocab_size, "vocab_size");
  check_positive(max_positions, "max_positions");
  check_positive(type_vocab_size, "type_vocab_size");
  for (int64_t r = 0; r < n; ++r) {
    const int64_t* row = archs + 4 * r;
    check_arch(row, r);
    const int64_t D = row[0], H = row[2], I = row[3];
    // Embeddings: word + position + token type tables, then LayerNorm (weight, bias).
    int64_t p = add(mul(add(add(vocab_size, max_positions), type_vocab_size), H), mul(2, H));
    // One layer: Q, K, V, attention output (H^2 + H each), 2 LayerNorms (2H each),
    // intermediate (H*I + I), output (I*H + H)  =  4H^2 + 2HI + 9H + I.
    const int64_t layer = add(add(add(mul(4, mul(H, H)), mul(2, mul(H, I))), mul(9, H)), I);
    p = add(p, mul(D, layer));
    switch (kind) {
      case ModelKind::kEncoder:
        break;
      case ModelKind::kEncoderPooler:
        p = add(p, add(mul(H, H), H));  // pooler dense
        break;
      case ModelKind::kMaskedLM:
        // transform dense (H^2 + H) + transform LayerNorm (2H) + decoder bias (V); decoder weight is tied.
        p = add(p, add(add(mul(H, H), mul(3, H)), vocab_size));
        break;
      default:
        throw std::invalid_argument("unknown model kind " + std::to_string(static_cast<int>(kind)));
    }
    out[r] = p;
  }
}

void encoder_flops(const int64_t* archs, int64_t n, int64_t batch, int64_t seq_len, int64_t* out) {
  check_positive(batch, "batch");
  check_positive(seq_len, "seq_len");
  const int64_t tokens = mul(batch, seq_len);
  for (int64_t r = 0; r < n; ++r) {
    const int64_t* row = archs + 4 * r;
    check_arch(row, r);
    const int64_t D = row[0], H = row[2], I = row[3];
    // Dense projections: Q, K, V, attention output (4 H x H) and the two FFN matmuls (2 H x I).
    const int64_t dense = mul(mul(2, tokens), add(mul(4, mul(H, H)), mul(2, mul(H, I))));
    // Attention: scores Q K^T and context P V, each 2 * B * L * L * H summed over heads.
    const int64_t attention = mul(4, mul(mul(tokens, seq_len), H));
    out[r] = mul(D, add(dense, attention));
  }
}

}  // namespace bortfast
