// Bindings of the selection core (csrc/selection.h): validate arrays, allocate outputs, release the GIL,
// call.
#include "selection.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "array_checks.h"
#include "register.h"

namespace py = pybind11;
using bortfast_bindings::require_array;
using bortfast_bindings::shape_str;

namespace {

using Vec = py::array_t<double, py::array::c_style>;

py::array_t<int64_t> truncated(const py::array_t<int64_t>& out, int64_t count) {
  return py::array_t<int64_t>(count, out.data());  // copies the first `count` entries
}

Vec require_points(const py::handle& obj) {
  auto points = require_array<double>(obj, "points", 2);
  if (points.shape(1) != 3) {
    throw py::value_error("points must have shape (n, 3) = (params, latency, error), got " +
                          shape_str(points));
  }
  return points;
}

}  // namespace

// Every lambda below copies the array pointers out of the py::array objects it keeps alive in its own frame,
// then releases the GIL: the core reads and writes only those buffers and touches no Python object, so other
// Python threads may run meanwhile. C++ exceptions thrown inside are translated after the GIL is re-acquired.
void register_selection(py::module_& m) {
  m.def(
      "stable_order",
      [](const py::handle& values_obj) {
        auto values = require_array<double>(values_obj, "values", 1);
        const int64_t n = values.shape(0);
        py::array_t<int64_t> order(n);
        const double* in = values.data();
        int64_t* out = order.mutable_data();
        {
          py::gil_scoped_release release;
          bortfast::stable_order(in, n, out);
        }
        return order;
      },
      py::arg("values"), "Indices that sort a float64 array ascending; ties keep index order.");

  m.def(
      "interval_pivots",
      [](const py::handle& values_obj, int64_t eps) {
        auto values = require_array<double>(values_obj, "values", 1);
        const int64_t n = values.shape(0);
        py::array_t<int64_t> pivots(bortfast::pivot_count(n, eps));
        const double* in = values.data();
        int64_t* out = pivots.mutable_data();
        {
          py::gil_scoped_release release;
          bortfast::interval_pivots(in, n, eps, out);
        }
        return pivots;
      },
      py::arg("values"), py::arg("eps"),
      "Original indices at sorted positions 0, eps, 2*eps, ... (< n) of a float64 array: ceil(n/eps) "
      "pivots.");

  m.def(
      "w_coefficients",
      [](const py::handle& p_obj, const py::handle& i_obj, const py::handle& e_obj, double p_T, double i_T,
         double eps_small) {
        auto p = require_array<double>(p_obj, "p", 1);
        auto i = require_array<double>(i_obj, "i", 1);
        auto e = require_array<double>(e_obj, "e", 1);
        const int64_t n = p.shape(0);
        if (i.shape(0) != n || e.shape(0) != n) {
          throw py::value_error("p, i and e must have the same length, got shapes " + shape_str(p) + ", " +
                                shape_str(i) + ", " + shape_str(e));
        }
        Vec w(n);
        const double *pp = p.data(), *ip = i.data(), *ep = e.data();
        double* out = w.mutable_data();
        {
          py::gil_scoped_release release;
          bortfast::w_coefficients(pp, ip, ep, n, p_T, i_T, eps_small, out);
        }
        return w;
      },
      py::arg("p"), py::arg("i"), py::arg("e"), py::arg("p_T"), py::arg("i_T"), py::arg("eps_small"),
      "W = max(0,(p_T-p)/p_T) * max(0,(i_T-i)/i_T) / (e + eps_small), elementwise over float64 arrays.");

  m.def(
      "argmax",
      [](const py::handle& values_obj) {
        auto values = require_array<double>(values_obj, "values", 1);
        const int64_t n = values.shape(0);
        const double* in = values.data();
        int64_t best;
        {
          py::gil_scoped_release release;
          best = bortfast::argmax(in, n);
        }
        return best;
      },
      py::arg("values"), "Index of the largest value; ties go to the lowest index; NaN raises ValueError.");

  m.def(
      "pareto_front",
      [](const py::handle& points_obj) {
        auto points = require_points(points_obj);
        const int64_t n = points.shape(0);
        py::array_t<int64_t> front(n);
        const double* in = points.data();
        int64_t* out = front.mutable_data();
        int64_t count;
        {
          py::gil_scoped_release release;
          count = bortfast::pareto_front(in, n, out);
        }
        return truncated(front, count);
      },
      py::arg("points"),
      "Indices (increasing) of the exact Pareto front of a float64 (n, 3) array, all objectives minimised.");

  m.def(
      "approx_pareto_front",
      [](const py::handle& points_obj, double delta) {
        auto points = require_points(points_obj);
        const int64_t n = points.shape(0);
        py::array_t<int64_t> front(n);
        const double* in = points.data();
        int64_t* out = front.mutable_data();
        int64_t count;
        {
          py::gil_scoped_release release;
          count = bortfast::approx_pareto_front(in, n, delta, out);
        }
        return truncated(front, count);
      },
      py::arg("points"), py::arg("delta"),
      "Indices (increasing) of a (1+delta)-approximate Pareto front of a positive float64 (n, 3) array.");
}
