// Selection core of Algorithm 1 (FPTAS search; de Wynter 2020, arXiv 2010.08512; Bort paper section 2):
// ordering by parameters, interval pivots, the W-coefficient, argmax, the exact Pareto front of three
// minimised objectives and an epsilon-approximate Pareto front on a geometric grid. Plain C++17, no Python:
// functions over caller-owned arrays (faiss style). Every function validates its input and throws
// std::invalid_argument with the offending index and value; tests/reference.py holds the plain-Python
// reference of each one (bortfast/search/selection.py is the Python API).
#pragma once

#include <cstdint>

namespace bortfast {

// order[k] = index of the k-th smallest value; ties keep index order (stable). Values must be finite.
void stable_order(const double* values, int64_t n, int64_t* order);

// Number of pivots interval_pivots writes: ceil(n / eps). Throws unless 1 <= eps <= max(n, 1).
int64_t pivot_count(int64_t n, int64_t eps);

// Sorts by `values` (stable_order) and writes the original indices found at sorted positions
// 0, eps, 2*eps, ..., k*eps with k*eps < n (so ceil(n / eps) pivots; the last sorted position n - 1 is a
// pivot only when eps divides n - 1). out must hold pivot_count(n, eps) entries; returns that count.
int64_t interval_pivots(const double* values, int64_t n, int64_t eps, int64_t* out);

// W(xi) = max(0, (p_T - p) / p_T) * max(0, (i_T - i) / i_T) / (e + eps_small), to be maximised.
// Factors are clamped at 0 so an architecture larger or slower than T never scores above 0 (two negative
// factors must not multiply into a positive score); T itself scores 0. Requires finite inputs, p_T > 0, i_T >
// 0, p >= 0, i >= 0, e >= 0, eps_small >= 0 and e + eps_small > 0; throws if a W overflows to infinity.
void w_coefficients(const double* p, const double* i, const double* e, int64_t n, double p_T, double i_T,
                    double eps_small, double* out);

// Index of the largest value; ties go to the lowest index. Throws on n == 0 or any NaN.
int64_t argmax(const double* values, int64_t n);

// Exact Pareto front of n points with `dims` = 3 minimised objectives, row-major (n, 3), all finite.
// A point is dropped iff another point is <= in every objective and < in at least one; identical points do
// not dominate each other, so duplicates on the front are all kept. Writes the front's indices in increasing
// order to out (capacity n) and returns their count. O(n log n): lexicographic sort, then a sweep keeping the
// 2-D staircase of (objective 1, objective 2) in an ordered map.
int64_t pareto_front(const double* points, int64_t n, int64_t* out);

// Epsilon-approximate Pareto front: each objective v > 0 is mapped to the cell floor(log(v) / log1p(delta))
// of a (1 + delta) geometric grid; each occupied cell keeps one representative (its lexicographically
// smallest point, lowest index on ties); the representatives of the non-dominated cells are returned (indices
// increasing). Every exact-front point q then has a returned r with r <= (1 + delta) * q in every objective,
// and every returned point is on the exact front. Requires delta > 0 and finite positive objectives.
int64_t approx_pareto_front(const double* points, int64_t n, double delta, int64_t* out);

}  // namespace bortfast
