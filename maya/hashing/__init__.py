"""Perceptual hashes and the radius search over them."""
