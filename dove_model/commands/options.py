"""Options shared by every command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ParamsOption = Annotated[
    Path,
    typer.Option(
        "--params", "-p", help="Parameter file (the single source of settings).", dir_okay=False
    ),
]
DEFAULT_PARAMS = Path("params.yaml")
