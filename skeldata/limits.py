"""Numbers of the published rules that more than one module states (the rules themselves live in
:mod:`skeldata.pipeline.denoise` and :mod:`skeldata.pipeline.stgcn`; the drop reasons in
:mod:`skeldata.errors` and the command line's summary quote them from here)."""

#: The SGN-family length rule: a body seen in this many frames or fewer is noise.
LENGTH_THRESHOLD = 11

#: Frames of every ST-GCN-lineage sample (``--pipeline stgcn``); a file with more cannot be held.
MAX_FRAMES = 300
