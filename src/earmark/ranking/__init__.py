"""Ranking a pool for review: pure clip scores (:mod:`.scoring`), the selection
strategies and their registry (:mod:`.strategies`), and ranking a project (:mod:`.rank`)."""
