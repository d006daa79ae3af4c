"""What the trainers read: the teacher (:mod:`.teacher`), the packed corpus (:mod:`.corpus`), the embedded
stdlib-docstring corpus (:mod:`.stdlib`) and task files in GLUE/SuperGLUE/RACE formats (:mod:`.tasks`)."""

from bortfast.data.corpus import Corpus, CorpusDecodeWarning, load_corpus
from bortfast.data.teacher import Teacher, bundled_teacher_path, load_teacher

__all__ = ["Corpus", "CorpusDecodeWarning", "Teacher", "bundled_teacher_path", "load_corpus", "load_teacher"]
