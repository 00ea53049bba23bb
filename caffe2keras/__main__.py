"""``python -m caffe2keras``: the ``caffe2keras`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # the process's exit code; importing this module runs nothing
    sys.exit(main())
