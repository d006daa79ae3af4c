#include "cost_model.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "array_checks.h"
#include "cpu.h"
#include "register.h"

namespace py = pybind11;
using bortfast_bindings::require_array;
using bortfast_bindings::shape_str;

namespace {

py::array_t<int64_t, py::array::c_style> check_archs(const py::handle& obj) {
  auto archs = require_array<int64_t>(obj, "archs", 2);
  if (archs.shape(1) != 4) {
    throw py::value_error("archs must have shape (n, 4) = (layers, heads, hidden, intermediate), got " +
                          shape_str(archs));
  }
  return archs;
}

bortfast::ModelKind parse_kind(const std::string& kind) {
  if (kind == "encoder") return bortfast::ModelKind::kEncoder;
  if (kind == "encoder+pooler") return bortfast::ModelKind::kEncoderPooler;
  if (kind == "masked-lm") return bortfast::ModelKind::kMaskedLM;
  throw py::value_error("model kind must be 'encoder', 'encoder+pooler' or 'masked-lm', got '" + kind + "'");
}

}  // namespace

void register_cost_model(py::module_& m) {
  m.def(
      "param_counts",
      [](const py::handle& archs_obj, int64_t vocab_size, int64_t max_positions, int64_t type_vocab_size,
         const std::string& kind) {
        auto archs = check_archs(archs_obj);
        const auto model_kind = parse_kind(kind);
        const int64_t n = archs.shape(0);
        py::array_t<int64_t> out(n);
        const int64_t* in_ptr = archs.data();
        int64_t* out_ptr = out.mutable_data();
        {
          // Safe: the arrays are owned by this frame (kept alive by `archs`/`out`) and the core touches no
          // Python objects.
          py::gil_scoped_release release;
          bortfast::param_counts(in_ptr, n, vocab_size, max_positions, type_vocab_size, model_kind, out_ptr);
        }
        return out;
      },
      py::arg("archs"), py::arg("vocab_size"), py::arg("max_positions"), py::arg("type_vocab_size"),
      py::arg("kind"),
      "Exact trainable-parameter counts for an int64 (n, 4) array of (layers, heads, hidden, intermediate).");

  m.def(
      "encoder_flops",
      [](const py::handle& archs_obj, int64_t batch, int64_t seq_len) {
        auto archs = check_archs(archs_obj);
        const int64_t n = archs.shape(0);
        py::array_t<int64_t> out(n);
        const int64_t* in_ptr = archs.data();
        int64_t* out_ptr = out.mutable_data();
        {
          py::gil_scoped_release release;  // see param_counts
          bortfast::encoder_flops(in_ptr, n, batch, seq_len, out_ptr);
        }
        return out;
      },
      py::arg("archs"), py::arg("batch"), py::arg("seq_len"),
      "FLOPs of one encoder forward for an int64 (n, 4) architecture array.");

  m.def("cpu_has_avx2_fma", &bortfast::cpu_has_avx2_fma, "Whether this CPU supports AVX2 and FMA.");
}
