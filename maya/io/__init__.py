"""Reading what users give Maya: safe image decoding, the folder walk, file identity."""
