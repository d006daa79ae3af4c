#include "selection.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bortfast {
namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

void check_count(int64_t n) {
  if (n < 0) throw std::invalid_argument("count must be non-negative, got " + std::to_string(n));
}

void check_finite(const double* values, int64_t n, const char* name) {
  for (int64_t k = 0; k < n; ++k) {
    if (!std::isfinite(values[k])) {
      throw std::invalid_argument(std::string(name) + "[" + std::to_string(k) + "] must be finite, got " +
                                  fmt(values[k]));
    }
  }
}

void check_points(const double* points, int64_t n, bool positive) {
  for (int64_t k = 0; k < n; ++k) {
    for (int j = 0; j < 3; ++j) {
      const double v = points[3 * k + j];
      if (!std::isfinite(v)) {
        throw std::invalid_argument("points[" + std::to_string(k) + ", " + std::to_string(j) +
                                    "] must be finite, got " + fmt(v));
      }
      if (positive && !(v > 0)) {
        throw std::invalid_argument("points[" + std::to_string(k) + ", " + std::to_string(j) +
                                    "] must be positive (its logarithm is taken), got " + fmt(v));
      }
    }
  }
}

struct Key {
  double v[3];
};

bool key_equal(const Key& a, const Key& b) {
  return a.v[0] == b.v[0] && a.v[1] == b.v[1] && a.v[2] == b.v[2];
}

bool key_less(const Key& a, const Key& b) {
  if (a.v[0] != b.v[0]) return a.v[0] < b.v[0];
  if (a.v[1] != b.v[1]) return a.v[1] < b.v[1];
  return a.v[2] < b.v[2];
}

struct Record {
  Key key;
  int64_t id;
};

// Returns the ids of the non-dominated records, increasing (all objectives minimised; identical keys do not
// dominate each other). Any dominator of a point sorts lexicographically before it, so one sweep in that
// order suffices: a point is dominated iff an earlier, non-identical point has (v1, v2) <= its own. The
// earlier points' (v1, v2) are summarised by their staircase: a map v1 -> v2 with v1 increasing and v2
// strictly decreasing; the entry with the largest v1 <= y then has the smallest v2 among all entries with v1
// <= y. Only front points are inserted (a dominated point's dominator covers everything it would cover).
// Sorts `records` in place.
std::vector<int64_t> front_sweep(std::vector<Record>& records) {
  std::sort(records.begin(), records.end(), [](const Record& a, const Record& b) {
    if (key_less(a.key, b.key)) return true;
    if (key_less(b.key, a.key)) return false;
    return a.id < b.id;
  });
  const size_t n = records.size();
  std::vector<int64_t> kept;
  std::map<double, double> stair;
  size_t g = 0;
  while (g < n) {
    // A group of identical points is decided together, before any of them enters the staircase.
    size_t h = g + 1;
    while (h < n && key_equal(records[h].key, records[g].key)) ++h;
    const double y = records[g].key.v[1], z = records[g].key.v[2];
    auto above = stair.upper_bound(y);
    const bool covered = above != stair.begin() && std::prev(above)->second <= z;
    if (!covered) {
      for (size_t s = g; s < h; ++s) kept.push_back(records[s].id);
      // Entries with v1 >= y and v2 >= z are now covered by (y, z); they form a prefix from lower_bound(y).
      auto lo = stair.lower_bound(y);
      auto hi = lo;
      while (hi != stair.end() && hi->second >= z) ++hi;
      stair.erase(lo, hi);
      stair.emplace(y, z);
    }
    g = h;
  }
  std::sort(kept.begin(), kept.end());
  return kept;
}

std::vector<int64_t> exact_front(const double* points, int64_t n) {
  std::vector<Record> records(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k)
    records[k] = Record{{{points[3 * k], points[3 * k + 1], points[3 * k + 2]}}, k};
  return front_sweep(records);
}

}  // namespace

void stable_order(const double* values, int64_t n, int64_t* order) {
  check_count(n);
  check_finite(values, n, "values");
  // Sorting contiguous (value, index) pairs is several times faster than sorting indices through an indirect
  // comparison (no cache miss per comparison); the index in the pair makes the order stable.
  std::vector<std::pair<double, int64_t>> pairs(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) pairs[k] = {values[k], k};
  std::sort(pairs.begin(), pairs.end());
  for (int64_t k = 0; k < n; ++k) order[k] = pairs[k].second;
}

int64_t pivot_count(int64_t n, int64_t eps) {
  check_count(n);
  if (eps < 1 || eps > std::max<int64_t>(n, 1)) {
    throw std::invalid_argument("eps must be an integer in [1, " + std::to_string(std::max<int64_t>(n, 1)) +
                                "] (the number of candidates), got " + std::to_string(eps));
  }
  return n == 0 ? 0 : (n - 1) / eps + 1;
}

int64_t interval_pivots(const double* values, int64_t n, int64_t eps, int64_t* out) {
  const int64_t count = pivot_count(n, eps);
  std::vector<int64_t> order(static_cast<size_t>(n));
  stable_order(values, n, order.data());
  for (int64_t k = 0; k < count; ++k) out[k] = order[static_cast<size_t>(k * eps)];
  return count;
}

