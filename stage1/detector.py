"""Stage 1, step 3: the small CNN, trained with MSE and SGD.

The network is the course's stage-1 prototxt (``facial_keypoints.models.Stage1Net``):
1x112x112 -> 5 conv blocks with PReLU and AvgPool -> fc 128 -> fc 128 -> fc 42.

    python stage1/detector.py --phase train     # lists from gen_train_test.py -> stage1/trained_models/
    python stage1/detector.py --phase test      # mean loss + nme_io/nme_box/fr_10/auc_10 on test.txt
    python stage1/detector.py --phase finetune --freeze conv1_1 conv2_1   # lower lr, some layers frozen
    python stage1/detector.py --phase predict   # draws predicted (green) and true (red) points
"""
import sys
from pathlib import Path

from facial_keypoints.detector_cli import Detector

STAGE_DIR = Path(__file__).resolve().parent

# What stage 1 trains with; every flag can override these.
DEFAULTS = {"arch": "stage1", "optimizer": "sgd", "loss": "mse", "lr": 3e-3, "epochs": 40, "batch_size": 32}

if __name__ == "__main__":
    sys.exit(Detector(STAGE_DIR, DEFAULTS).main())
