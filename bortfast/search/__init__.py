"""Algorithm 1 (the FPTAS of de Wynter 2020) over a search space: settings (:mod:`.config`), the C++ selection
core (:mod:`.selection`), the pure algorithm (:mod:`.algorithm`), the resumable journal (:mod:`.journal`), the
run across ranks (:mod:`.runner`), the user's choice of ξ* (:mod:`.choice`) and its report (:mod:`.report`).
The search knows no trainer: ê comes in as a
function; :func:`bortfast.extract` (in :mod:`bortfast.apps.extract`) is where it meets the distillation."""

from bortfast.search.algorithm import Candidate, SearchResult, Trial, pivot_indices, run_algorithm1
from bortfast.search.choice import choose_for_user, error_param_spearman
from bortfast.search.config import ErrorFn, LatencyProxy, SearchConfig
from bortfast.search.journal import ERROR_SETTINGS, JOURNAL_NAME, Journal
from bortfast.search.report import PLOT_NAME, RESULT_NAME, format_top, plot_pareto, write_outputs
from bortfast.search.runner import latencies, run_search

__all__ = ["Candidate", "ERROR_SETTINGS", "ErrorFn", "JOURNAL_NAME", "Journal", "LatencyProxy", "PLOT_NAME",
           "RESULT_NAME", "SearchConfig", "SearchResult", "Trial", "format_top", "latencies",
           "pivot_indices", "plot_pareto", "choose_for_user", "error_param_spearman", "run_algorithm1", "run_search",
           "write_outputs"]
