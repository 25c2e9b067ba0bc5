"""Text for people: every line vectorops shows is made here, from plain values.

    human.py     the terminal: plans, status, history, drift lines, id samples
    markdown.py  pull-request comments and job summaries (the GitHub Action)

Renderers read fields of the values they are given; they import neither the engine nor the
destinations (import-linter holds them to it), so what is shown cannot disagree with what was decided.
"""
