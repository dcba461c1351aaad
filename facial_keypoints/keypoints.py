"""The 21-point layout: names, the left/right swap table and the normalising pair.

Kept in one place, next to nothing else, the way mmpose keeps a dataset's
metadata: every flip, metric and drawing reads it from here.
"""

NUM_POINTS = 21

POINT_NAMES = (
    "left_brow_outer", "left_brow_middle", "left_brow_inner",
    "right_brow_inner", "right_brow_middle", "right_brow_outer",
    "left_eye_outer", "left_eye_inner", "right_eye_inner", "right_eye_outer",
    "nose_left_wing", "nose_bottom_centre", "nose_right_wing",
    "upper_lip_centre", "mouth_centre", "lower_lip_centre",
    "left_pupil", "right_pupil", "nose_tip",
    "mouth_left_corner", "mouth_right_corner",
)

# A horizontally flipped sample's point i is the original's point FLIP_INDEX[i],
# mirrored ("left" means image-left, so a flip turns left points into right ones).
FLIP_INDEX = (5, 4, 3, 2, 1, 0, 9, 8, 7, 6, 12, 11, 10, 13, 14, 15, 17, 16, 18, 20, 19)

# nme_io divides by the distance between the outer eye corners.
LEFT_EYE_OUTER = 6
RIGHT_EYE_OUTER = 9

# Lines drawn between points so a rendered face is easy to read (brows, eyes, nose, mouth).
SKELETON = (
    (0, 1), (1, 2), (3, 4), (4, 5),
    (6, 16), (16, 7), (8, 17), (17, 9),
    (10, 11), (11, 12), (18, 11),
    (19, 13), (13, 20), (20, 15), (15, 19),
)

assert len(POINT_NAMES) == NUM_POINTS and sorted(FLIP_INDEX) == list(range(NUM_POINTS))
