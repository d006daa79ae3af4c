"""The floor every other layer stands on: atomic files and journals (:mod:`.io`), validators (:mod:`.checks`),
``torch.distributed`` helpers (:mod:`.dist`), the one training step (:mod:`.optim`), figures (:mod:`.plot`),
process-state guards (:mod:`.state`) and names loaded on first use (:mod:`.lazy`). Nothing here imports
another bortfast layer."""
