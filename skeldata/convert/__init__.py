"""Conversions between a store and the files existing code already has.

* :mod:`.npz`: the ``.npy`` members of an ``.npz`` archive, read a block of rows at a time;
* :mod:`.sgn_npz`: the SGN-family ``NTU60_CS.npz``-style layout (padding, body slots, one-hot labels);
* :mod:`.pyskl`: the pyskl / mmaction2 annotation pickle (``split`` and ``annotations``);
* :mod:`.importers`: either file into a store (``skeldata import``).

Writing a store to these formats is :mod:`skeldata.export`. ``docs/formats.md`` describes both
formats and how their fields map to the store.
"""
