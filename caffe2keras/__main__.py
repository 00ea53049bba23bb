"""``python -m caffe2keras``: the ``caffe2keras`` command."""

import sys

from .cli import main

sys.exit(main())
