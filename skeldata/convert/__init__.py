"""Conversions between a store and the files existing code already has.

* :mod:`.npz`: the ``.npy`` members of an ``.npz`` archive, read a block of rows at a time;
* :mod:`.sgn_npz`: the SGN-family ``NTU60_CS.npz``-style layout (padding, body slots, one-hot labels);
* :mod:`.pyskl`: the pyskl / mmaction2 annotation pickle (``split`` and ``annotations``);
* :mod:`.importers`: either file into a store (``skeldata import``);
* :mod:`.export`: a store into these formats and ST-GCN's npy files (``skeldata export``).

``docs/formats.md`` describes both formats and how their fields map to the store.
"""
