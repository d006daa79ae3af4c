// Fused CPU forward pass of a BERT encoder stack <D, A, H, I> (Bort paper §2, the latency proxy i-hat;
// DESIGN.md §5), or of one whose layers differ in heads and FFN width (DESIGN.md §1, the dynamic programme).
// Post-LayerNorm layout as in transformers' BertLayer, GELU (erf), float32.
//
// Per layer, for X of shape (M = B*L, H):
//   QKV = X Wqkv^T + bqkv                          (M, 3H)   one GEMM for the three projections
//   P   = softmax(Q_h K_h^T / sqrt(d) + mask)      (L, L)    per (batch, head), scale folded into the GEMM
//   C   = P V_h                                    (M, H)
//   X1  = LayerNorm(C Wo^T + bo + X)               (M, H)    bias+residual fused into the GEMM epilogue
//   F   = GELU(X1 Wi^T + bi)                       (M, I)    bias+GELU fused into the GEMM epilogue
//   X   = LayerNorm(F Wout^T + bout + X1)          (M, H)
// GEMMs go to single-threaded OpenBLAS (scipy-openblas32) called from bortfast's own thread pool, each thread
// owning a block of output columns (or rows) and applying the epilogue while its block is still in cache.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

namespace bortfast {

struct EncoderShape {
  int64_t layers;        // D
  int64_t heads;         // A
  int64_t hidden;        // H (divisible by A)
  int64_t intermediate;  // I
};

// One layer of a per-layer encoder: `heads` heads of the encoder's head_dim (attention width heads *
// head_dim, which need not equal H) and `intermediate` FFN neurons.
struct LayerWidth {
  int64_t heads;
  int64_t intermediate;
};

// Names of the per-layer tensors, in the order set_layer() takes them (transformers' BertLayer, torch layout:
// a Linear's weight is (out_features, in_features)).
enum class LayerTensor : int {
  kQueryWeight = 0,  // (H, H)
  kQueryBias,        // (H,)
  kKeyWeight,        // (H, H)
  kKeyBias,          // (H,)
  kValueWeight,      // (H, H)
  kValueBias,        // (H,)
  kAttnOutWeight,    // (H, H)
  kAttnOutBias,      // (H,)
  kAttnNormWeight,   // (H,)
  kAttnNormBias,     // (H,)
  kInterWeight,      // (I, H)
  kInterBias,        // (I,)
  kOutWeight,        // (H, I)
  kOutBias,          // (H,)
  kOutNormWeight,    // (H,)
  kOutNormBias,      // (H,)
  kCount
};

// Expected (rows, cols) of a layer tensor; cols == 0 for a vector. W = attention width (H for a uniform
// layer): Q/K/V weights are (W, H), their biases (W,), the attention output weight (H, W).
void layer_tensor_shape(const EncoderShape& shape, LayerTensor t, int64_t* rows, int64_t* cols);
void layer_tensor_shape(int64_t hidden, int64_t attention, int64_t intermediate, LayerTensor t, int64_t* rows,
                        int64_t* cols);
const char* layer_tensor_name(LayerTensor t);

class Encoder {
 public:
  // Throws std::invalid_argument for non-positive sizes, hidden % heads != 0 or eps <= 0.
  Encoder(EncoderShape shape, float layer_norm_eps);
  // Per-layer widths (bortfast.space.PerLayerArch): every layer shares H and head_dim; layer l has widths[l].
  // Throws std::invalid_argument for an empty list or non-positive sizes.
  Encoder(int64_t hidden, int64_t head_dim, const std::vector<LayerWidth>& widths, float layer_norm_eps);

  // Uniform: as constructed. Per-layer: layers, the largest heads, H, the largest intermediate.
  const EncoderShape& shape() const { return shape_; }
  int64_t head_dim() const { return head_dim_; }
  const std::vector<LayerWidth>& widths() const { return widths_; }
  // layer_tensor_shape of layer `layer`; throws std::out_of_range on a bad index.
  void tensor_shape(int64_t layer, LayerTensor t, int64_t* rows, int64_t* cols) const;
  float layer_norm_eps() const { return eps_; }

  // Copy one tensor of layer `layer` (numel must match layer_tensor_shape); throws std::out_of_range /
  // std::invalid_argument on a bad layer index or size.
  void set_tensor(int64_t layer, LayerTensor t, const float* data, int64_t numel);

  // Fill every weight like transformers' BertModel init (normal-ish, std 0.02; biases 0, LayerNorm 1/0), from
  // a fast deterministic generator (uniform with the same std: the latency does not depend on the
  // distribution).
  void init_random(uint64_t seed, float std = 0.02f);

  // out = encoder(hidden) for hidden (B, L, H) and mask (B, L) (1 = attend, 0 = padding), both row-major.
  // `out` may alias `hidden`. threads >= 1. Throws std::invalid_argument on bad sizes. Thread-safe (calls on
  // one Encoder are serialised).
  void forward(const float* hidden, const float* mask, int64_t batch, int64_t seq_len, float* out,
               int threads) const;

 private:
  struct Layer {
    // Weights transposed to (in, out): Y = X W^T becomes a plain Y = X Wt.
    int64_t heads = 0, width = 0, inter = 0;    // A_l, W_l = A_l * head_dim, I_l
    std::vector<float> qkv_w, qkv_b;            // (H, 3W), (3W,)
    std::vector<float> attn_out_w, attn_out_b;  // (W, H), (H,)
    std::vector<float> ln1_g, ln1_b;            // (H,)
    std::vector<float> inter_w, inter_b;        // (H, I), (I,)
    std::vector<float> out_w, out_b;            // (I, H), (H,)
    std::vector<float> ln2_g, ln2_b;            // (H,)
  };

  EncoderShape shape_;
  int64_t head_dim_;
  std::vector<LayerWidth> widths_;
  float eps_;
  std::vector<Layer> layers_;
  // Scratch reused across calls (grown on demand); guarded by mutex_.
  mutable std::mutex mutex_;
  mutable std::vector<float> qkv_, ctx_, x1_, inter_, mask_bias_, scores_;
};

// Number of threads the machine offers (std::thread::hardware_concurrency, at least 1).
int default_threads();

}  // namespace bortfast
