#pragma once

#include <pybind11/pybind11.h>

void register_cost_model(pybind11::module_& m);
void register_selection(pybind11::module_& m);
void register_encoder(pybind11::module_& m);
void register_knapsack(pybind11::module_& m);
