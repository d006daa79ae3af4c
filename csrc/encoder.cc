#include "encoder.h"

#include <cblas.h>    // scipy-openblas32: every symbol carries the scipy_ prefix
#include <pthread.h>  // pthread_atfork

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "encoder_ops.h"

namespace bortfast {

namespace {

// ---------------------------------------------------------------------------------------------------------------
// A small persistent thread pool. run() hands tasks [0, n) to the caller plus up to threads-1 workers
// (dynamic scheduling through an atomic counter, so a core stolen by another process does not stall a static
// share). Workers spin briefly between the closely spaced parallel regions of one forward pass, then sleep.
class ThreadPool {
 public:
  using Task = std::function<void(int64_t task, int thread)>;

  static ThreadPool& instance() {
    // Leaked on purpose: joining threads from a static destructor at interpreter exit can deadlock.
    static const bool registered = [] {
      current() = new ThreadPool;
      // A fork()ed child has none of the workers, and the parent's mutex/condition variable may be mid-use:
      // the child (single-threaded at this point) gets a fresh pool and never touches the old one.
      pthread_atfork(nullptr, nullptr, [] { current() = new ThreadPool; });
      return true;
    }();
    (void)registered;
    return *current();
  }

  void run(int threads, int64_t n_tasks, const Task& fn) {
    if (n_tasks <= 0) return;
    threads = static_cast<int>(std::min<int64_t>({std::max(threads, 1), n_tasks, kMaxThreads}));
    if (threads == 1) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    std::lock_guard<std::mutex> job_lock(job_mutex_);  // one parallel region at a time
    ensure_workers(threads - 1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_tasks_ = n_tasks;
      next_.store(0, std::memory_order_relaxed);
      pending_.store(threads - 1, std::memory_order_relaxed);
      error_ = nullptr;
      // The participant count travels in the same atomic word as the generation (issue 16; TSan confirmed
      // the race): a worker decides whether to take part from the one word it loaded, so a late worker
      // cannot pair an old generation with the next job's count, run a job it was not counted in, and
      // decrement pending_ twice (which let run() return while a task still ran). The release store
      // publishes fn_, n_tasks_, next_ and pending_ to the workers that acquire it.
      job_.store(pack(generation(job_.load(std::memory_order_relaxed)) + 1, threads - 1),
                 std::memory_order_release);
    }
    cv_.notify_all();
    work(0);
    for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
      if (spin < 4000) {
        cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
    if (error_) std::rethrow_exception(error_);
  }

 private:
  ThreadPool() = default;

  // The job word: generation (upper 48 bits; never wraps in practice) and participant count (lower 16).
  static constexpr int kCountBits = 16;
  static constexpr int64_t kMaxThreads = int64_t{1}
                                         << kCountBits;  // participants = threads - 1 fit in 16 bits
  static uint64_t pack(uint64_t generation, int participants) {
    return (generation << kCountBits) | static_cast<uint64_t>(participants);
  }
  static uint64_t generation(uint64_t job) { return job >> kCountBits; }
  static int participants(uint64_t job) { return static_cast<int>(job & ((uint64_t{1} << kCountBits) - 1)); }

  static ThreadPool*& current() {
    static ThreadPool* pool = nullptr;
    return pool;
  }

  static void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }

  void ensure_workers(int n) {
    while (static_cast<int>(workers_.size()) < n) {
      const int index = static_cast<int>(workers_.size()) + 1;
      // A new worker starts from the current generation, so it only ever joins jobs published after it
      // exists.
      const uint64_t seen = generation(job_.load(std::memory_order_acquire));
      workers_.emplace_back([this, index, seen] { worker_loop(index, seen); });
      workers_.back().detach();
    }
  }

