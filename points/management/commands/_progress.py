"""Progress bars for the points commands (tqdm on stderr, off with --no-progress)."""

from tqdm import tqdm


def progress_for(command, options, desc: str):
    if options.get("no_progress"):
        return lambda items: items
    return lambda items: tqdm(items, desc=desc, unit="batch", file=command.stderr._out, leave=False)
