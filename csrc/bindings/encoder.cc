// Bindings of the fused encoder kernel (csrc/encoder.h): shape/dtype checks, output allocation, GIL release.
#include "encoder.h"

#include <cblas.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "array_checks.h"
#include "register.h"

namespace py = pybind11;
using bortfast_bindings::require_array;
using bortfast_bindings::shape_str;

namespace {

constexpr int kMaxThreads = 256;

bortfast::LayerTensor tensor_by_name(const std::string& name) {
  for (int i = 0; i < static_cast<int>(bortfast::LayerTensor::kCount); ++i) {
    const auto t = static_cast<bortfast::LayerTensor>(i);
    if (name == bortfast::layer_tensor_name(t)) return t;
  }
  std::string known;
  for (int i = 0; i < static_cast<int>(bortfast::LayerTensor::kCount); ++i) {
    known +=
        (i ? ", " : "") + std::string(bortfast::layer_tensor_name(static_cast<bortfast::LayerTensor>(i)));
  }
  throw py::value_error("unknown encoder layer tensor '" + name + "'; known: " + known);
}

int check_threads(int64_t threads) {
  if (threads < 1 || threads > kMaxThreads) {
    throw py::value_error("threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
                          std::to_string(threads));
  }
  return static_cast<int>(threads);
}

}  // namespace

