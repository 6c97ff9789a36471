"""What reading a missing, truncated or forged file under the index folder raises.

``np.load`` of a bad zip, a field absent, or a field not of the type or shape asked (``int()`` of an array of two
numbers is a TypeError): every loader of an index file (:mod:`maya.index.collection`, :mod:`maya.index.ann_file`,
:mod:`maya.index.turned`) treats these as "no file", and the file is made again from the store.
"""

from __future__ import annotations

import zipfile

DAMAGED = (OSError, KeyError, ValueError, TypeError, EOFError, zipfile.BadZipFile)