  void work(int thread) {
    try {
      for (int64_t t = next_.fetch_add(1, std::memory_order_relaxed); t < n_tasks_;
           t = next_.fetch_add(1, std::memory_order_relaxed)) {
        (*fn_)(t, thread);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      next_.store(n_tasks_, std::memory_order_relaxed);  // abandon the remaining tasks
    }
  }

  void worker_loop(int index, uint64_t seen) {
    for (;;) {
      uint64_t job = job_.load(std::memory_order_acquire);
      for (int spin = 0; generation(job) == seen && spin < 20000; ++spin) {
        cpu_relax();
        job = job_.load(std::memory_order_acquire);
      }
      if (generation(job) == seen) {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return generation(job_.load(std::memory_order_acquire)) != seen; });
        job = job_.load(std::memory_order_acquire);
      }
      seen = generation(job);
      // Count and generation come from the same load. A participant of this generation cannot miss it: the
      // next job is published only once pending_ reaches 0, which needs this worker's decrement.
      if (index <= participants(job)) {
        work(index);
        pending_.fetch_sub(1, std::memory_order_acq_rel);
      }
    }
  }

  std::mutex job_mutex_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> job_{0};  // pack(generation, participants) of the latest job
  std::atomic<int64_t> next_{0};
  std::atomic<int> pending_{0};
  const Task* fn_ = nullptr;
  int64_t n_tasks_ = 0;
  std::exception_ptr error_;
};

// OpenBLAS runs single-threaded inside our tasks: the parallelism is ours, so the epilogues can follow each
// thread's own block while it is in cache. This wheel's library has no per-thread setting, so it is set once
// for the process; the library is bortfast's private copy (numpy and scipy bundle their own).
void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { scipy_openblas_set_num_threads(1); });
}

// C (m, n; ldc) = alpha * A (m, k; lda) . B^T, with B stored (n, k; ldb) -- torch's Linear layout.
void gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
             int64_t ldb, float* c, int64_t ldc) {
  blas_single_threaded();
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), static_cast<blasint>(n),
                    static_cast<blasint>(k), alpha, a, static_cast<blasint>(lda), b,
                    static_cast<blasint>(ldb), 0.0f, c, static_cast<blasint>(ldc));
}

// C (m, n; ldc) = A (m, k; lda) . B (k, n; ldb).
void gemm_nn(int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc) {
  blas_single_threaded();
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<blasint>(m),
                    static_cast<blasint>(n), static_cast<blasint>(k), 1.0f, a, static_cast<blasint>(lda), b,
                    static_cast<blasint>(ldb), 0.0f, c, static_cast<blasint>(ldc));
}

int64_t round_up(int64_t x, int64_t multiple) { return (x + multiple - 1) / multiple * multiple; }

// Y (M, N) = X (M, K) . Wt (Wt is (K, N), the transposed torch weight), then tile_epilogue(y_block, rows,
// cols, row0, col0) on each block and row_epilogue(rows_ptr, rows, row0) on whole rows. The larger of M and N
// is split across threads (so each thread packs the smaller share of the operands); when rows are split the
// row epilogue runs inside the same task, otherwise in a second parallel pass once every column block is
// done.
template <class TileEpilogue, class RowEpilogue>
void parallel_linear(int threads, const float* x, int64_t m, int64_t k, const float* wt, int64_t n, float* y,
                     TileEpilogue tile_epilogue, RowEpilogue row_epilogue, bool has_row_epilogue) {
  ThreadPool& pool = ThreadPool::instance();
  if (n >= m) {
    const int64_t block = std::min(n, round_up((n + threads - 1) / threads, 16));
    const int64_t n_blocks = (n + block - 1) / block;
    pool.run(threads, n_blocks, [&](int64_t task, int) {
      const int64_t c0 = task * block;
      const int64_t cols = std::min(block, n - c0);
      gemm_nn(m, cols, k, x, k, wt + c0, n, y + c0, n);
      tile_epilogue(y + c0, m, cols, int64_t{0}, c0);
    });
    if (has_row_epilogue) {
      const int64_t rblock = std::max<int64_t>(1, (m + 4 * threads - 1) / (4 * threads));
      pool.run(threads, (m + rblock - 1) / rblock, [&](int64_t task, int) {
        const int64_t r0 = task * rblock;
        row_epilogue(y + r0 * n, std::min(rblock, m - r0), r0);
      });
    }
  } else {
    const int64_t block = std::min(m, round_up((m + threads - 1) / threads, 8));
    const int64_t n_blocks = (m + block - 1) / block;
    pool.run(threads, n_blocks, [&](int64_t task, int) {
      const int64_t r0 = task * block;
      const int64_t rows = std::min(block, m - r0);
      gemm_nn(rows, n, k, x + r0 * k, k, wt, n, y + r0 * n, n);
      tile_epilogue(y + r0 * n, rows, n, r0, int64_t{0});
      if (has_row_epilogue) row_epilogue(y + r0 * n, rows, r0);
    });
  }
}

