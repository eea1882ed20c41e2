"""The `lsr` command (typer, `cli.app`) and the main job (`python -m cli.quickstart`): the user-facing entry
points over retrieval, eval and lsr."""
