#include "knapsack.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace bortfast {
namespace {

// Why the rounding is safe, and why one pass per binary scale (the proof the tests check against brute
// force).
//
// Fix a budget B >= the cheapest full choice and an optimal full choice S* of cost <= B and value OPT(B) > 0
// (OPT = 0 is met by the cheapest full choice, always on the frontier). S* can be taken to use only options
// that no other option of their layer dominates (cheaper-or-equal and at least as valuable): swapping one in
// keeps the cost <= B and the value >= OPT. Let m = the largest value among S*'s options and t = floor(log2
// m), so 2^t <= m < 2^(t+1). Then OPT >= m >= 2^t, and every option of S* has value < 2^(t+1).
//
// Pass t keeps, in every layer, only the options of value < 2^(t+1) (so S* is among its choices) and rounds
// each value down to the integer level s = floor(v / u) with u = delta * 2^t / L: every option loses less
// than u, so a full choice loses less than L * u = delta * 2^t <= delta * m <= delta * OPT. The DP keeps, for
// every total level R, a least-cost full choice reaching exactly R. At R* = the level of S* that choice S'
// costs <= cost(S*) <= B (floating-point addition is monotone, and both sums run in layer order, so this
// holds exactly) and is worth >= u * R* > OPT - L * u >= (1 - delta) * OPT. S' survives the final filter
// unless a point of cost <= its cost and value >= its value does, which serves B as well.
//
// A pass has at most 1 + sum_l floor(2^(t+1) / u) <= 1 + 2 L^2 / delta levels, so its DP costs
// O(L * K * L^2 / delta) independent of the scale of the values; the passes are the distinct exponents t of
// the positive values (at most min(#options, ~2100); a handful for real importance scores).

// Shortest round-trip form, as Python's repr prints it (1e-09, 0.1, -0.5, inf, nan).
std::string fmt(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

// Positive values below this would make u = delta * 2^t / L underflow (delta >= ~1e-8 by the table limit).
constexpr double kMinPositiveValue = 1e-280;

struct MenuOption {
  double cost;
  double value;
  int32_t index;  // within its layer's menu
};

// The options of one layer that no other option dominates, in menu order. Order by (cost ascending, value
// descending, index ascending) and keep each option worth more than every one before it: of equal options
// only the first in the menu stays.
std::vector<MenuOption> undominated(const double* costs, const double* values, int64_t k) {
  std::vector<MenuOption> all(static_cast<size_t>(k));
  for (int64_t j = 0; j < k; ++j) all[j] = MenuOption{costs[j], values[j], static_cast<int32_t>(j)};
  std::sort(all.begin(), all.end(), [](const MenuOption& a, const MenuOption& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    if (a.value != b.value) return a.value > b.value;
    return a.index < b.index;
  });
  std::vector<MenuOption> kept;
  double best = -1.0;  // values are >= 0: the cheapest option is always kept
  for (const MenuOption& o : all) {
    if (o.value > best) {
      kept.push_back(o);
      best = o.value;
    }
  }
  std::sort(kept.begin(), kept.end(),
            [](const MenuOption& a, const MenuOption& b) { return a.index < b.index; });
  return kept;
}

struct Point {
  double cost;
  double value;
  std::vector<int32_t> choice;
};

// Keeps the points no earlier-or-cheaper point matches: stable sort by (cost ascending, value descending),
// then keep each point worth more than every point before it. Cost and value of the result strictly increase.
std::vector<Point> non_dominated(std::vector<Point> points) {
  std::stable_sort(points.begin(), points.end(), [](const Point& a, const Point& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    return a.value > b.value;
  });
  std::vector<Point> kept;
  for (Point& p : points) {
    if (kept.empty() || p.value > kept.back().value) kept.push_back(std::move(p));
  }
  return kept;
}

void validate(const double* costs, const double* values, const int64_t* offsets, int64_t layers,
              double delta) {
  if (!std::isfinite(delta) || !(delta > 0.0) || !(delta < 1.0)) {
    throw std::invalid_argument("delta must be in (0, 1), got " + fmt(delta));
  }
  if (layers < 1) {
    throw std::invalid_argument("offsets must describe at least one layer (L + 1 >= 2 entries), got " +
                                std::to_string(layers + 1) + " entries");
  }
  if (offsets[0] != 0) {
    throw std::invalid_argument("offsets[0] must be 0, got " + std::to_string(offsets[0]));
  }
  for (int64_t l = 0; l < layers; ++l) {
    const int64_t k = offsets[l + 1] - offsets[l];
    if (k <= 0) {
      throw std::invalid_argument("layer " + std::to_string(l) + " has an empty menu (offsets[" +
                                  std::to_string(l) + "] = " + std::to_string(offsets[l]) + ", offsets[" +
                                  std::to_string(l + 1) + "] = " + std::to_string(offsets[l + 1]) +
                                  "); every layer needs at least one option");
    }
    if (k > std::numeric_limits<int32_t>::max()) {
      throw std::invalid_argument("layer " + std::to_string(l) + " has " + std::to_string(k) +
                                  " options, more than 2^31 - 1");
    }
  }
  double cost_sum = 0.0, value_sum = 0.0;  // the largest full choice, to rule out overflowing sums
  for (int64_t l = 0; l < layers; ++l) {
    double cost_max = 0.0, value_max = 0.0;
    for (int64_t k = offsets[l]; k < offsets[l + 1]; ++k) {
      const std::string where = "[" + std::to_string(k) + "] (layer " + std::to_string(l) + ", option " +
                                std::to_string(k - offsets[l]) + ")";
      if (!std::isfinite(costs[k]) || costs[k] < 0.0) {
        throw std::invalid_argument("costs" + where + " must be finite and >= 0, got " + fmt(costs[k]));
      }
      if (!std::isfinite(values[k]) || values[k] < 0.0) {
        throw std::invalid_argument("values" + where + " must be finite and >= 0, got " + fmt(values[k]));
      }
      if (values[k] > 0.0 && values[k] < kMinPositiveValue) {
        throw std::invalid_argument("values" + where + " must be 0 or >= 1e-280 (rescale the values), got " +
                                    fmt(values[k]));
      }
      cost_max = std::max(cost_max, costs[k]);
      value_max = std::max(value_max, values[k]);
    }
    cost_sum += cost_max;
    value_sum += value_max;
  }
  if (!std::isfinite(cost_sum)) throw std::invalid_argument("the costs of a full choice overflow a double");
  if (!std::isfinite(value_sum)) throw std::invalid_argument("the values of a full choice overflow a double");
}

// One value-rounding pass at binary scale t: every layer's undominated options of value < 2^(t+1), values
// rounded down on the grid u = delta * 2^t / L.
struct Pass {
  int exponent;
  std::vector<std::vector<MenuOption>> options;  // per layer, menu order
  std::vector<std::vector<int64_t>> level;       // per layer, parallel to options: floor(value / u)
  std::vector<int64_t> level_max;                // per layer
  int64_t levels = 1;                            // 1 + sum of level_max
};

// Builds pass t, or returns false when some layer has no option of value < 2^(t+1) (then no full choice has
// its largest value below 2^(t+1) and the pass has nothing to find).
bool make_pass(const std::vector<std::vector<MenuOption>>& menus, int exponent, double delta, Pass* pass) {
  const int64_t layers = static_cast<int64_t>(menus.size());
  const double cap = std::ldexp(1.0, exponent + 1);
  const double unit = std::ldexp(delta, exponent) / static_cast<double>(layers);
  pass->exponent = exponent;
  pass->options.assign(menus.size(), {});
  pass->level.assign(menus.size(), {});
  pass->level_max.assign(menus.size(), 0);
  double levels = 1.0;  // counted in double first: a tiny delta must fail the size check, not overflow int64
  for (size_t l = 0; l < menus.size(); ++l) {
    double level_max = 0.0;
    for (const MenuOption& o : menus[l]) {
      if (!(o.value < cap)) continue;
      pass->options[l].push_back(o);
      level_max = std::max(level_max, std::floor(o.value / unit));
    }
    if (pass->options[l].empty()) return false;
    pass->level_max[l] = static_cast<int64_t>(std::min(level_max, 1e18));
    levels += level_max;
  }
  if (levels * static_cast<double>(layers) > static_cast<double>(kMaxKnapsackTableEntries)) {
    throw std::invalid_argument("delta=" + fmt(delta) + " is too small for " + std::to_string(layers) +
                                " layers: a DP pass would need " + fmt(levels) + " value levels x " +
                                std::to_string(layers) + " layers, more than the limit of " +
                                std::to_string(kMaxKnapsackTableEntries) +
                                " table entries; use a larger delta");
  }
  pass->levels = static_cast<int64_t>(levels);
  for (size_t l = 0; l < menus.size(); ++l) {
    for (const MenuOption& o : pass->options[l]) {
      pass->level[l].push_back(static_cast<int64_t>(std::floor(o.value / unit)));
    }
  }
  return true;
}

// The DP of one pass: best[r] = the least cost of a full choice whose rounded values sum to exactly r (layer
// by layer, ties to the lowest option index), then the non-dominated (cost, value) points among the levels.
std::vector<Point> run_pass(const Pass& pass) {
  const size_t layers = pass.options.size();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  std::vector<double> prev_cost{0.0}, prev_value{0.0}, cost, value;
  // choice[l][r]: the option (menu index) layer l takes on the best way to reach level r after layer l.
  std::vector<std::vector<int32_t>> choice(layers);
  for (size_t l = 0; l < layers; ++l) {
    const size_t reach = prev_cost.size();
    const size_t width = reach + static_cast<size_t>(pass.level_max[l]);
    cost.assign(width, kInf);
    value.assign(width, 0.0);
    choice[l].assign(width, -1);
    const double* pc = prev_cost.data();
    const double* pv = prev_value.data();
    const std::vector<MenuOption>& options = pass.options[l];
    const std::vector<int64_t>& level = pass.level[l];
    // Two sweeps instead of one compare-and-update loop: the update's outcome is data-dependent (a branch
    // mispredicts often and does not vectorise), while a plain min vectorises. (1) cost[r] = the least
    // prev_cost[r - s] + c over the options; unreachable levels hold +inf and inf + c stays inf.
    for (size_t o = 0; o < options.size(); ++o) {
      const size_t s = static_cast<size_t>(level[o]);
      const double c = options[o].cost;
      double* cc = cost.data() + s;
      for (size_t r = 0; r < reach; ++r) {
        const double cand = pc[r] + c, old = cc[r];
        cc[r] = cand < old ? cand : old;
      }
    }
    // (2) Per level, the first option in menu order that attains that least cost (the same float sum, so
    // equality is exact): ties go to the lowest menu index, as in the reference's strict '<' update.
    int32_t* ch = choice[l].data();
    for (size_t r = 0; r < width; ++r) {
      if (!(cost[r] < kInf)) continue;
      for (size_t o = 0; o < options.size(); ++o) {
        const size_t s = static_cast<size_t>(level[o]);
        if (s > r || r - s >= reach) continue;
        if (pc[r - s] + options[o].cost == cost[r]) {
          ch[r] = options[o].index;
          value[r] = pv[r - s] + options[o].value;
          break;
        }
      }
    }
    prev_cost.swap(cost);
    prev_value.swap(value);
  }

  // Per-layer rounded level of each menu index, to walk the choices back.
  std::vector<std::vector<int64_t>> level_of(layers);
  for (size_t l = 0; l < layers; ++l) {
    int32_t top = 0;
    for (const MenuOption& o : pass.options[l]) top = std::max(top, o.index);
    level_of[l].assign(static_cast<size_t>(top) + 1, 0);
    for (size_t o = 0; o < pass.options[l].size(); ++o)
      level_of[l][pass.options[l][o].index] = pass.level[l][o];
  }

  // Filter on (cost, value) first and walk back only the survivors (levels are many, survivors few).
  struct Level {
    double cost, value;
    size_t r;
  };
  // Most levels are dominated by a level far above them, which the sort need not see: a level r' >= r + L + 2
  // is worth >= u * r' > u * (r + L) > the value at r, so if the cheapest level from r + L + 2 up costs no
  // more than r (and is worth more: checked, not assumed), r cannot survive the filter below; dropping it
  // changes nothing else.
  const size_t top = prev_cost.size();
  std::vector<size_t> cheapest_above(top + 1, top);  // argmin of cost over [r, top); top = none
  for (size_t r = top; r-- > 0;) {
    const size_t best = cheapest_above[r + 1];
    cheapest_above[r] = (best == top || prev_cost[r] <= prev_cost[best]) ? r : best;
  }
  std::vector<Level> reached;
  for (size_t r = 0; r < top; ++r) {
    if (!(prev_cost[r] < kInf)) continue;
    const size_t far = r + layers + 2;
    if (far < top) {
      const size_t q = cheapest_above[far];
      if (q != top && prev_cost[q] <= prev_cost[r] && prev_value[q] > prev_value[r]) continue;
    }
    reached.push_back(Level{prev_cost[r], prev_value[r], r});
  }
  std::stable_sort(reached.begin(), reached.end(), [](const Level& a, const Level& b) {
    if (a.cost != b.cost) return a.cost < b.cost;
    return a.value > b.value;
  });
  std::vector<Point> points;
  for (const Level& lv : reached) {
    if (!points.empty() && !(lv.value > points.back().value)) continue;
    Point p{lv.cost, lv.value, std::vector<int32_t>(layers)};
    size_t r = lv.r;
    for (size_t l = layers; l-- > 0;) {
      const int32_t j = choice[l][r];
      p.choice[l] = j;
      r -= static_cast<size_t>(level_of[l][static_cast<size_t>(j)]);
    }
    points.push_back(std::move(p));
  }
  return points;
}

}  // namespace

KnapsackFrontier layer_frontier(const double* costs, const double* values, const int64_t* offsets,
                                int64_t layers, double delta) {
  validate(costs, values, offsets, layers, delta);
  std::vector<std::vector<MenuOption>> menus(static_cast<size_t>(layers));
  for (int64_t l = 0; l < layers; ++l) {
    menus[l] = undominated(costs + offsets[l], values + offsets[l], offsets[l + 1] - offsets[l]);
  }

  // The cheapest full choice (each layer's first undominated option in (cost, -value, index) order): it
  // serves every budget at which OPT = 0, and is the frontier's first point.
  std::vector<Point> candidates;
  {
    Point cheapest{0.0, 0.0, std::vector<int32_t>(static_cast<size_t>(layers))};
    for (int64_t l = 0; l < layers; ++l) {
      const MenuOption* best = &menus[l][0];
      for (const MenuOption& o : menus[l]) {
        if (o.cost < best->cost || (o.cost == best->cost && o.value > best->value)) best = &o;
      }
      cheapest.cost += best->cost;
      cheapest.value += best->value;
      cheapest.choice[l] = best->index;
    }
    candidates.push_back(std::move(cheapest));
  }

  std::set<int> exponents;  // ascending
  for (const auto& menu : menus) {
    for (const MenuOption& o : menu) {
      if (o.value > 0.0) {
        int e = 0;
        std::frexp(o.value, &e);  // value = m * 2^e with m in [0.5, 1): floor(log2 value) = e - 1
        exponents.insert(e - 1);
      }
    }
  }
  // Build (and size-check) every pass before running any, so a too-small delta fails fast.
  std::vector<Pass> passes;
  for (int t : exponents) {
    Pass pass;
    if (make_pass(menus, t, delta, &pass)) passes.push_back(std::move(pass));
  }
  for (const Pass& pass : passes) {
    std::vector<Point> points = run_pass(pass);
    for (Point& p : points) candidates.push_back(std::move(p));
  }

  const std::vector<Point> front = non_dominated(std::move(candidates));
  KnapsackFrontier out;
  out.layers = layers;
  out.cost.reserve(front.size());
  out.value.reserve(front.size());
  out.choice.reserve(front.size() * static_cast<size_t>(layers));
  for (const Point& p : front) {
    out.cost.push_back(p.cost);
    out.value.push_back(p.value);
    out.choice.insert(out.choice.end(), p.choice.begin(), p.choice.end());
  }
  return out;
}

}  // namespace bortfast