void check_widths(int64_t hidden, int64_t head_dim, const std::vector<LayerWidth>& widths) {
  if (widths.empty()) throw std::invalid_argument("encoder needs at least one layer, got 0");
  if (hidden <= 0 || head_dim <= 0) {
    throw std::invalid_argument("encoder sizes must be positive, got hidden=" + std::to_string(hidden) +
                                " head_dim=" + std::to_string(head_dim));
  }
  // BLAS takes 32-bit sizes: keep every matrix dimension well inside them.
  if (hidden > (1 << 20) || head_dim > (1 << 20) || widths.size() > 4096) {
    throw std::invalid_argument("encoder sizes are implausibly large: hidden=" + std::to_string(hidden) +
                                " head_dim=" + std::to_string(head_dim) +
                                " layers=" + std::to_string(widths.size()));
  }
  // The weights are allocated (and zero-filled) up front: refuse sizes whose weights alone exceed 2^31 floats
  // (8 GiB, ~25x BERT-large) instead of paging through memory until std::bad_alloc (or an ASan abort).
  constexpr int64_t kMaxFloats = int64_t{1} << 31;
  int64_t total = 0;
  for (size_t l = 0; l < widths.size(); ++l) {
    const int64_t a = widths[l].heads, i = widths[l].intermediate;
    if (a <= 0 || i <= 0) {
      throw std::invalid_argument("layer " + std::to_string(l) +
                                  " must have positive heads and intermediate, got " +
                                  "heads=" + std::to_string(a) + " intermediate=" + std::to_string(i));
    }
    if (a > (1 << 20) / head_dim || i > (1 << 20)) {
      throw std::invalid_argument("layer " + std::to_string(l) + " is implausibly large: heads=" +
                                  std::to_string(a) + " intermediate=" + std::to_string(i));
    }
    const int64_t w = a * head_dim, h = hidden;
    total += 4 * h * w + 2 * h * i + 3 * w + 6 * h + i;  // <= ~2^43 per layer: no overflow with the limits
    if (total > kMaxFloats) {
      throw std::invalid_argument(
          "encoder weights would need more than the limit 2^31 floats (8 GiB) by layer " + std::to_string(l));
    }
  }
}

void check_shape(const EncoderShape& s) {
  if (s.layers <= 0 || s.heads <= 0 || s.hidden <= 0 || s.intermediate <= 0) {
    throw std::invalid_argument("encoder sizes must be positive, got layers=" + std::to_string(s.layers) +
                                " heads=" + std::to_string(s.heads) + " hidden=" + std::to_string(s.hidden) +
                                " intermediate=" + std::to_string(s.intermediate));
  }
  if (s.hidden % s.heads != 0) {
    throw std::invalid_argument("hidden=" + std::to_string(s.hidden) +
                                " is not divisible by heads=" + std::to_string(s.heads));
  }
  if (s.hidden > (1 << 20) || s.intermediate > (1 << 20) || s.layers > 4096) {
    throw std::invalid_argument("encoder sizes are implausibly large: hidden=" + std::to_string(s.hidden) +
                                " intermediate=" + std::to_string(s.intermediate) +
                                " layers=" + std::to_string(s.layers));
  }
  const int64_t h = s.hidden, i = s.intermediate;
  const int64_t per_layer = 4 * h * h + 2 * h * i + 9 * h + i;  // <= ~2^43: no overflow with the limits above
  constexpr int64_t kMaxFloats = int64_t{1} << 31;
  if (per_layer > kMaxFloats / s.layers) {
    throw std::invalid_argument("encoder weights would need " + std::to_string(per_layer) + " x " +
                                std::to_string(s.layers) + " floats, more than the limit 2^31 (8 GiB)");
  }
}

