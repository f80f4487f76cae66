"""How an input array maps onto the kernels' flat views: the one Layout of pooling and
upsampling.

An input is ``(N, C, *spatial)`` (channels first), ``(N, *spatial, C)`` (channels last), or
either without the batch axis.  Kernels never see those shapes: they see ``(B, S, C)``
blocks (pooling: B planes of S cells holding C-vectors; channels first has C = 1 and one
plane per (n, c)) or the same blocks with S unfolded into (D, H, W) (upsampling).

>>> from minipool.ops._layout import Layout
>>> lay = Layout((2, 3, 4, 5), 2, channels_last=False)
>>> lay.spatial, lay.view, lay.out_shape((8, 10)), lay.view5()
((4, 5), (6, 20, 1), (2, 3, 8, 10), (6, 1, 4, 5, 1))
>>> Layout((2, 4, 5, 3), 2, channels_last=True).view5((8, 10))
(2, 1, 8, 10, 3)
"""
import math
from typing import Optional, Sequence, Tuple

__all__ = ["Layout"]


class Layout:
    """The shape of one (batched or unbatched, channels-first or -last) input with ``rank``
    spatial axes, and its kernel views."""

    __slots__ = ("shape", "rank", "channels_last", "batched", "spatial", "view")

    def __init__(self, shape: Sequence[int], rank: int, channels_last: bool) -> None:
        shape = tuple(shape)
        self.shape, self.rank, self.channels_last = shape, rank, channels_last
        self.batched = len(shape) == rank + 2
        if channels_last:
            self.spatial = shape[-rank - 1:-1]
            self.view = (shape[0] if self.batched else 1, math.prod(self.spatial), shape[-1])
        else:
            self.spatial = shape[-rank:]
            self.view = (math.prod(shape[:-rank]), math.prod(self.spatial), 1)

    def out_shape(self, out_spatial: Sequence[int]) -> Tuple[int, ...]:
        """This layout's shape with the spatial sizes replaced."""
        if self.channels_last:
            return self.shape[:-self.rank - 1] + tuple(out_spatial) + self.shape[-1:]
        return self.shape[:-self.rank] + tuple(out_spatial)

    def out_view(self, out_spatial: Sequence[int]) -> Tuple[int, int, int]:
        """The (B, S, C) view of the output with the given spatial sizes."""
        return (self.view[0], math.prod(out_spatial), self.view[2])

    def view5(self, spatial: Optional[Sequence[int]] = None) -> Tuple[int, ...]:
        """The (B, D, H, W, C) view (missing outer spatial axes are 1) with the given spatial
        sizes (default: the input's)."""
        spatial = self.spatial if spatial is None else tuple(spatial)
        return (self.view[0],) + (1,) * (3 - len(spatial)) + spatial + (self.view[2],)
