"""Event cameras (Prophesee Gen1): file I/O, frame representations, conversion to a dataset, training
with T > 1, evaluation under the SpikeYOLO and the Prophesee protocols, and synthetic recordings.

Command line: ``python -m spikeyolo.events {synth,convert,evaluate,predict,demo} ...``.
"""
