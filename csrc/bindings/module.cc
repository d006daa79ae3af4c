// The private extension module bortfast._core. It only calls one register_* function per bound area
// (boost-histogram style); each lives in its own file in this directory.
#include <pybind11/pybind11.h>

#include "register.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "bortfast C++ core (private; use the bortfast package)";
  register_cost_model(m);
  register_selection(m);
  register_encoder(m);
  register_knapsack(m);
}
