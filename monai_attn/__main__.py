"""``python -m monai_attn`` runs the ``monai-attn`` command line."""
import sys

from .cli import main

sys.exit(main())
