"""``python -m facial_keypoints COMMAND``: the same as the ``facial-keypoints`` console command."""
import sys

from facial_keypoints.cli import main

if __name__ == "__main__":
    sys.exit(main())
