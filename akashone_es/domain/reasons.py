"""Words the domain and the command line share, in a module that imports nothing (the
command line's help is built from them without loading the domain)."""

#: why personal data was erased: a fixed vocabulary, so the erasure event itself can never
#: carry personal data in a free-text reason
ERASURE_REASONS = ("data principal request", "consent withdrawn", "purpose served",
                   "retention ended")
