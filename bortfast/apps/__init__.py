"""What a user runs, built from the layers below: :mod:`.extract` (search meets distillation), :mod:`.pipeline`
(``bortfast run`` / ``demo``), :mod:`.quality` (how much of the teacher a student keeps), :mod:`.bench`
(speed-up of the deployed student)."""