int64_t uniform_head_dim(const EncoderShape& s) {
  check_shape(s);  // before the division: heads may be 0
  return s.hidden / s.heads;
}

std::vector<LayerWidth> uniform_widths(const EncoderShape& s) {
  check_shape(s);
  return std::vector<LayerWidth>(static_cast<size_t>(s.layers), LayerWidth{s.heads, s.intermediate});
}

EncoderShape envelope(int64_t hidden, int64_t head_dim, const std::vector<LayerWidth>& widths) {
  check_widths(hidden, head_dim, widths);
  EncoderShape s{static_cast<int64_t>(widths.size()), 0, hidden, 0};
  for (const LayerWidth& w : widths) {
    s.heads = std::max(s.heads, w.heads);
    s.intermediate = std::max(s.intermediate, w.intermediate);
  }
  return s;
}

}  // namespace

int default_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

const char* layer_tensor_name(LayerTensor t) {
  static const char* names[] = {"attention.self.query.weight",
                                "attention.self.query.bias",
                                "attention.self.key.weight",
                                "attention.self.key.bias",
                                "attention.self.value.weight",
                                "attention.self.value.bias",
                                "attention.output.dense.weight",
                                "attention.output.dense.bias",
                                "attention.output.LayerNorm.weight",
                                "attention.output.LayerNorm.bias",
                                "intermediate.dense.weight",
                                "intermediate.dense.bias",
                                "output.dense.weight",
                                "output.dense.bias",
                                "output.LayerNorm.weight",
                                "output.LayerNorm.bias"};
  const int i = static_cast<int>(t);
  if (i < 0 || i >= static_cast<int>(LayerTensor::kCount)) throw std::out_of_range("bad layer tensor index");
  return names[i];
}

void layer_tensor_shape(const EncoderShape& s, LayerTensor t, int64_t* rows, int64_t* cols) {
  layer_tensor_shape(s.hidden, s.hidden, s.intermediate, t, rows, cols);
}

void layer_tensor_shape(int64_t h, int64_t w, int64_t i, LayerTensor t, int64_t* rows, int64_t* cols) {
  switch (t) {
    case LayerTensor::kQueryWeight:
    case LayerTensor::kKeyWeight:
    case LayerTensor::kValueWeight:
      *rows = w, *cols = h;
      return;
    case LayerTensor::kAttnOutWeight:
      *rows = h, *cols = w;
      return;
    case LayerTensor::kQueryBias:
    case LayerTensor::kKeyBias:
    case LayerTensor::kValueBias:
      *rows = w, *cols = 0;
      return;
    case LayerTensor::kInterWeight:
      *rows = i, *cols = h;
      return;
    case LayerTensor::kOutWeight:
      *rows = h, *cols = i;
      return;
    case LayerTensor::kInterBias:
      *rows = i, *cols = 0;
      return;
    case LayerTensor::kAttnOutBias:
    case LayerTensor::kAttnNormWeight:
    case LayerTensor::kAttnNormBias:
    case LayerTensor::kOutBias:
    case LayerTensor::kOutNormWeight:
    case LayerTensor::kOutNormBias:
      *rows = h, *cols = 0;
      return;
    case LayerTensor::kCount:
      break;
  }
  throw std::out_of_range("bad layer tensor index");
}

