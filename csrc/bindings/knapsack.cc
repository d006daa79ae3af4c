// Bindings of the knapsack FPTAS (csrc/knapsack.h): validate arrays, release the GIL, copy the frontier out.
#include "knapsack.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>

#include "array_checks.h"
#include "register.h"

namespace py = pybind11;
using bortfast_bindings::require_array;
using bortfast_bindings::shape_str;

void register_knapsack(py::module_& m) {
  m.def(
      "layer_frontier",
      [](const py::handle& costs_obj, const py::handle& values_obj, const py::handle& offsets_obj,
         double delta) {
        auto costs = require_array<double>(costs_obj, "costs", 1);
        auto values = require_array<double>(values_obj, "values", 1);
        auto offsets = require_array<int64_t>(offsets_obj, "offsets", 1);
        const int64_t n = costs.shape(0);
        if (values.shape(0) != n) {
          throw py::value_error("costs and values must have the same length, got shapes " + shape_str(costs) +
                                " and " + shape_str(values));
        }
        if (offsets.shape(0) < 2) {
          throw py::value_error("offsets must have L + 1 >= 2 entries (at least one layer), got shape " +
                                shape_str(offsets));
        }
        const int64_t layers = offsets.shape(0) - 1;
        if (offsets.at(layers) != n) {
          throw py::value_error("offsets[-1] must equal the number of options " + std::to_string(n) +
                                ", got " + std::to_string(offsets.at(layers)));
        }
        const double* c = costs.data();
        const double* v = values.data();
        const int64_t* o = offsets.data();
        bortfast::KnapsackFrontier front;
        {
          // Safe: the arrays are kept alive by this frame and the core touches no Python object.
          py::gil_scoped_release release;
          front = bortfast::layer_frontier(c, v, o, layers, delta);
        }
        const py::ssize_t size = front.size(), width = front.layers;
        py::array_t<double> cost(size), value(size);
        py::array_t<int64_t> choice({size, width});
        std::copy(front.cost.begin(), front.cost.end(), cost.mutable_data());
        std::copy(front.value.begin(), front.value.end(), value.mutable_data());
        std::copy(front.choice.begin(), front.choice.end(), choice.mutable_data());
        return py::make_tuple(cost, value, choice);
      },
      py::arg("costs"), py::arg("values"), py::arg("offsets"), py::arg("delta"),
      "(1-delta)-approximate cost/value frontier of the multiple-choice knapsack over layers: flat float64 "
      "costs/values, int64 offsets (L+1,). Returns (cost (n,), value (n,), choice (n, L)) sorted by cost.");
}
