"""Known mistakes for the kata dtypes and in-place ops."""

from __future__ import annotations

from checker.mistakes import _solution_of, mistake


def _ref():
    return _solution_of("dtypes_and_inplace")


def _kind_and_dtype(x, float_dtype=None):
    import torch

    if isinstance(x, torch.Tensor):
        return ("zero" if x.dim() == 0 else "dim"), x.dtype
    if isinstance(x, bool):
        return "scalar", torch.bool
    if isinstance(x, int):
        return "scalar", torch.int64
    if isinstance(x, float):
        return "scalar", float_dtype or torch.get_default_dtype()
    return "scalar", torch.complex128 if torch.get_default_dtype() == torch.float64 else torch.complex64


# ----------------------------------------------------------------------------- result_dtype


@mistake("result_dtype", "A Python float was taken as float64 (NumPy's habit) instead of torch's default dtype.")
def python_float_is_float64(a, b):
    import torch

    ref = _ref()
    kinds = {"dim": None, "zero": None, "scalar": None}
    for x in (a, b):
        kind, dtype = _kind_and_dtype(x, float_dtype=torch.float64)
        kinds[kind] = dtype if kinds[kind] is None else torch.promote_types(kinds[kind], dtype)
    return ref._combine(kinds["dim"], ref._combine(kinds["zero"], kinds["scalar"]))


@mistake("result_dtype", "0-dim tensors were promoted like dimensioned tensors: a float64 scalar tensor widened a float32 tensor.")
def zero_dim_like_tensor(a, b):
    import torch

    ref = _ref()
    kinds = {"dim": None, "scalar": None}
    for x in (a, b):
        kind, dtype = _kind_and_dtype(x)
        kind = "dim" if kind == "zero" else kind
        kinds[kind] = dtype if kinds[kind] is None else torch.promote_types(kinds[kind], dtype)
    return ref._combine(kinds["dim"], kinds["scalar"])


@mistake("result_dtype", "0-dim tensors were treated like Python numbers: a higher-category 0-dim tensor lost its own width.")
def zero_dim_like_scalar(a, b):
    import torch

    ref = _ref()
    kinds = {"dim": None, "scalar": None}
    for x in (a, b):
        kind, dtype = _kind_and_dtype(x)
        if kind == "zero":
            kind = "scalar"
            if dtype.is_complex:
                dtype = _kind_and_dtype(1j)[1]
            elif dtype.is_floating_point:
                dtype = torch.get_default_dtype()
            elif dtype != torch.bool:
                dtype = torch.int64
        kinds[kind] = dtype if kinds[kind] is None else torch.promote_types(kinds[kind], dtype)
    return ref._combine(kinds["dim"], kinds["scalar"])


@mistake("result_dtype", "A complex Python number always gave the default complex dtype, even with a float64 or float16 tensor.")
def complex_scalar_default(a, b):
    got = _ref().result_dtype(a, b)
    if any(isinstance(x, complex) for x in (a, b)) and got.is_complex:
        return _kind_and_dtype(1j)[1]
    return got


@mistake("result_dtype", "Tested isinstance(x, int) before bool: a Python bool (an int subclass) was taken as int64, so bool_tensor + True gave int64.")
def python_bool_as_int(a, b):
    def as_int(x):
        return int(x) if type(x) is bool else x

    return _ref().result_dtype(as_int(a), as_int(b))


@mistake("result_dtype", "A Python int was ranked like a 0-dim int64 tensor: a narrower 0-dim integer tensor plus 3 became int64 instead of keeping its width.")
def python_int_as_zero_dim(a, b):
    import torch

    def as_zero_dim(x):
        return torch.tensor(x, dtype=torch.int64) if type(x) is int else x

    return _ref().result_dtype(as_zero_dim(a), as_zero_dim(b))


@mistake("result_dtype", "Asked torch.result_type for the answer instead of applying the rules (off-limits here).")
def asks_result_type(a, b):
    import torch

    return torch.result_type(a, b)


# ----------------------------------------------------------------------------- joined_shape


@mistake("joined_shape", "stack was treated like cat: the sizes along dim were added instead of a new dim being inserted.")
def stack_like_cat(op, shapes, dim):
    if op == "stack":
        return _ref().joined_shape("cat", shapes, dim)
    return _ref().joined_shape(op, shapes, dim)