Encoder::Encoder(EncoderShape shape, float layer_norm_eps)
    : Encoder(shape.hidden, uniform_head_dim(shape), uniform_widths(shape), layer_norm_eps) {}

Encoder::Encoder(int64_t hidden, int64_t head_dim, const std::vector<LayerWidth>& widths,
                 float layer_norm_eps)
    : shape_(envelope(hidden, head_dim, widths)), head_dim_(head_dim), widths_(widths), eps_(layer_norm_eps) {
  if (!(layer_norm_eps > 0.0f) || !std::isfinite(layer_norm_eps)) {
    throw std::invalid_argument("layer_norm_eps must be a positive finite number, got " +
                                std::to_string(layer_norm_eps));
  }
  const size_t h = static_cast<size_t>(hidden);
  layers_.resize(widths.size());
  for (size_t li = 0; li < widths.size(); ++li) {
    Layer& l = layers_[li];
    l.heads = widths[li].heads;
    l.width = widths[li].heads * head_dim;
    l.inter = widths[li].intermediate;
    const size_t w = static_cast<size_t>(l.width), i = static_cast<size_t>(l.inter);
    l.qkv_w.assign(3 * h * w, 0.0f);
    l.qkv_b.assign(3 * w, 0.0f);
    l.attn_out_w.assign(w * h, 0.0f);
    l.attn_out_b.assign(h, 0.0f);
    l.ln1_g.assign(h, 1.0f);
    l.ln1_b.assign(h, 0.0f);
    l.inter_w.assign(i * h, 0.0f);
    l.inter_b.assign(i, 0.0f);
    l.out_w.assign(h * i, 0.0f);
    l.out_b.assign(h, 0.0f);
    l.ln2_g.assign(h, 1.0f);
    l.ln2_b.assign(h, 0.0f);
  }
}

void Encoder::tensor_shape(int64_t layer, LayerTensor t, int64_t* rows, int64_t* cols) const {
  if (layer < 0 || layer >= shape_.layers) {
    throw std::out_of_range("layer index " + std::to_string(layer) + " out of range [0, " +
                            std::to_string(shape_.layers) + ")");
  }
  const Layer& l = layers_[static_cast<size_t>(layer)];
  layer_tensor_shape(shape_.hidden, l.width, l.inter, t, rows, cols);
}

void Encoder::set_tensor(int64_t layer, LayerTensor t, const float* data, int64_t numel) {
  int64_t rows = 0, cols = 0;
  tensor_shape(layer, t, &rows, &cols);
  const int64_t expected = cols ? rows * cols : rows;
  if (numel != expected) {
    throw std::invalid_argument(std::string(layer_tensor_name(t)) + " of layer " + std::to_string(layer) +
                                " must have " + std::to_string(expected) + " elements, got " +
                                std::to_string(numel));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  Layer& l = layers_[static_cast<size_t>(layer)];
  const int64_t h = shape_.hidden, w = l.width;
  // Weights are kept transposed, (in, out) row-major, which OpenBLAS multiplies ~5-10% faster than the torch
  // (out, in) layout at these shapes; Q, K and V sit side by side in one (H, 3W) matrix.
  auto put_transposed = [&](std::vector<float>& dst, int64_t ld, int64_t col0) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) dst[static_cast<size_t>(c * ld + col0 + r)] = data[r * cols + c];
  };
  float* dst = nullptr;
  switch (t) {
    case LayerTensor::kQueryWeight:
      return put_transposed(l.qkv_w, 3 * w, 0);
    case LayerTensor::kKeyWeight:
      return put_transposed(l.qkv_w, 3 * w, w);
    case LayerTensor::kValueWeight:
      return put_transposed(l.qkv_w, 3 * w, 2 * w);
    case LayerTensor::kAttnOutWeight:
      return put_transposed(l.attn_out_w, h, 0);
    case LayerTensor::kInterWeight:
      return put_transposed(l.inter_w, l.inter, 0);
    case LayerTensor::kOutWeight:
      return put_transposed(l.out_w, h, 0);
    case LayerTensor::kQueryBias:
      dst = l.qkv_b.data();
      break;
    case LayerTensor::kKeyBias:
      dst = l.qkv_b.data() + w;
      break;
    case LayerTensor::kValueBias:
      dst = l.qkv_b.data() + 2 * w;
      break;
    case LayerTensor::kAttnOutBias:
      dst = l.attn_out_b.data();
      break;
    case LayerTensor::kAttnNormWeight:
      dst = l.ln1_g.data();
      break;
    case LayerTensor::kAttnNormBias:
      dst = l.ln1_b.data();
      break;
    case LayerTensor::kInterBias:
      dst = l.inter_b.data();
      break;
    case LayerTensor::kOutBias:
      dst = l.out_b.data();
      break;
    case LayerTensor::kOutNormWeight:
      dst = l.ln2_g.data();
      break;
    case LayerTensor::kOutNormBias:
      dst = l.ln2_b.data();
      break;
    default:
      throw std::out_of_range("bad layer tensor index");
  }
  std::memcpy(dst, data, static_cast<size_t>(numel) * sizeof(float));
}