void register_encoder(py::module_& m) {
  py::class_<bortfast::Encoder>(m, "Encoder",
                                "Fused BERT encoder stack (post-LayerNorm, GELU erf, float32) on the CPU.")
      .def(py::init([](int64_t layers, int64_t heads, int64_t hidden, int64_t intermediate, double eps) {
             return new bortfast::Encoder({layers, heads, hidden, intermediate}, static_cast<float>(eps));
           }),
           py::arg("layers"), py::arg("heads"), py::arg("hidden"), py::arg("intermediate"),
           py::arg("layer_norm_eps") = 1e-12)
      .def_static(
          "per_layer",
          [](int64_t hidden, int64_t head_dim, const std::vector<int64_t>& heads,
             const std::vector<int64_t>& intermediate, double eps) {
            if (heads.size() != intermediate.size()) {
              throw py::value_error(
                  "per-layer encoder needs one head count and one FFN width per layer, got " +
                  std::to_string(heads.size()) + " head counts and " + std::to_string(intermediate.size()) +
                  " FFN widths");
            }
            std::vector<bortfast::LayerWidth> widths;
            for (size_t l = 0; l < heads.size(); ++l) widths.push_back({heads[l], intermediate[l]});
            return new bortfast::Encoder(hidden, head_dim, widths, static_cast<float>(eps));
          },
          py::arg("hidden"), py::arg("head_dim"), py::arg("heads"), py::arg("intermediate"),
          py::arg("layer_norm_eps") = 1e-12,
          "An encoder whose layer l has heads[l] heads of head_dim dims and intermediate[l] FFN neurons.")
      .def_property_readonly("head_dim", &bortfast::Encoder::head_dim)
      .def_property_readonly("layer_heads",
                             [](const bortfast::Encoder& e) {
                               std::vector<int64_t> out;
                               for (const auto& w : e.widths()) out.push_back(w.heads);
                               return out;
                             })
      .def_property_readonly("layer_intermediate",
                             [](const bortfast::Encoder& e) {
                               std::vector<int64_t> out;
                               for (const auto& w : e.widths()) out.push_back(w.intermediate);
                               return out;
                             })
      .def_property_readonly("layers", [](const bortfast::Encoder& e) { return e.shape().layers; })
      .def_property_readonly("heads", [](const bortfast::Encoder& e) { return e.shape().heads; })
      .def_property_readonly("hidden", [](const bortfast::Encoder& e) { return e.shape().hidden; })
      .def_property_readonly("intermediate",
                             [](const bortfast::Encoder& e) { return e.shape().intermediate; })
      .def_property_readonly("layer_norm_eps", &bortfast::Encoder::layer_norm_eps)
      .def(
          "set_tensor",
          [](bortfast::Encoder& e, int64_t layer, const std::string& name, const py::handle& obj) {
            const auto t = tensor_by_name(name);
            int64_t rows = 0, cols = 0;
            e.tensor_shape(layer, t, &rows, &cols);
            const std::string what = "layer " + std::to_string(layer) + " " + name;
            auto arr = require_array<float>(obj, what.c_str(), cols ? 2 : 1);
            const bool ok = cols ? (arr.shape(0) == rows && arr.shape(1) == cols) : arr.shape(0) == rows;
            if (!ok) {
              throw py::value_error(what + " must have shape (" + std::to_string(rows) +
                                    (cols ? ", " + std::to_string(cols) : std::string(",")) + "), got " +
                                    shape_str(arr));
            }
            e.set_tensor(layer, t, arr.data(), static_cast<int64_t>(arr.size()));
          },
          py::arg("layer"), py::arg("name"), py::arg("array"),
          "Copy one float32 tensor of a layer (transformers BertLayer name, e.g. "
          "'attention.self.query.weight').")
      .def(
          "init_random",
          [](bortfast::Encoder& e, uint64_t seed, double std) {
            py::gil_scoped_release release;  // touches only the encoder's own buffers
            e.init_random(seed, static_cast<float>(std));
          },
          py::arg("seed") = 0, py::arg("std") = 0.02,
          "Random weights (std 0.02, biases 0, LayerNorm 1/0), deterministic in `seed`.")
      .def(
          "forward",
          [](const bortfast::Encoder& e, const py::handle& hidden_obj, const py::handle& mask_obj,
             int64_t threads) {
            auto hidden = require_array<float>(hidden_obj, "hidden", 3);
            auto mask = require_array<float>(mask_obj, "mask", 2);
            const int64_t B = hidden.shape(0), L = hidden.shape(1), H = hidden.shape(2);
            if (B <= 0 || L <= 0)
              throw py::value_error("hidden must have batch > 0 and seq_len > 0, got shape " +
                                    shape_str(hidden));
            if (H != e.shape().hidden) {
              throw py::value_error("hidden must have shape (batch, seq_len, " +
                                    std::to_string(e.shape().hidden) + "), got " + shape_str(hidden));
            }
            if (mask.shape(0) != B || mask.shape(1) != L) {
              throw py::value_error("mask must have shape (" + std::to_string(B) + ", " + std::to_string(L) +
                                    ") to match hidden " + shape_str(hidden) + ", got " + shape_str(mask));
            }
            const int n_threads = check_threads(threads);
            py::array_t<float> out({B, L, H});
            const float* h_ptr = hidden.data();
            const float* m_ptr = mask.data();
            float* o_ptr = out.mutable_data();
            {
              // Safe: hidden/mask/out are kept alive by this frame, the core touches no Python object, and
              // concurrent calls on one Encoder are serialised by its own mutex.
              py::gil_scoped_release release;
              e.forward(h_ptr, m_ptr, B, L, o_ptr, n_threads);
            }
            return out;
          },
          py::arg("hidden"), py::arg("mask"), py::arg("threads"),
          "Encoder output (B, L, H) for float32 hidden (B, L, H) and float32 mask (B, L) (1 attend, 0 pad).");

  m.def(
      "encoder_tensor_names",
      [] {
        std::vector<std::string> names;
        for (int i = 0; i < static_cast<int>(bortfast::LayerTensor::kCount); ++i) {
          names.emplace_back(bortfast::layer_tensor_name(static_cast<bortfast::LayerTensor>(i)));
        }
        return names;
      },
      "Per-layer tensor names Encoder.set_tensor accepts (transformers BertLayer naming).");
  m.def(
      "blas_info",
      [] { return std::string(scipy_openblas_get_config()) + " core=" + scipy_openblas_get_corename(); },
      "The BLAS the encoder kernel calls (OpenBLAS config string and the kernel core it selected).");
}