@mistake("joined_shape", "stack/unsqueeze dims were counted on the inputs (range -ndim..ndim-1), not on the result with one more dim.")
def new_dim_counted_on_inputs(op, shapes, dim):
    if op in ("stack", "unsqueeze") and shapes:
        n = len(shapes[0])
        if not -max(n, 1) <= dim < max(n, 1):
            raise IndexError(f"dim {dim} out of range")
        d = dim % max(n, 1)
        first = tuple(shapes[0])
        if any(tuple(s) != first for s in shapes):
            raise ValueError("shapes differ")
        return first[:d] + (1 if op == "unsqueeze" else len(shapes),) + first[d:]
    return _ref().joined_shape(op, shapes, dim)


@mistake("joined_shape", "cat only added the sizes along dim and never checked that the other sizes match.")
def cat_without_size_check(op, shapes, dim):
    if op == "cat" and shapes and len(shapes[0]) > 0:
        n = len(shapes[0])
        if not -n <= dim < n:
            raise IndexError(f"dim {dim} out of range")
        d = dim % n
        first = tuple(shapes[0])
        return first[:d] + (sum(s[d] for s in shapes),) + first[d + 1:]
    return _ref().joined_shape(op, shapes, dim)


# ----------------------------------------------------------------------------- breaks_backward


@mistake("breaks_backward", "Backward was assumed to need only the inputs: ops like exp, sigmoid and tanh save their OUTPUT.")
def only_inputs_are_saved(op, victim):
    saved = _ref()._SAVED[op]
    if victim == "output":
        return False
    return bool(saved)


@mistake("breaks_backward", "Every in-place change was assumed to break backward, even of tensors nothing saved (add, sum, clone).")
def every_inplace_breaks(op, victim):
    return True


# ----------------------------------------------------------------------------- sigmoid_layer


@mistake("sigmoid_layer", "Kept h.mul_(2) in place: it changes the output that sigmoid_ saved for backward.")
def keeps_mul_in_place(x, w, b):
    h = x @ w
    h.add_(b)
    h.sigmoid_()
    h.mul_(2)
    h.sub_(1)
    return h


@mistake("sigmoid_layer", "Scaled through h.data: no error, but the saved sigmoid output is silently wrong, so the gradients are.")
def scales_through_data(x, w, b):
    h = x @ w
    h.add_(b)
    h.sigmoid_()
    h.data.mul_(2)
    h.data.sub_(1)
    return h


@mistake("sigmoid_layer", "Made every op out of place: correct, but the safe in-place ops were given up (more memory for nothing).")
def all_out_of_place(x, w, b):
    return 2 * (x @ w + b).sigmoid() - 1


# ----------------------------------------------------------------------------- sgd_update_


@mistake("sgd_update_", "Updated in place without torch.no_grad(): autograd refuses in-place ops on a leaf that requires grad.")
def no_no_grad(params, lr, weight_decay=0.0):
    for p in params:
        if p.grad is not None:
            p.sub_(lr * (p.grad + weight_decay * p.detach()))


@mistake("sgd_update_", "Wrote through p.data: the values change but the version counter does not, hiding the write from autograd.")
def writes_through_data(params, lr, weight_decay=0.0):
    for p in params:
        if p.grad is not None:
            p.data.sub_(lr * (p.grad + weight_decay * p.data))


@mistake("sgd_update_", "Assigned p.data = p.data - step: the parameter silently moves to new memory.")
def assigns_data(params, lr, weight_decay=0.0):
    for p in params:
        if p.grad is not None:
            p.data = p.data - lr * (p.grad + weight_decay * p.data)


@mistake("sgd_update_", "Scaled the gradient in place (p.grad.mul_(lr)), corrupting .grad for whoever reads it next.")
def scales_grad_in_place(params, lr, weight_decay=0.0):
    import torch

    with torch.no_grad():
        for p in params:
            if p.grad is not None:
                step = p.grad.mul_(lr)
                p.sub_(step + lr * weight_decay * p)


@mistake("sgd_update_", "Turned grad mode off with torch.set_grad_enabled(False) and never turned it back on.")
def grad_mode_left_off(params, lr, weight_decay=0.0):
    import torch

    torch.set_grad_enabled(False)
    for p in params:
        if p.grad is not None:
            p.sub_(lr * (p.grad + weight_decay * p))
