// Closed-form cost model of a BERT encoder: exact parameter counts and forward FLOPs.
// Plain C++17, no Python: functions over caller-owned arrays (faiss style). The formulas are documented in
// bortfast/space.py and DESIGN.md section 1.
#pragma once

#include <cstdint>

namespace bortfast {

// Which transformers model the parameter count refers to.
enum class ModelKind : int {
  kEncoder = 0,        // BertModel(add_pooling_layer=False)
  kEncoderPooler = 1,  // BertModel with its pooler
  kMaskedLM = 2,       // BertForMaskedLM, decoder weight tied to the word embeddings
};

// Validates one architecture row (layers, heads, hidden, intermediate); throws std::invalid_argument naming
// the row index and values when a size is not positive or hidden % heads != 0.
void check_arch(const int64_t* row, int64_t index);

// archs: n rows of (layers, heads, hidden, intermediate), row-major. out: n counts.
// Throws std::invalid_argument on invalid rows / sizes and std::overflow_error if a count exceeds int64.
void param_counts(const int64_t* archs, int64_t n, int64_t vocab_size, int64_t max_positions,
                  int64_t type_vocab_size, ModelKind kind, int64_t* out);

// FLOPs of one encoder forward (embeddings and heads excluded) for a batch of `batch` sequences of
// `seq_len` tokens; a multiply-add counts 2. Per layer: 2*B*L*(4H^2 + 2HI) + 4*B*L^2*H.
void encoder_flops(const int64_t* archs, int64_t n, int64_t batch, int64_t seq_len, int64_t* out);

}  // namespace bortfast
