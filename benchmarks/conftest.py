import sys
from pathlib import Path

# benchmarks/encoder_engines.py is a helper module beside the benchmark files; tests/reference.py holds the
# plain-Python references (test oracles) that test_cost_model, test_knapsack and test_selection time against C++.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1] / "tests"))
