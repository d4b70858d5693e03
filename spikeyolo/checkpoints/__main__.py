"""``python -m spikeyolo.checkpoints convert OLD.pt NEW.pt [--overwrite]`` and ``... info OLD.pt``."""

from __future__ import annotations

import argparse
import sys
import zipfile
from collections.abc import Sequence

from .convert import convert_reference_checkpoint
from .reference import ReferenceCheckpointError, load_reference_checkpoint
from .restricted import UnsafeCheckpointError


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns an exit code (2 for a file that cannot be imported)."""
    parser = argparse.ArgumentParser(prog="python -m spikeyolo.checkpoints", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    convert = sub.add_parser("convert", help="write a reference checkpoint in spikeyolo's format")
    convert.add_argument("source")
    convert.add_argument("target")
    convert.add_argument("--overwrite", action="store_true", help="replace TARGET if it exists")
    info = sub.add_parser("info", help="describe a reference checkpoint without building a model")
    info.add_argument("source")
    args = parser.parse_args(argv)
    try:
        if args.command == "convert":
            print(convert_reference_checkpoint(args.source, args.target, overwrite=args.overwrite))
        else:
            ref = load_reference_checkpoint(args.source)
            print(f"{args.source}: {ref.family} SpikeYOLO-{ref.scale}, {ref.nc} classes, {ref.form} form, "
                  f"layer 25 {'[2, 7] (release)' if ref.release_layer25 else '[1, 7] (as shipped)'}, "
                  f"{len(ref.state_dict)} tensors")
    except (FileNotFoundError, FileExistsError, ValueError, UnsafeCheckpointError, ReferenceCheckpointError,
            zipfile.BadZipFile, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
