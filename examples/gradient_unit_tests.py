"""Write your own op as a minipool.Function and unit-test its gradient with minipool.gradcheck.

gradcheck compares the backward you wrote with float64 central differences
(f(x+eps) - f(x-eps)) / 2eps.  Below: a correct op passes, two classic bugs are
caught with a message naming the worst element, and a max-pooling tie shows
why gradient checks must avoid points where a function has a kink.
The same checks, as a pytest file you can copy: tests/core/test_user_gradients.py.

    python examples/gradient_unit_tests.py [--quick] [--out DIR]
"""
import numpy as np

import minipool as mp
import minipool.nn.functional as F
from minipool.testing import GradcheckError

from _common import Log, parse_args


class Swish(mp.Function):
    """swish(x) = x * sigmoid(x); its derivative is s + x * s * (1 - s)."""

    @staticmethod
    def forward(ctx, x):                        # x arrives as a NumPy array
        s = 1.0 / (1.0 + np.exp(-x))
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, grad):                    # grad = d(loss)/d(output), an array
        x, s = ctx.saved_tensors
        return grad * (s + x * s * (1.0 - s))   # one gradient per forward input


class SwishForgotProductRule(Swish):
    """Bug 1: treats x as a constant in x * s(x), so the x * s'(x) term is missing."""

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return grad * s


class SwishForgotChainRule(Swish):
    """Bug 2: the local derivative is right but is not multiplied by the incoming grad."""

    @staticmethod
    def backward(ctx, grad):
        x, s = ctx.saved_tensors
        return s + x * s * (1.0 - s)


def main(argv=None):
    args = parse_args(__doc__.splitlines()[0], argv)
    log = Log(args.out, "gradient_unit_tests")
    rng = np.random.default_rng(0)
    shape = (2, 3) if args.quick else (4, 5)
    x = mp.tensor(rng.normal(size=shape), requires_grad=True)

    log("1. A custom op used like any other: y = swish(x).sum(); y.backward()")
    Swish.apply(x).sum().backward()
    log("   x.grad[0] =", np.round(x.grad.numpy()[0], 4))
    log("   gradcheck(Swish.apply, [x]) ->", mp.gradcheck(Swish.apply, [x], names=["x"]))

    for number, (bug, what) in enumerate([
            (SwishForgotProductRule, "backward forgot the product rule (returns grad * s)"),
            (SwishForgotChainRule, "backward forgot the chain rule (ignores the incoming grad)")],
            start=2):
        log(f"\n{number}. A wrong backward: {what}")
        try:
            mp.gradcheck(bug.apply, [x], names=["x"])
            log("   gradcheck passed?! (it should not)")
        except GradcheckError as error:
            log("   GradcheckError:", error)
    log("   (Bug 2 is caught because gradcheck weights the output by a fixed random\n"
        "    vector v before differentiating: it checks v.J, so a backward that ignores\n"
        "    the incoming gradient cannot pass by luck.)")

    log("\n4. Built-in ops are checked the same way, e.g. F.max_pool2d on distinct values:")
    image = mp.tensor(rng.permutation(16).reshape(1, 1, 4, 4) / 4.0, requires_grad=True)
    log("   gradcheck(max_pool2d, k=2) ->",
        mp.gradcheck(lambda t: F.max_pool2d(t, 2), [image], names=["image"]))

    log("\n5. ...but not at a tie: max is not differentiable where two inputs are equal.")
    tied = mp.tensor([[[[1.0, 1.0], [0.0, 0.0]]]], requires_grad=True)
    F.max_pool2d(tied, 2).sum().backward()
    log("   window [[1, 1], [0, 0]]: minipool routes the gradient to the first max:",
        tied.grad.numpy().reshape(2, 2).tolist())
    try:
        mp.gradcheck(lambda t: F.max_pool2d(t, 2), [tied], names=["tied window"])
    except GradcheckError as error:
        log("   gradcheck at the tie fails:", error)
    log("   Central differences average the slopes on both sides of the kink: nudging\n"
        "   cell (0,0) up makes it the max (slope 1), nudging it down hands the max to\n"
        "   cell (0,1) (slope 0), so they report 0.5 where any single-winner rule says\n"
        "   1 or 0. Check gradients on tie-free inputs.")
    log.save()


if __name__ == "__main__":
    main()