void w_coefficients(const double* p, const double* i, const double* e, int64_t n, double p_T, double i_T,
                    double eps_small, double* out) {
  check_count(n);
  if (!std::isfinite(p_T) || !(p_T > 0))
    throw std::invalid_argument("p_T must be finite and positive, got " + fmt(p_T));
  if (!std::isfinite(i_T) || !(i_T > 0))
    throw std::invalid_argument("i_T must be finite and positive, got " + fmt(i_T));
  if (!std::isfinite(eps_small) || !(eps_small >= 0)) {
    throw std::invalid_argument("eps_small must be finite and >= 0, got " + fmt(eps_small));
  }
  check_finite(p, n, "p");
  check_finite(i, n, "i");
  check_finite(e, n, "e");
  for (int64_t k = 0; k < n; ++k) {
    if (p[k] < 0) throw std::invalid_argument("p[" + std::to_string(k) + "] must be >= 0, got " + fmt(p[k]));
    if (i[k] < 0) throw std::invalid_argument("i[" + std::to_string(k) + "] must be >= 0, got " + fmt(i[k]));
    if (e[k] < 0) throw std::invalid_argument("e[" + std::to_string(k) + "] must be >= 0, got " + fmt(e[k]));
    if (!(e[k] + eps_small > 0)) {
      throw std::invalid_argument("e[" + std::to_string(k) + "] + eps_small must be > 0, got e=" + fmt(e[k]) +
                                  ", eps_small=" + fmt(eps_small));
    }
  }
  for (int64_t k = 0; k < n; ++k) {
    const double fp = std::max(0.0, (p_T - p[k]) / p_T);
    const double fi = std::max(0.0, (i_T - i[k]) / i_T);
    out[k] = fp * fi / (e[k] + eps_small);
    if (!std::isfinite(out[k])) {
      throw std::invalid_argument("W overflows at index " + std::to_string(k) +
                                  ": e + eps_small = " + fmt(e[k] + eps_small) + " is too small");
    }
  }
}

int64_t argmax(const double* values, int64_t n) {
  check_count(n);
  if (n == 0) throw std::invalid_argument("argmax of an empty array");
  int64_t best = 0;
  for (int64_t k = 0; k < n; ++k) {
    if (std::isnan(values[k])) throw std::invalid_argument("values[" + std::to_string(k) + "] is NaN");
    if (values[k] > values[best]) best = k;
  }
  return best;
}

int64_t pareto_front(const double* points, int64_t n, int64_t* out) {
  check_count(n);
  check_points(points, n, false);
  const std::vector<int64_t> front = exact_front(points, n);
  std::copy(front.begin(), front.end(), out);
  return static_cast<int64_t>(front.size());
}

int64_t approx_pareto_front(const double* points, int64_t n, double delta, int64_t* out) {
  check_count(n);
  if (!std::isfinite(delta) || !(delta > 0)) {
    throw std::invalid_argument("delta must be finite and > 0, got " + fmt(delta));
  }
  check_points(points, n, true);
  // Only exact-front points matter, which makes the grid step cheap: (a) a cell holding no front point is
  // dominated by the cell of a front point that dominates one of its points (floor(log) is monotone), and
  // every cell it dominates is then dominated by that cell too; (b) the lexicographically smallest point of a
  // non-dominated cell is itself on the front (a dominator would sort before it in the same cell, or lie in a
  // dominating cell). So the result equals the definition applied to all n points (the reference does that).
  const std::vector<int64_t> front = exact_front(points, n);
  const double log_base = std::log1p(delta);
  // Records keyed by cell; representative = first point of its cell in (point, index) order.
  struct CellPoint {
    Key cell;
    Key point;
    int64_t id;
  };
  std::vector<CellPoint> members;
  members.reserve(front.size());
  for (int64_t k : front) {
    CellPoint m{{}, {{points[3 * k], points[3 * k + 1], points[3 * k + 2]}}, k};
    for (int j = 0; j < 3; ++j) m.cell.v[j] = std::floor(std::log(m.point.v[j]) / log_base);
    members.push_back(m);
  }
  std::sort(members.begin(), members.end(), [](const CellPoint& a, const CellPoint& b) {
    if (key_less(a.cell, b.cell)) return true;
    if (key_less(b.cell, a.cell)) return false;
    if (key_less(a.point, b.point)) return true;
    if (key_less(b.point, a.point)) return false;
    return a.id < b.id;
  });
  std::vector<Record> reps;
  for (size_t s = 0; s < members.size(); ++s) {
    if (s == 0 || !key_equal(members[s].cell, members[s - 1].cell))
      reps.push_back(Record{members[s].cell, members[s].id});
  }
  // Cells are distinct, so the front of the cells needs no duplicate rule.
  const std::vector<int64_t> kept = front_sweep(reps);
  std::copy(kept.begin(), kept.end(), out);
  return static_cast<int64_t>(kept.size());
}

}  // namespace bortfast
