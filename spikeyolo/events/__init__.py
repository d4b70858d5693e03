"""Event cameras (Prophesee Gen1), the data side: ``.dat`` / ``_bbox.npy`` I/O, frame representations,
conversion to a dataset, the evaluation protocols and synthetic recordings.

Training, validation and prediction on event data live in :mod:`spikeyolo.engine` (``event_*``);
the command line is ``spikeyolo events {synth,convert,evaluate,predict,demo} key=value ...``.
"""
