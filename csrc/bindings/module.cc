// The private extension module bortfast._core. It only calls one register_* function per bound area
// (boost-histogram style); each lives in its own file in this directory.
#include <pybind11/pybind11.h>

#include "register.h"

#ifndef BORTFAST_KERNEL_HASH
#error "BORTFAST_KERNEL_HASH must be defined by the build (CMakeLists.txt hashes csrc/)"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "bortfast C++ core (private; use the bortfast package)";
  // SHA-256 prefix of csrc/ and the build settings: the latency cache's kernel version.
  m.attr("kernel_hash") = BORTFAST_KERNEL_HASH;
  register_cost_model(m);
  register_selection(m);
  register_encoder(m);
  register_knapsack(m);
}