void Encoder::init_random(uint64_t seed, float std) {
  std::lock_guard<std::mutex> lock(mutex_);
  // splitmix64 -> uniform on [-a, a] with a = std * sqrt(3) (variance std^2).
  uint64_t state = seed;
  const float a = std * std::sqrt(3.0f);
  auto fill = [&](std::vector<float>& v) {
    for (float& x : v) {
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      z ^= z >> 31;
      const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
      x = (2.0f * u - 1.0f) * a;
    }
  };
  for (Layer& l : layers_) {
    fill(l.qkv_w);
    fill(l.attn_out_w);
    fill(l.inter_w);
    fill(l.out_w);
    std::fill(l.qkv_b.begin(), l.qkv_b.end(), 0.0f);
    std::fill(l.attn_out_b.begin(), l.attn_out_b.end(), 0.0f);
    std::fill(l.inter_b.begin(), l.inter_b.end(), 0.0f);
    std::fill(l.out_b.begin(), l.out_b.end(), 0.0f);
    std::fill(l.ln1_g.begin(), l.ln1_g.end(), 1.0f);
    std::fill(l.ln1_b.begin(), l.ln1_b.end(), 0.0f);
    std::fill(l.ln2_g.begin(), l.ln2_g.end(), 1.0f);
    std::fill(l.ln2_b.begin(), l.ln2_b.end(), 0.0f);
  }
}

