import sys
from pathlib import Path

# benchmarks/encoder_engines.py is a helper module beside the benchmark files.
sys.path.insert(0, str(Path(__file__).parent))
