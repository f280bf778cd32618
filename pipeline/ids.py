"""Ids and constants that several stages share. Base module: imports nothing from pipeline/."""
from __future__ import annotations

# Cluster number of a card in no cluster (HDBSCAN's convention, kept by every clustering).
OUTLIER = -1

# Category id (and theme-id prefix of labels, "emergent:<name>") of what lies outside the taxonomy.
EMERGENT = "emergent"
EMERGENT_NAME = "Nye temaer (utenfor taksonomien)"

# Id prefixes: a cluster's theme is "theme-<hash>"; a group of emergent themes "group-<hash>".
THEME_PREFIX = "theme-"
GROUP_PREFIX = "group-"
