"""What the four commands (`mmgat-live`, `mmgat-tag`, `mmgat-train`, `mmgat-export`) share and
nothing else: one-line errors, logging flags, stop signals and exit codes (`command`), and the
install checks they report in one line (`install`). It imports nothing else of the project, so
every layer (model, export, stream, the trainer) may use it.
"""
