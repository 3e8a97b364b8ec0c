"""Cross-check definitions, one module per operator group; each module exports `CHECKS`."""