void Encoder::forward(const float* hidden, const float* mask, int64_t batch, int64_t seq_len, float* out,
                      int threads) const {
  if (batch <= 0 || seq_len <= 0) {
    throw std::invalid_argument("batch and seq_len must be positive, got batch=" + std::to_string(batch) +
                                " seq_len=" + std::to_string(seq_len));
  }
  if (threads <= 0) throw std::invalid_argument("threads must be >= 1, got " + std::to_string(threads));
  if (batch * seq_len > (int64_t{1} << 24) || seq_len > (1 << 16)) {
    throw std::invalid_argument("batch * seq_len too large: batch=" + std::to_string(batch) +
                                " seq_len=" + std::to_string(seq_len));
  }
  std::lock_guard<std::mutex> lock(mutex_);
  const EncoderOps& ops = select_encoder_ops();
  const int64_t B = batch, L = seq_len, H = shape_.hidden, d = head_dim_, M = B * L;
  const int64_t W_max = shape_.heads * d, I_max = shape_.intermediate;  // scratch fits the widest layer
  const float scale = 1.0f / std::sqrt(static_cast<float>(d));

  qkv_.resize(static_cast<size_t>(M * 3 * W_max));
  ctx_.resize(static_cast<size_t>(M * W_max));
  x1_.resize(static_cast<size_t>(M * H));
  inter_.resize(static_cast<size_t>(M * I_max));
  mask_bias_.resize(static_cast<size_t>(M));
  scores_.resize(static_cast<size_t>(threads * L * L));
  // transformers' extended attention mask: (1 - mask) * finfo(float32).min, added to the scaled scores.
  for (int64_t j = 0; j < M; ++j) mask_bias_[j] = (1.0f - mask[j]) * -FLT_MAX;

  float* x = out;  // the running hidden state lives in the output buffer
  if (out != hidden) std::memcpy(out, hidden, static_cast<size_t>(M * H) * sizeof(float));
  float* qkv = qkv_.data();
  float* ctx = ctx_.data();
  float* x1 = x1_.data();
  float* inter = inter_.data();
  const float* mask_bias = mask_bias_.data();
  float* scores = scores_.data();
  const float eps = eps_;
  ThreadPool& pool = ThreadPool::instance();
  auto no_rows = [](float*, int64_t, int64_t) {};

  for (const Layer& l : layers_) {
    const int64_t A = l.heads, W = l.width, I = l.inter;
    // QKV = X Wqkv^T + bqkv  (M, 3W)
    const float* qkv_b = l.qkv_b.data();
    parallel_linear(
        threads, x, M, H, l.qkv_w.data(), 3 * W, qkv,
        [&](float* y, int64_t rows, int64_t cols, int64_t, int64_t c0) {
          ops.add_bias(y, rows, cols, 3 * W, qkv_b + c0);
        },
        no_rows, false);

    // Per (batch, head): P = softmax(Q K^T / sqrt(d) + mask) (L, L); ctx_h = P V_h.
    pool.run(threads, B * A, [&](int64_t task, int thread) {
      const int64_t b = task / A, h = task % A;
      const float* q = qkv + b * L * 3 * W + h * d;
      const float* k = q + W;
      const float* v = q + 2 * W;
      float* s = scores + thread * L * L;
      gemm_nt(L, L, d, scale, q, 3 * W, k, 3 * W, s, L);
      ops.masked_softmax(s, L, L, mask_bias + b * L);
      gemm_nn(L, d, L, s, L, v, 3 * W, ctx + b * L * W + h * d, W);
    });

    // X1 = LayerNorm(ctx Wo^T + bo + X)  (ctx is (M, W))
    const float* ao_b = l.attn_out_b.data();
    const float* g1 = l.ln1_g.data();
    const float* b1 = l.ln1_b.data();
    parallel_linear(
        threads, ctx, M, W, l.attn_out_w.data(), H, x1,
        [&](float* y, int64_t rows, int64_t cols, int64_t r0, int64_t c0) {
          ops.add_bias_residual(y, rows, cols, H, ao_b + c0, x + r0 * H + c0);
        },
        [&](float* y, int64_t rows, int64_t) { ops.layer_norm(y, rows, H, g1, b1, eps); }, true);

    // F = GELU(X1 Wi^T + bi)  (M, I)
    const float* i_b = l.inter_b.data();
    parallel_linear(
        threads, x1, M, H, l.inter_w.data(), I, inter,
        [&](float* y, int64_t rows, int64_t cols, int64_t, int64_t c0) {
          ops.add_bias_gelu(y, rows, cols, I, i_b + c0);
        },
        no_rows, false);

    // X = LayerNorm(F Wout^T + bout + X1)
    const float* o_b = l.out_b.data();
    const float* g2 = l.ln2_g.data();
    const float* b2 = l.ln2_b.data();
    parallel_linear(
        threads, inter, M, I, l.out_w.data(), H, x,
        [&](float* y, int64_t rows, int64_t cols, int64_t r0, int64_t c0) {
          ops.add_bias_residual(y, rows, cols, H, o_b + c0, x1 + r0 * H + c0);
        },
        [&](float* y, int64_t rows, int64_t) { ops.layer_norm(y, rows, H, g2, b2, eps); }, true);
  }
}

}  // namespace bortfast
