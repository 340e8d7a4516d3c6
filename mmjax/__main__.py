"""``python -m mmjax``: the same as the ``mmjax`` command."""

from mmjax.cli import run

run()
