"""The product: candidates, decisions, groups, outputs and reversible file actions."""
