// Shared boundary checks: every array that crosses into C++ is validated here with a message naming the
// value.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

namespace bortfast_bindings {

namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (i) s += ", ";
    s += std::to_string(a.shape(i));
  }
  if (a.ndim() == 1) s += ",";
  return s + ")";
}

inline std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

// Accepts only a numpy array of exactly dtype T (no silent casts), C-contiguous, of rank `ndim`.
template <typename T>
py::array_t<T, py::array::c_style> require_array(const py::handle& obj, const char* name, py::ssize_t ndim) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(std::string(name) + " must be a numpy array, got " +
                         py::str(py::type::of(obj)).cast<std::string>());
  }
  py::array a = py::reinterpret_borrow<py::array>(obj);
  if (!a.dtype().is(py::dtype::of<T>())) {
    throw py::type_error(std::string(name) + " must have dtype " +
                         py::str(py::dtype::of<T>()).cast<std::string>() + ", got " + dtype_str(a));
  }
  if (a.ndim() != ndim) {
    throw py::value_error(std::string(name) + " must have rank " + std::to_string(ndim) + ", got shape " +
                          shape_str(a));
  }
  if (!(a.flags() & py::array::c_style)) {
    throw py::value_error(std::string(name) + " must be C-contiguous (use numpy.ascontiguousarray)");
  }
  return py::reinterpret_borrow<py::array_t<T, py::array::c_style>>(a);
}

}  // namespace bortfast_bindings
