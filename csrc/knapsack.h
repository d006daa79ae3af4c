// Multiple-choice knapsack over the teacher's layers, solved as an FPTAS by dynamic programming (DESIGN.md
// section 1, "The dynamic programme"; the value-rounding scheme of Ibarra & Kim 1975, applied per scale as in
// Papadimitriou & Yannakakis 2000 to cover every budget at once). Plain C++17, no Python.
//
// Input: L layers; layer l offers a menu of K_l >= 1 options, each with an additive cost >= 0 and an additive
// value >= 0 (e.g. parameters or per-layer latency, and retained importance). A full choice picks exactly one
// option per layer ("drop the layer" is just an option with cost ~0 and value 0). The menus are given flat:
// option k of layer l is entry offsets[l] + k of `costs` / `values`; offsets has L + 1 entries, offsets[0] =
// 0, offsets[L] = the total option count, strictly increasing (no empty menu).
//
// Output: the approximate cost/value frontier, sorted by cost, cost and value both strictly increasing; each
// point carries its per-layer option indices. Guarantee: for every budget B >= the cheapest full choice's
// cost, the frontier point of largest cost <= B has value >= (1 - delta) * OPT(B), OPT(B) the best value of a
// full choice of cost <= B (up to the floating-point rounding of the sums, relative ~1e-15).
// layer_frontier_reference in tests/reference.py is the plain-Python reference; it returns exactly the same
// frontier.
#pragma once

#include <cstdint>
#include <vector>

namespace bortfast {

struct KnapsackFrontier {
  int64_t layers = 0;
  std::vector<double> cost;     // (n,), strictly increasing
  std::vector<double> value;    // (n,), strictly increasing
  std::vector<int64_t> choice;  // (n, layers) row-major: option index within each layer's menu
  int64_t size() const { return static_cast<int64_t>(cost.size()); }
};

// Most DP-table entries (layers x value levels, one int32 each) a single pass may allocate; a smaller delta
// needs proportionally more (about 2 L^2 / delta levels), so a delta beyond this is refused, not paged in.
constexpr int64_t kMaxKnapsackTableEntries = int64_t{1} << 26;

// The frontier of the multiple-choice knapsack described above, for 0 < delta < 1. Time
// O(P * L * K * L^2 / delta) with P <= min(total options, ~2100) the number of distinct binary exponents
// among the positive values (a handful in practice); memory O(L^2 / delta) per pass. Throws
// std::invalid_argument on a bad offsets array, an empty menu, a negative or non-finite cost or value, a
// positive value below 1e-280 (it would underflow the rounding grid), sums that overflow, delta outside (0,
// 1), or a DP larger than kMaxKnapsackTableEntries.
KnapsackFrontier layer_frontier(const double* costs, const double* values, const int64_t* offsets,
                                int64_t layers, double delta);

}  // namespace bortfast
