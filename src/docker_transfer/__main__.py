"""``python -m docker_transfer``: the same entry point as the console script."""

from docker_transfer.cli import main

main()
