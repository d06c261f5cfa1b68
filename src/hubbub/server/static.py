"""The files hubbub serves itself (pages, demos, the SDK builds the pages load): the package's
``static`` directory. Nothing else on the file system is served."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Final

STATIC_DIR: Final = Path(str(files("hubbub.server").joinpath("static")))
#: What /static/ serves: the files of STATIC_DIR by their relative path (a name that is not
#: one of them is 404 without a look at the file system, whatever its length). Files that
#: lie elsewhere (symlinks out of the directory) are not served.
_STATIC_ROOT: Final = STATIC_DIR.resolve()
STATIC_FILES: Final = {
    path.relative_to(STATIC_DIR).as_posix(): path
    for path in STATIC_DIR.rglob("*")
    if path.is_file()
    and "__pycache__" not in path.parts
    and path.resolve().is_relative_to(_STATIC_ROOT)
}
