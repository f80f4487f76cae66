"""Cases shared by the upsampling tests."""

# scale factors that are not integers: each hits a different rounding of the source coordinate
FRACTIONS = (0.3, 0.5, 0.75, 1.1, 1.5, 1.7, 2.1, 2.5, 3.3, 1 / 3, 2 / 3)

# the input ranks (batch and channel axes included) each mode takes
RANKS = {"nearest": (3, 4, 5), "nearest-exact": (3, 4, 5), "area": (3, 4, 5), "linear": (3,),
         "bilinear": (4,), "bicubic": (4,), "trilinear": (5,)}
